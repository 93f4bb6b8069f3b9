// The reference test script's pipeline (spec section 1) around the two networks.
#include "efcnet/pipeline.h"

#include <cstring>
#include <string>
#include <thread>


#include "efcnet/model.h"
#include "efcnet/weights.h"

namespace efcnet {
namespace {


// (1,1,H,W) float32 in [0,1] from an 8-bit single-channel image.
torch::Tensor to_unit_tensor(const cv::Mat& plane, const torch::Device& device) {
  const cv::Mat continuous = plane.isContinuous() ? plane : plane.clone();
  const auto bytes = torch::from_blob(continuous.data, {1, 1, plane.rows, plane.cols}, torch::kUInt8);
  return bytes.to(device).to(torch::kFloat32) / 255.0f;
}

}  // namespace

struct Fuser::Impl {
  torch::Device device{torch::kCPU};
  SmoothEdgeExtractor seem;
  FusionNetwork network;
};

Fuser::Fuser(const FuserOptions& options) : impl_(std::make_unique<Impl>()) {
  const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  torch::set_num_threads(threads > 0 ? threads : 1);
  try {
    impl_->device = parse_device(options.device);
  } catch (const std::invalid_argument& e) {
    throw FusionError(e.what());
  }
  if (options.weights.empty()) throw FusionError("no network weights given (--weights or EFCNET_WEIGHTS)");
  if (options.seem_weights.empty()) throw FusionError("no SEEM weights given (--seem-weights or EFCNET_SEEM_WEIGHTS)");
  impl_->seem->to(impl_->device);
  impl_->network->to(impl_->device);
  load_weights(*impl_->seem, options.seem_weights);
  load_weights(*impl_->network, options.weights);
  impl_->seem->eval();
  impl_->network->eval();
}

Fuser::~Fuser() = default;

cv::Mat Fuser::fuse_pair(const cv::Mat& anatomical, const cv::Mat& functional) const {
  check_fusion_inputs(anatomical, functional);

  torch::Tensor fused_bytes;
  {
    torch::InferenceMode inference;
    const auto f = to_unit_tensor(functional_y_plane(functional), impl_->device);
    const auto a = to_unit_tensor(anatomical, impl_->device);
    const auto fused = impl_->network->forward(impl_->seem->forward(f), a).fused;
    // Truncation, not rounding, as the reference's numpy astype(uint8).
    fused_bytes = (fused * 255.0f).to(torch::kUInt8).to(torch::kCPU).contiguous();
  }
  cv::Mat y(anatomical.rows, anatomical.cols, CV_8UC1);
  std::memcpy(y.data, fused_bytes.data_ptr<uint8_t>(), y.total());
  return replace_y_plane(functional, y);
}

}  // namespace efcnet
