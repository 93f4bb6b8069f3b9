#include "pipeline/tensor_image.h"

#include <cstring>

namespace efcnet {

torch::Tensor unit_tensor(const cv::Mat& plane, const torch::Device& device) {
  const cv::Mat continuous = plane.isContinuous() ? plane : plane.clone();
  const auto bytes = torch::from_blob(continuous.data, {1, 1, plane.rows, plane.cols}, torch::kUInt8);
  return bytes.to(device).to(torch::kFloat32) / 255.0f;
}

cv::Mat byte_plane(const torch::Tensor& fused) {
  const auto bytes = (fused * 255.0f).to(torch::kUInt8).to(torch::kCPU).contiguous();
  cv::Mat plane(static_cast<int>(fused.size(2)), static_cast<int>(fused.size(3)), CV_8UC1);
  std::memcpy(plane.data, bytes.data_ptr<uint8_t>(), plane.total());
  return plane;
}

}  // namespace efcnet
