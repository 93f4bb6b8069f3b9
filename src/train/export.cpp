#include <cmath>
#include <stdexcept>
#include <string>

#include "efcnet/model.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"

namespace efcnet {

WeightsKind export_weights(const std::string& input, const std::string& output, const ExportOptions& options) {
  // The options first: a bad one is refused without reading the input.
  if (!(options.output_logit_scale > 0.0) || !std::isfinite(options.output_logit_scale)) {
    throw OptionError("the output logit scale must be positive and finite (it is " +
                      std::to_string(options.output_logit_scale) + ")");
  }
  if (!std::isfinite(options.output_bias_offset)) {
    throw OptionError("the output bias offset must be finite (it is " + std::to_string(options.output_bias_offset) +
                      ")");
  }
  const auto dict = read_state_dict(input);
  bool is_seem = false;
  for (const auto& entry : dict) is_seem |= entry.first.rfind("conv_efg.", 0) == 0;
  const bool calibrates = options.output_logit_scale != 1.0 || options.output_bias_offset != 0.0;
  if (is_seem && calibrates) {
    throw OptionError(input + ": an output logit scale or bias offset applies to network weights, not SEEM's");
  }
  FusionNetwork network{nullptr};
  std::shared_ptr<torch::nn::Module> module;
  if (is_seem) {
    module = SmoothEdgeExtractor().ptr();
  } else {
    network = FusionNetwork();
    module = network.ptr();
  }
  load_state_dict(*module, dict, input);  // refuses foreign keys and shapes
  if (network && calibrates) {
    torch::NoGradGuard no_grad;
    auto& output_layer = *network->convolutional_out2->conv;
    output_layer.bias.add_(options.output_bias_offset).mul_(options.output_logit_scale);
    output_layer.weight.mul_(options.output_logit_scale);
  }
  StateDict state = module_state_dict(*module);
  if (options.half) {
    // Kernels and weight matrices (all but a few kilobytes) in float16. Biases and the BatchNorm and
    // LayerNorm parameters and statistics stay float32: rounding those too (BatchNorm's running means
    // above all) moved fused pixels by up to 3 levels.
    for (auto& entry : state) {
      if (entry.second.is_floating_point() && entry.second.dim() >= 2) entry.second = entry.second.to(torch::kFloat16);
    }
  }
  save_state_dict(state, output);
  return is_seem ? WeightsKind::seem : WeightsKind::network;
}

}  // namespace efcnet
