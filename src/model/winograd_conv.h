// 3x3 convolutions through oneDNN's Winograd F(4x4, 3x3) kernels (AVX-512, float32, inference):
// about half the time of the direct convolution LibTorch chooses, for a rounding difference of
// ~3e-6 of the largest output. They work on maps in oneDNN's blocked layout (nChw16c), so that a
// chain of them (an E-Fusion block's embedding and residual blocks) pays no reorder between
// convolutions, with the ReLU or the residual add fused into the convolution. Large maps go
// through in bands of rows, so that the transformed tiles (several times the input) take a
// bounded ~400 MB. Internal to the prepared inference path (src/model/inference.cpp).
#pragma once

#include <memory>

#include <torch/types.h>

namespace efcnet {

// Blocked maps: (N, C/16, H, W, 16) float32 CPU tensors, oneDNN's nChw16c layout of an (N,C,H,W)
// map; C a multiple of 16. Views (e.g. narrow along dimension 1) are allowed everywhere.
torch::Tensor empty_blocked(int64_t n, int64_t c, int64_t h, int64_t w);
// The blocked copy of an (N,C,H,W) float32 CPU map of any strides, and back into `dst` (N,C,H,W).
// Without oneDNN (see WinogradConvolution::create) these are plain strided copies.
torch::Tensor to_blocked(const torch::Tensor& x);
void to_blocked(const torch::Tensor& x, const torch::Tensor& dst);
void from_blocked(const torch::Tensor& blocked, const torch::Tensor& dst);

class WinogradConvolution {
 public:
  enum class Epilogue {
    none,        // dst = conv(x)
    relu,        // dst = max(conv(x), 0)
    accumulate,  // dst += conv(x)
  };

  // nullptr unless this build has oneDNN 2.x (the generation with Winograd kernels), the oneDNN
  // loaded at run time is the same major version, it has a Winograd kernel for this CPU (AVX-512)
  // and `weight` is a float32 CPU 3x3 kernel whose channel counts are multiples of 16.
  // `weight` (O,I,3,3) and `bias` (O) are copied.
  static std::shared_ptr<const WinogradConvolution> create(const torch::Tensor& weight, const torch::Tensor& bias);

  // conv2d(x, weight, bias, stride 1, padding 1) with the epilogue, from the blocked map `x`
  // (N,I/16,H,W,16) into the blocked map `dst` (N,O/16,H,W,16), which must not overlap `x`.
  // false (dst untouched) where oneDNN has no Winograd kernel for this shape; the caller then
  // convolves directly. Thread-safe.
  bool operator()(const torch::Tensor& x, const torch::Tensor& dst, Epilogue epilogue) const;

  ~WinogradConvolution();

 private:
  struct Impl;
  explicit WinogradConvolution(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace efcnet
