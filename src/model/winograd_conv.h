// 3x3 convolutions through oneDNN's Winograd F(4x4, 3x3) kernels (AVX-512, float32, inference):
// about half the time of the direct convolution LibTorch chooses, for a rounding difference of
// ~3e-6 of the largest output. Large maps go through in bands of rows, so that the transformed
// tiles (several times the input) take a bounded ~200 MB. Internal to the prepared inference
// path (src/model/inference.cpp).
#pragma once

#include <memory>
#include <optional>

#include <torch/types.h>

namespace efcnet {

class WinogradConvolution {
 public:
  // nullptr unless this build has oneDNN 2.x (the generation with Winograd kernels), the oneDNN
  // loaded at run time is the same major version, it has a Winograd kernel for this CPU (AVX-512)
  // and `weight` is a float32 CPU 3x3 kernel.
  // `weight` (O,I,3,3) and `bias` (O) are copied.
  static std::shared_ptr<const WinogradConvolution> create(const torch::Tensor& weight, const torch::Tensor& bias);

  // conv2d(x, weight, bias, stride 1, padding 1) of a float32 CPU map (N,I,H,W), returned
  // channels-last; std::nullopt where oneDNN has no Winograd kernel for this shape or this CPU
  // (the caller then convolves directly). Thread-safe.
  std::optional<torch::Tensor> operator()(const torch::Tensor& x) const;

  ~WinogradConvolution();

 private:
  struct Impl;
  explicit WinogradConvolution(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace efcnet
