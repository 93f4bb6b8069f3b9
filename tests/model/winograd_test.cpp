// WinogradConvolution (src/model/winograd_conv.h) against LibTorch's direct convolution, on maps
// large enough to be convolved in several bands of rows.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "model/winograd_conv.h"

namespace efcnet {
namespace {

// 130 rows of 256 x 256 channels: a band of 128 rows, then one of 2 (bands hold ~8 Mi floats).
TEST(WinogradConvolution, BandsOfRowsMatchTheDirectConvolution) {
  torch::manual_seed(31);
  const auto weight = torch::randn({256, 256, 3, 3}) * 0.02;
  const auto bias = torch::randn({256});
  const auto winograd = WinogradConvolution::create(weight, bias);
  if (winograd == nullptr) GTEST_SKIP() << "no oneDNN Winograd kernels in this build or for this CPU (AVX-512)";
  torch::NoGradGuard no_grad;
  for (const auto& x : {torch::rand({1, 256, 130, 256}), torch::rand({2, 256, 9, 13})}) {
    const auto input = x.contiguous(torch::MemoryFormat::ChannelsLast);
    const std::optional<torch::Tensor> y = (*winograd)(input);
    ASSERT_TRUE(y.has_value()) << x.sizes();
    const auto expected = torch::conv2d(input, weight, bias, 1, 1);
    EXPECT_EQ(y->sizes(), expected.sizes());
    EXPECT_LE((*y - expected).abs().max().item<double>(), 1e-5 * expected.abs().max().item<double>()) << x.sizes();
  }
}

TEST(WinogradConvolution, OnlyFor3x3Float32Kernels) {
  EXPECT_EQ(WinogradConvolution::create(torch::randn({64, 64, 5, 5}), torch::randn({64})), nullptr);
  EXPECT_EQ(WinogradConvolution::create(torch::randn({64, 64, 3, 3}, torch::kFloat64), torch::randn({64})), nullptr);
}

TEST(WinogradConvolution, LeavesOtherInputsToTheCaller) {
  const auto winograd = WinogradConvolution::create(torch::randn({64, 64, 3, 3}), torch::randn({64}));
  if (winograd == nullptr) GTEST_SKIP() << "no oneDNN Winograd kernels in this build or for this CPU (AVX-512)";
  EXPECT_FALSE((*winograd)(torch::rand({1, 32, 8, 8})).has_value());                     // other channel count
  EXPECT_FALSE((*winograd)(torch::rand({1, 64, 8, 8}).to(torch::kBFloat16)).has_value());  // other dtype
}

}  // namespace
}  // namespace efcnet
