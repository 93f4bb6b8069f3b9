// WinogradConvolution (src/model/winograd_conv.h) against LibTorch's direct convolution, on
// blocked maps small enough for one pass and large enough to be convolved in bands of rows.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "model/winograd_conv.h"

namespace efcnet {
namespace {

using Epilogue = WinogradConvolution::Epilogue;

double relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  return ((actual - expected).abs().max() / expected.abs().max()).item<double>();
}

// The blocked result of `winograd` on `x` as an (N,C,H,W) map, `dst` starting as `start`.
torch::Tensor convolved(const WinogradConvolution& winograd, const torch::Tensor& x, const torch::Tensor& start,
                        Epilogue epilogue) {
  const torch::Tensor dst = to_blocked(start);
  EXPECT_TRUE(winograd(to_blocked(x), dst, epilogue)) << x.sizes();
  torch::Tensor out = torch::empty_like(start);
  from_blocked(dst, out);
  return out;
}

TEST(WinogradConvolution, BlockedLayoutRoundTrips) {
  const auto x = torch::rand({2, 32, 5, 7});
  const auto blocked = to_blocked(x.contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_EQ(blocked.sizes(), (std::vector<int64_t>{2, 2, 5, 7, 16}));
  EXPECT_TRUE(torch::equal(blocked.select(1, 1).select(3, 3), x.select(1, 19)));  // channel 16 + 3
  auto back = torch::empty({2, 32, 5, 7});
  from_blocked(blocked, back);
  EXPECT_TRUE(torch::equal(back, x));
}

// 260 rows of 256 x 256 channels: a band of 256 rows, then one of 4 (bands hold ~16 Mi floats);
// and a small map in one pass. Each epilogue against conv2d followed by it.
TEST(WinogradConvolution, MatchesTheDirectConvolutionWithEachEpilogue) {
  torch::manual_seed(31);
  const auto weight = torch::randn({256, 256, 3, 3}) * 0.02;
  const auto bias = torch::randn({256});
  const auto winograd = WinogradConvolution::create(weight, bias);
  if (winograd == nullptr) GTEST_SKIP() << "no oneDNN Winograd kernels in this build or for this CPU (AVX-512)";
  torch::NoGradGuard no_grad;
  for (const auto& x : {torch::rand({1, 256, 260, 256}), torch::rand({2, 256, 9, 13})}) {
    const auto expected = torch::conv2d(x, weight, bias, 1, 1);
    const auto residual = torch::randn(expected.sizes());
    EXPECT_LE(relative_error(convolved(*winograd, x, residual, Epilogue::none), expected), 1e-5) << x.sizes();
    EXPECT_LE(relative_error(convolved(*winograd, x, residual, Epilogue::relu), torch::relu(expected)), 1e-5);
    EXPECT_LE(relative_error(convolved(*winograd, x, residual, Epilogue::accumulate), expected + residual), 1e-5);
  }
}

TEST(WinogradConvolution, OnlyFor3x3Float32KernelsOfWholeChannelBlocks) {
  EXPECT_EQ(WinogradConvolution::create(torch::randn({64, 64, 5, 5}), torch::randn({64})), nullptr);
  EXPECT_EQ(WinogradConvolution::create(torch::randn({64, 64, 3, 3}, torch::kFloat64), torch::randn({64})), nullptr);
  EXPECT_EQ(WinogradConvolution::create(torch::randn({64, 24, 3, 3}), torch::randn({64})), nullptr);
}

TEST(WinogradConvolution, LeavesOtherInputsToTheCaller) {
  const auto winograd = WinogradConvolution::create(torch::randn({64, 64, 3, 3}), torch::randn({64}));
  if (winograd == nullptr) GTEST_SKIP() << "no oneDNN Winograd kernels in this build or for this CPU (AVX-512)";
  const auto dst = empty_blocked(1, 64, 8, 8).zero_();
  EXPECT_FALSE((*winograd)(empty_blocked(1, 32, 8, 8), dst, Epilogue::none));  // other channel count
  EXPECT_FALSE((*winograd)(empty_blocked(1, 64, 8, 9), dst, Epilogue::none));  // other size than dst
  EXPECT_FALSE((*winograd)(torch::rand({1, 64, 8, 8}), dst, Epilogue::none));  // not blocked
  EXPECT_TRUE(torch::equal(dst, torch::zeros_like(dst)));
}

}  // namespace
}  // namespace efcnet
