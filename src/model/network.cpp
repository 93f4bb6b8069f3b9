// The fusion network: shared multi-scale encoder with coordinate attention, E-Fusion per scale,
// E-Fusion of all scales, decoder to one sigmoid channel.
#include "efcnet/model.h"

#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

#include "layers.h"

namespace efcnet {

FusionNetworkImpl::FusionNetworkImpl() {
  using namespace layers;
  const auto conv_block = [this](const Conv& c) { return register_module(c.name, ConvBlock(c.in, c.out, c.kernel)); };
  conv3_3 = conv_block(kEncoder[0]);
  conv5_5 = conv_block(kEncoder[1]);
  conv7_7 = conv_block(kEncoder[2]);
  ca1 = register_module(kAttention[0], CoordinateAttention(kEncoder[0].out));
  ca2 = register_module(kAttention[1], CoordinateAttention(kEncoder[1].out));
  ca3 = register_module(kAttention[2], CoordinateAttention(kEncoder[2].out));
  conv1 = conv_block(kMerge[0]);
  conv2 = conv_block(kMerge[1]);
  conv3 = conv_block(kMerge[2]);
  conv4 = conv_block(kJoin);
  SU1 = register_module(kScaleUnits[0], EFusion(kMerge[0].out));
  SU2 = register_module(kScaleUnits[1], EFusion(kMerge[1].out));
  SU3 = register_module(kScaleUnits[2], EFusion(kMerge[2].out));
  SU4 = register_module(kJoinUnit, EFusion(kJoin.out));
  convolutional_out1 = conv_block(kDecoderBlock);
  convolutional_out2 = register_module(kOutput.name, PointwiseConv(kOutput.in, kOutput.out));
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
