// The reference test script's pipeline (spec section 1) around the two networks.
#include "efcnet/pipeline.h"

#include <cstring>
#include <string>
#include <thread>

#include <opencv2/imgproc.hpp>

#include "efcnet/model.h"
#include "efcnet/weights.h"

namespace efcnet {
namespace {

constexpr int kMinSide = 11;  // the SSIM window of training; smaller images are not meaningful

// (1,1,H,W) float32 in [0,1] from an 8-bit single-channel image.
torch::Tensor to_unit_tensor(const cv::Mat& plane, const torch::Device& device) {
  const cv::Mat continuous = plane.isContinuous() ? plane : plane.clone();
  const auto bytes = torch::from_blob(continuous.data, {1, 1, plane.rows, plane.cols}, torch::kUInt8);
  return bytes.to(device).to(torch::kFloat32) / 255.0f;
}

}  // namespace

cv::Mat functional_y_plane(const cv::Mat& functional) {
  if (functional.channels() == 1) return functional;
  cv::Mat yuv;
  cv::cvtColor(functional, yuv, cv::COLOR_BGR2YUV);
  cv::Mat y;
  cv::extractChannel(yuv, y, 0);
  return y;
}

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
  if (anatomical.type() != CV_8UC1) throw FusionError("the anatomical image must be 8-bit single-channel");
  if (functional.type() != CV_8UC1 && functional.type() != CV_8UC3) {
    throw FusionError("the functional image must be 8-bit grey or BGR");
  }
  if (anatomical.size() != functional.size()) {
    throw FusionError("image sizes differ: anatomical " + std::to_string(anatomical.cols) + "x" +
                      std::to_string(anatomical.rows) + ", functional " + std::to_string(functional.cols) + "x" +
                      std::to_string(functional.rows));
  }
  if (anatomical.rows < kMinSide || anatomical.cols < kMinSide) {
    throw FusionError("images must be at least " + std::to_string(kMinSide) + "x" + std::to_string(kMinSide));
  }

  const bool colour = functional.channels() == 3;
  cv::Mat yuv;
  cv::Mat planes[3];
  if (colour) {
    cv::cvtColor(functional, yuv, cv::COLOR_BGR2YUV);
    cv::split(yuv, planes);
  } else {
    planes[0] = functional;
  }

  torch::Tensor fused_bytes;
  {
    torch::InferenceMode inference;
    const auto f = to_unit_tensor(planes[0], impl_->device);
    const auto a = to_unit_tensor(anatomical, impl_->device);
    const auto fused = impl_->network->forward(impl_->seem->forward(f), a).fused;
    // Truncation, not rounding, as the reference's numpy astype(uint8).
    fused_bytes = (fused * 255.0f).to(torch::kUInt8).to(torch::kCPU).contiguous();
  }
  cv::Mat y(anatomical.rows, anatomical.cols, CV_8UC1);
  std::memcpy(y.data, fused_bytes.data_ptr<uint8_t>(), y.total());
  if (!colour) return y;

  planes[0] = y;
  cv::merge(planes, 3, yuv);
  cv::Mat bgr;
  cv::cvtColor(yuv, bgr, cv::COLOR_YUV2BGR);
  return bgr;
}

}  // namespace efcnet
