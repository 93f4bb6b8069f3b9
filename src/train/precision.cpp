// bfloat16 autocast around a training step's forward pass and loss.
#include "precision.h"

#include <optional>

#include "efcnet/runtime.h"
#include "model/autocast.h"

namespace efcnet {

bool bfloat16_training_supported() { return cpu_features().avx512_bf16 || cpu_features().amx; }

namespace training {

void check_precision(const TrainOptions& options, const torch::Device& device, const CpuFeatures& cpu,
                     const std::string& cpu_name) {
  if (options.precision == Precision::bfloat16 && device.is_cpu() && !cpu.avx512_bf16 && !cpu.amx) {
    throw OptionError("bfloat16 training needs a CPU with AVX-512 BF16 or AMX, which " + cpu_name +
                      " lacks; train with " + option_name(options.option_name, "precision") +
                      " float32, or on a cuda device");
  }
}

void check_precision(const TrainOptions& options, const torch::Device& device) {
  check_precision(options, device, cpu_features(), cpu_model());
}

FusionLoss network_loss(FusionNetworkImpl& network, const torch::Tensor& functional, const torch::Tensor& anatomical,
                        Precision precision, const SourceTerms& source) {
  torch::Tensor fused;
  {
    std::optional<Bfloat16Autocast> autocast;
    if (precision == Precision::bfloat16) autocast.emplace(functional.device().type());
    fused = network.forward(functional, anatomical).fused;
  }
  // The loss in float32: SSIM's variances are differences of nearly equal means (E[x^2] - E[x]^2),
  // which bfloat16's 8 bits cancel away. With the loss under autocast too, the golden case's SSIM
  // term came out 11% off and its gradients several times their own size.
  return fusion_loss(fused.to(torch::kFloat32), functional, anatomical, source);
}

torch::Tensor seem_loss(SmoothEdgeExtractorImpl& seem, const torch::Tensor& functional, Precision precision) {
  const auto target = seem_edge_target(functional);  // the data, not the model: float32
  std::optional<Bfloat16Autocast> autocast;
  if (precision == Precision::bfloat16) autocast.emplace(functional.device().type());
  return torch::mse_loss(seem.forward(functional), target);
}

}  // namespace training
}  // namespace efcnet
