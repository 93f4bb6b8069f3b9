// Linear layers of the token mixer through oneDNN's matmul (brgemm kernels, weights packed once),
// with GELU or the residual add fused in: on SU3's 2048-token chunks 2-3x faster than OpenBLAS's
// sgemm followed by separate GELU and add passes, for a rounding difference of ~1e-6 relative.
// Internal to the prepared inference path (src/model/inference.cpp).
#pragma once

#include <memory>

#include <torch/types.h>

namespace efcnet {

class DnnlLinear {
 public:
  enum class Epilogue {
    gelu,        // dst = GELU(x W^T + b), GELU with the exact erf
    accumulate,  // dst += x W^T + b
  };

  // nullptr unless this build has oneDNN 2.x, the oneDNN loaded at run time is the same major
  // version and `weight` (out, in) and `bias` (out) are float32 CPU tensors. Both are copied.
  static std::shared_ptr<const DnnlLinear> create(const torch::Tensor& weight, const torch::Tensor& bias,
                                                  Epilogue epilogue);

  // Applies the layer to the rows of `x` (M, in) into `dst` (M, out): float32 CPU tensors with
  // unit column stride, not overlapping. false (dst untouched) where oneDNN has no kernel for
  // them; the caller then computes the layer itself. Thread-safe.
  bool operator()(const torch::Tensor& x, const torch::Tensor& dst) const;

  ~DnnlLinear();

 private:
  struct Impl;
  explicit DnnlLinear(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace efcnet
