// The colour handling around any fusion of the Y plane (LibTorch-free): "the pseudocolour is
// separated before fusion and put back afterwards".
#include <algorithm>
#include <string>

#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"
#include "efcnet/pipeline.h"

namespace efcnet {
namespace {

constexpr int kMinSide = 11;  // the SSIM window of training; smaller images are not meaningful

}  // namespace

void check_fusion_inputs(const cv::Mat& anatomical, const cv::Mat& functional) {
  if (anatomical.type() != CV_8UC1) throw FusionError("the anatomical image must be 8-bit single-channel");
  if (functional.type() != CV_8UC1 && functional.type() != CV_8UC3) {
    throw FusionError("the functional image must be 8-bit grey or BGR");
  }
  if (anatomical.size() != functional.size()) {
    throw FusionError("image sizes differ: anatomical " + size_text(anatomical) + ", functional " +
                      size_text(functional));
  }
  if (std::min(anatomical.rows, anatomical.cols) < kMinSide) {
    throw FusionError("images must be at least " + std::to_string(kMinSide) + "x" + std::to_string(kMinSide) +
                      ", got " + size_text(anatomical));
  }
}

cv::Mat functional_y_plane(const cv::Mat& functional) {
  if (functional.channels() == 1) return functional;
  cv::Mat yuv;
  cv::cvtColor(functional, yuv, cv::COLOR_BGR2YUV);
  cv::Mat y;
  cv::extractChannel(yuv, y, 0);
  return y;
}

cv::Mat replace_y_plane(const cv::Mat& functional, const cv::Mat& y) {
  if (functional.channels() == 1) return y;
  cv::Mat yuv;
  cv::cvtColor(functional, yuv, cv::COLOR_BGR2YUV);
  cv::insertChannel(y, yuv, 0);
  cv::Mat bgr;
  cv::cvtColor(yuv, bgr, cv::COLOR_YUV2BGR);
  return bgr;
}

cv::Mat fuse_baseline(const cv::Mat& anatomical, const cv::Mat& functional, BaselineMethod method) {
  check_fusion_inputs(anatomical, functional);
  const cv::Mat y = functional_y_plane(functional);
  cv::Mat fused;
  switch (method) {
    case BaselineMethod::y_average: cv::addWeighted(y, 0.5, anatomical, 0.5, 0.0, fused); break;
    case BaselineMethod::y_max: cv::max(y, anatomical, fused); break;
    case BaselineMethod::anatomical_copy: fused = anatomical; break;
  }
  return replace_y_plane(functional, fused);
}

std::optional<BaselineMethod> baseline_method_named(std::string_view name) {
  if (name == "y-average") return BaselineMethod::y_average;
  if (name == "y-max") return BaselineMethod::y_max;
  if (name == "anatomical-copy") return BaselineMethod::anatomical_copy;
  return std::nullopt;
}

}  // namespace efcnet
