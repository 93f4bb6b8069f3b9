// The reference test script's pipeline (spec section 1) around the two networks.
#include "efcnet/pipeline.h"

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "efcnet/inference.h"
#include "efcnet/model.h"
#include "efcnet/weights.h"
#include "model/torch_error.h"
#include "pipeline/tensor_image.h"

namespace efcnet {

struct Fuser::Impl {
  torch::Device device{torch::kCPU};
  std::optional<InferenceModel> model;
};

Fuser::Fuser(const FuserOptions& options) : impl_(std::make_unique<Impl>()) {
  if (options.weights.empty()) throw FusionError("no fusion network weights file given (FuserOptions::weights)");
  if (options.seem_weights.empty()) throw FusionError("no SEEM weights file given (FuserOptions::seem_weights)");
  impl_->device = parse_device(options.device);
  try {
    SmoothEdgeExtractor seem;
    FusionNetwork network;
    seem->to(impl_->device);
    network->to(impl_->device);
    load_weights(*seem, options.seem_weights);
    load_weights(*network, options.weights);
    impl_->model.emplace(*seem, *network, options.inference);  // the eager modules are not needed after this
  } catch (const c10::Error& e) {
    throw FusionError("preparing the networks on " + options.device + ": " + torch_message(e));
  }
}

Fuser::~Fuser() = default;

int Fuser::winograd_layers() const { return impl_->model->winograd_layers(); }
int Fuser::dnnl_linear_layers() const { return impl_->model->dnnl_linear_layers(); }

cv::Mat Fuser::fuse_pair(const cv::Mat& anatomical, const cv::Mat& functional, StageSeconds* seconds) const {
  check_fusion_inputs(anatomical, functional);
  if (impl_->device.is_cpu()) {
    // A clear refusal instead of an out-of-memory kill halfway through the network.
    if (const std::string shortfall = working_memory_shortfall(anatomical.rows, anatomical.cols); !shortfall.empty()) {
      throw FusionError(shortfall + "; fuse smaller images or free memory");
    }
  }

  cv::Mat y;
  {
    torch::InferenceMode inference;
    const auto f = unit_tensor(functional_y_plane(functional), impl_->device);
    const auto a = unit_tensor(anatomical, impl_->device);
    try {
      y = byte_plane(impl_->model->fuse(f, a, seconds));
    } catch (const c10::Error& e) {
      throw FusionError("fusing a " + std::to_string(anatomical.cols) + "x" + std::to_string(anatomical.rows) +
                        " pair: " + torch_message(e));
    }
  }
  return replace_y_plane(functional, y);
}

}  // namespace efcnet
