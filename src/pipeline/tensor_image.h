// 8-bit image planes to the networks' tensors and back, as the reference test script converts them
// (LibTorch and OpenCV; the Fuser and the bench's eager baseline share these).
#pragma once

#include <torch/torch.h>
#include <opencv2/core.hpp>

namespace efcnet {

// (1,1,H,W) float32 in [0,1] on `device` from a CV_8UC1 plane (any step).
torch::Tensor unit_tensor(const cv::Mat& plane, const torch::Device& device);

// CV_8UC1 from a (1,1,H,W) fused tensor in [0,1] on any device: value * 255 truncated, not
// rounded, as the reference's numpy astype(uint8).
cv::Mat byte_plane(const torch::Tensor& fused);

}  // namespace efcnet
