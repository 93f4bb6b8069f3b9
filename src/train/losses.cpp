#include "train/losses.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace efcnet {
namespace {

namespace F = torch::nn::functional;

// Normalised 1-D Gaussian outer product; taps from double exp(), normalised in float32 as the
// reference does.
torch::Tensor gaussian_window(int64_t side, double sigma, const torch::TensorOptions& options) {
  std::vector<float> taps(side);
  for (int64_t i = 0; i < side; ++i) {
    const double d = static_cast<double>(i - side / 2);
    taps[i] = static_cast<float>(std::exp(-d * d / (2.0 * sigma * sigma)));
  }
  auto one_d = torch::tensor(taps, torch::kFloat32);
  one_d = (one_d / one_d.sum()).view({side, 1});
  return one_d.mm(one_d.t()).view({1, 1, side, side}).to(options);
}

torch::Tensor sobel_kernels(const torch::TensorOptions& options) {
  const auto k = torch::tensor({1.f, 0.f, -1.f, 2.f, 0.f, -2.f, 1.f, 0.f, -1.f,   // gx
                                1.f, 2.f, 1.f, 0.f, 0.f, 0.f, -1.f, -2.f, -1.f},  // gy
                               torch::kFloat32);
  return k.view({2, 1, 3, 3}).to(options);
}

}  // namespace

torch::Tensor ssim_loss(const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t side = std::min<int64_t>({11, x.size(2), x.size(3)});
  const auto window = gaussian_window(side, 1.5, x.options());
  const auto filter = [&](const torch::Tensor& t) { return F::conv2d(t, window); };
  const auto mu_x = filter(x);
  const auto mu_y = filter(y);
  const auto mu_x_sq = mu_x.pow(2);
  const auto mu_y_sq = mu_y.pow(2);
  const auto mu_xy = mu_x * mu_y;
  const auto sigma_x_sq = filter(x * x) - mu_x_sq;
  const auto sigma_y_sq = filter(y * y) - mu_y_sq;
  const auto sigma_xy = filter(x * y) - mu_xy;
  constexpr double c1 = 0.01 * 0.01;
  constexpr double c2 = 0.03 * 0.03;
  const auto contrast = 2.0 * sigma_xy + c2;
  const auto variance = sigma_x_sq + sigma_y_sq + c2;
  const auto ssim_map = ((2.0 * mu_xy + c1) * contrast) / ((mu_x_sq + mu_y_sq + c1) * variance);
  return 1.0 - ssim_map.mean();
}

torch::Tensor sobel_magnitude(const torch::Tensor& z) {
  const auto g = F::conv2d(z, sobel_kernels(z.options()), F::Conv2dFuncOptions().padding(1));
  const auto squared = g.pow(2).sum(1, /*keepdim=*/true);
  const auto nonzero = squared > 0;
  // sqrt'(0) is infinite: evaluate sqrt only where the gradient is non-zero, so that flat regions
  // give a zero value with a zero (not NaN) derivative.
  return torch::where(nonzero, torch::sqrt(torch::where(nonzero, squared, torch::ones_like(squared))),
                      torch::zeros_like(squared));
}

torch::Tensor edge_loss(const torch::Tensor& x, const torch::Tensor& y) {
  return (x - y).abs().mean() + (sobel_magnitude(x) - sobel_magnitude(y)).abs().mean();
}

FusionLoss fusion_loss(const torch::Tensor& fused, const torch::Tensor& functional, const torch::Tensor& anatomical,
                       const SourceTerms& source) {
  FusionLoss loss;
  loss.ssim_functional = ssim_loss(fused, functional);
  loss.ssim_anatomical = ssim_loss(fused, anatomical);
  loss.edge_functional = edge_loss(fused, functional);
  loss.edge_anatomical = edge_loss(fused, anatomical);
  loss.total = loss.ssim_functional + loss.ssim_anatomical + loss.edge_functional + loss.edge_anatomical;
  if (source.intensity_weight > 0.0) {
    loss.intensity = source.intensity_weight * (fused - torch::maximum(source.functional, anatomical)).abs().mean();
    loss.total = loss.total + loss.intensity;
  }
  if (source.texture_weight > 0.0) {
    const auto stronger = torch::maximum(sobel_magnitude(source.functional), sobel_magnitude(anatomical));
    loss.texture = source.texture_weight * (sobel_magnitude(fused) - stronger).abs().mean();
    loss.total = loss.total + loss.texture;
  }
  return loss;
}

torch::Tensor seem_edge_target(const torch::Tensor& functional) { return sobel_magnitude(functional).clamp(0.0, 1.0); }

}  // namespace efcnet
