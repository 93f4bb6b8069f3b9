// The training losses of the reference (spec section 5), differentiable, on (N,1,H,W) in [0,1].
#pragma once

#include <torch/torch.h>

namespace efcnet {

// 1 - mean SSIM map: 11x11 Gaussian window (sigma 1.5; side min(11, H, W)), valid convolution,
// C1 = 0.01^2, C2 = 0.03^2 (dynamic range 1).
torch::Tensor ssim_loss(const torch::Tensor& x, const torch::Tensor& y);

// sqrt(gx^2 + gy^2) with 3x3 Sobel kernels (cross-correlation, zero padding 1). Where the gradient
// is exactly zero the value is 0 and so is its derivative (the plain sqrt would give NaN).
torch::Tensor sobel_magnitude(const torch::Tensor& z);

// mean |x - y| + mean |S(x) - S(y)|, S = sobel_magnitude.
torch::Tensor edge_loss(const torch::Tensor& x, const torch::Tensor& y);

struct FusionLoss {
  torch::Tensor ssim_functional, ssim_anatomical, edge_functional, edge_anatomical;
  torch::Tensor total;  // the sum of the four
};

// The network's loss: `fused` against the SEEM output `functional` and the anatomical image.
FusionLoss fusion_loss(const torch::Tensor& fused, const torch::Tensor& functional, const torch::Tensor& anatomical);

// SEEM's training target: the Sobel magnitude of the functional image clipped to [0, 1].
torch::Tensor seem_edge_target(const torch::Tensor& functional);

}  // namespace efcnet
