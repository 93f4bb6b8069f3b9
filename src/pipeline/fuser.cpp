// The reference test script's pipeline (spec section 1) around the two networks.
#include "efcnet/pipeline.h"

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "efcnet/inference.h"
#include "efcnet/model.h"
#include "efcnet/weights.h"

namespace efcnet {
namespace {

std::string gibibytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (int64_t{1} << 30));
  return text;
}

// A clear refusal instead of an out-of-memory kill halfway through the network.
void check_working_memory(int rows, int cols) {
  const int64_t needed = estimated_working_bytes(rows, cols);
  const int64_t available = available_memory_bytes();
  if (available >= 0 && needed > available) {
    throw FusionError("a " + std::to_string(cols) + "x" + std::to_string(rows) + " pair needs about " +
                      gibibytes(needed) + " of working memory, but only " + gibibytes(available) +
                      " is available (MemAvailable); fuse smaller images or free memory");
  }
}

// (1,1,H,W) float32 in [0,1] from an 8-bit single-channel image.
torch::Tensor to_unit_tensor(const cv::Mat& plane, const torch::Device& device) {
  const cv::Mat continuous = plane.isContinuous() ? plane : plane.clone();
  const auto bytes = torch::from_blob(continuous.data, {1, 1, plane.rows, plane.cols}, torch::kUInt8);
  return bytes.to(device).to(torch::kFloat32) / 255.0f;
}

}  // namespace

struct Fuser::Impl {
  torch::Device device{torch::kCPU};
  std::optional<InferenceModel> model;
};

Fuser::Fuser(const FuserOptions& options) : impl_(std::make_unique<Impl>()) {
  use_threads(options.threads);
  try {
    impl_->device = parse_device(options.device);
  } catch (const std::invalid_argument& e) {
    throw FusionError(e.what());
  }
  if (options.weights.empty()) throw FusionError("no network weights given (--weights or EFCNET_WEIGHTS)");
  if (options.seem_weights.empty()) throw FusionError("no SEEM weights given (--seem-weights or EFCNET_SEEM_WEIGHTS)");
  SmoothEdgeExtractor seem;
  FusionNetwork network;
  seem->to(impl_->device);
  network->to(impl_->device);
  load_weights(*seem, options.seem_weights);
  load_weights(*network, options.weights);
  InferenceOptions inference;
  inference.precision = options.bfloat16 ? Precision::bfloat16 : Precision::float32;
  inference.winograd = options.winograd;
  inference.dnnl_linear = options.dnnl_linear;
  try {
    impl_->model.emplace(*seem, *network, inference);  // the eager modules are not needed after this
  } catch (const std::invalid_argument& e) {
    throw FusionError(e.what());
  }
  if (impl_->device.is_cpu()) keep_freed_memory_for_reuse();
}

Fuser::~Fuser() = default;

int Fuser::winograd_layers() const { return impl_->model->winograd_layers(); }
int Fuser::dnnl_linear_layers() const { return impl_->model->dnnl_linear_layers(); }

cv::Mat Fuser::fuse_pair(const cv::Mat& anatomical, const cv::Mat& functional, StageSeconds* seconds) const {
  check_fusion_inputs(anatomical, functional);
  if (impl_->device.is_cpu()) check_working_memory(anatomical.rows, anatomical.cols);

  torch::Tensor fused_bytes;
  {
    torch::InferenceMode inference;
    const auto f = to_unit_tensor(functional_y_plane(functional), impl_->device);
    const auto a = to_unit_tensor(anatomical, impl_->device);
    const auto fused = impl_->model->fuse(f, a, seconds);
    // Truncation, not rounding, as the reference's numpy astype(uint8).
    fused_bytes = (fused * 255.0f).to(torch::kUInt8).to(torch::kCPU).contiguous();
  }
  cv::Mat y(anatomical.rows, anatomical.cols, CV_8UC1);
  std::memcpy(y.data, fused_bytes.data_ptr<uint8_t>(), y.total());
  return replace_y_plane(functional, y);
}

}  // namespace efcnet
