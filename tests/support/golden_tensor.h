// Golden reference tensors (../shared/golden/*.npy) as LibTorch tensors, and how far a result is
// from one.
#pragma once

#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/npy.h"
#include "support/shared_data.h"

namespace efcnet::testing {

inline torch::Tensor golden_tensor(const std::string& name) {
  const auto array = read_npy_float32(golden_path(name));
  return torch::from_blob(const_cast<float*>(array.values.data()), array.shape, torch::kFloat32).clone();
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>();
}

}  // namespace efcnet::testing
