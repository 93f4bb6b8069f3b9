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

// Optional terms, not the authors': they score the fusion against the sources themselves (the
// functional image, not SEEM's map of it), each with its own weight (0: no term, the authors' loss).
// - intensity: weight * mean |fused - max(f, a)|. It pulls the fusion towards the brighter source
//   at each pixel, i.e. towards the functional intensity where the functional image is hot, which
//   the authors' four terms never ask for (SEEM's map is dark inside hot regions). With weight > 2 it
//   outweighs the two L1 terms of the edge losses, whose optimum alone is the MRI there.
// - texture: weight * mean |S(fused) - max(S(f), S(a))|, S = sobel_magnitude: the stronger source
//   edge at each pixel, where the edge losses ask for a compromise between SEEM's map's and the
//   anatomy's, which blurs bone against soft tissue on CT.
struct SourceTerms {
  torch::Tensor functional;  // (N,1,H,W) in [0,1], the functional image's Y plane
  double intensity_weight = 0.0;
  double texture_weight = 0.0;
};

struct FusionLoss {
  torch::Tensor ssim_functional, ssim_anatomical, edge_functional, edge_anatomical;
  torch::Tensor intensity;  // defined only with a positive SourceTerms::intensity_weight
  torch::Tensor texture;    // defined only with a positive SourceTerms::texture_weight
  torch::Tensor total;      // the sum of the terms
};

// The network's loss: `fused` against the SEEM output `functional` and the anatomical image, plus
// the source terms whose weights are positive.
FusionLoss fusion_loss(const torch::Tensor& fused, const torch::Tensor& functional, const torch::Tensor& anatomical,
                       const SourceTerms& source = {});

// SEEM's training target: the Sobel magnitude of the functional image clipped to [0, 1].
torch::Tensor seem_edge_target(const torch::Tensor& functional);

}  // namespace efcnet
