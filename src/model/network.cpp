// The fusion network: shared multi-scale encoder with coordinate attention, E-Fusion per scale,
// E-Fusion of all scales, decoder to one sigmoid channel.
#include "efcnet/model.h"

#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

namespace efcnet {

FusionNetworkImpl::FusionNetworkImpl() {
  conv3_3 = register_module("conv3_3", ConvBlock(1, 16, 3));
  conv5_5 = register_module("conv5_5", ConvBlock(16, 64, 5));
  conv7_7 = register_module("conv7_7", ConvBlock(64, 256, 7));
  ca1 = register_module("ca1", CoordinateAttention(16));
  ca2 = register_module("ca2", CoordinateAttention(64));
  ca3 = register_module("ca3", CoordinateAttention(256));
  conv1 = register_module("conv1", ConvBlock(32, 16, 1));
  conv2 = register_module("conv2", ConvBlock(128, 64, 1));
  conv3 = register_module("conv3", ConvBlock(512, 256, 1));
  conv4 = register_module("conv4", ConvBlock(336, 64, 1));
  SU1 = register_module("SU1", EFusion(16));
  SU2 = register_module("SU2", EFusion(64));
  SU3 = register_module("SU3", EFusion(256));
  SU4 = register_module("SU4", EFusion(64));
  convolutional_out1 = register_module("convolutional_out1", ConvBlock(64, 16, 3));
  convolutional_out2 = register_module("convolutional_out2", PointwiseConv(16, 1));
}

FusionOutput FusionNetworkImpl::forward(const torch::Tensor& functional, const torch::Tensor& anatomical) {
  // The encoder's weights are shared by both inputs; each input is its own BatchNorm batch.
  const auto i1 = conv3_3->forward(functional);
  const auto v1 = conv3_3->forward(anatomical);
  const auto i2 = conv5_5->forward(i1);
  const auto v2 = conv5_5->forward(v1);
  const auto i3 = conv7_7->forward(i2);
  const auto v3 = conv7_7->forward(v2);

  // Functional features come first in every concatenation; the next scale takes I_k, not IC_k.
  const auto f1 = SU1->forward(conv1->forward(torch::cat({ca1->forward(i1), ca1->forward(v1)}, 1)));
  const auto f2 = SU2->forward(conv2->forward(torch::cat({ca2->forward(i2), ca2->forward(v2)}, 1)));
  const auto f3 = SU3->forward(conv3->forward(torch::cat({ca3->forward(i3), ca3->forward(v3)}, 1)));
  const auto f4 = SU4->forward(conv4->forward(torch::cat({f1, f2, f3}, 1)));
  const auto fused = torch::sigmoid(convolutional_out2->forward(convolutional_out1->forward(f4)));
  return {fused, v1, v2, v3};
}

void FusionNetworkImpl::use_textbook_attention(bool enabled) {
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* attention = module->as<TokenAttentionImpl>()) attention->single_token_shortcut = !enabled;
  }
}

void FusionNetworkImpl::set_training_memory(TrainingMemory mode) {
  // What each choice saves and costs: docs/architecture.md, "Training memory".
  const bool lean = mode == TrainingMemory::lean;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* block = module->as<TransformerBlockImpl>()) block->recompute = lean;
    if (auto* block = module->as<ConvBlockImpl>()) block->lean_backward = lean;
    if (auto* attention = module->as<CoordinateAttentionImpl>()) attention->lean_backward = lean;
    if (auto* mlp = module->as<TokenMlpImpl>()) {
      mlp->recompute_above_bytes = lean ? TokenMlpImpl::kRecomputeAboveBytes : std::numeric_limits<int64_t>::max();
    }
  }
}

torch::Device parse_device(const std::string& name) {
  std::optional<torch::Device> device;
  try {
    device.emplace(name);
  } catch (const c10::Error&) {
    throw OptionError("unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
  }
  if (device->is_cuda() && !torch::cuda::is_available()) {
    throw OptionError("device '" + name + "' requested, but this build or machine has no CUDA device");
  }
  return *device;
}

}  // namespace efcnet
