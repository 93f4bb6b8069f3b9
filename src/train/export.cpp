#include "efcnet/model.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"

namespace efcnet {

WeightsKind export_weights(const std::string& input, const std::string& output, bool half) {
  const auto dict = read_state_dict(input);
  bool is_seem = false;
  for (const auto& entry : dict) is_seem |= entry.first.rfind("conv_efg.", 0) == 0;
  std::shared_ptr<torch::nn::Module> module;
  if (is_seem) {
    module = SmoothEdgeExtractor().ptr();
  } else {
    module = FusionNetwork().ptr();
  }
  load_state_dict(*module, dict, input);  // refuses foreign keys and shapes
  save_state_dict(module_state_dict(*module), output, SaveOptions{half});
  return is_seem ? WeightsKind::seem : WeightsKind::network;
}

}  // namespace efcnet
