// DnnlLinear (src/model/dnnl_linear.h) against torch::linear followed by GELU or the residual add.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "model/dnnl_linear.h"
#include "support/required.h"

namespace efcnet {
namespace {

using Epilogue = DnnlLinear::Epilogue;

double relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  return ((actual - expected).abs().max() / expected.abs().max()).item<double>();
}

struct Layer {
  torch::Tensor weight = torch::randn({96, 40}) * 0.2, bias = torch::randn({96});
};

TEST(DnnlLinear, GeluEpilogueMatchesLinearThenGelu) {
  torch::manual_seed(41);
  const Layer layer;
  const auto linear = DnnlLinear::create(layer.weight, layer.bias, Epilogue::gelu);
  if (linear == nullptr) EFCNET_SKIP_UNLESS_CI() << "this build has no oneDNN 2.x (libdnnl-dev)";
  torch::NoGradGuard no_grad;
  for (const int64_t rows : {1, 37, 2048}) {  // one kernel per row count
    const auto x = torch::randn({rows, 40});
    auto dst = torch::full({rows, 96}, 7.0);
    ASSERT_TRUE((*linear)(x, dst)) << rows;
    EXPECT_LE(relative_error(dst, torch::gelu(torch::linear(x, layer.weight, layer.bias))), 1e-5) << rows;
  }
}

TEST(DnnlLinear, AccumulateEpilogueAddsToTheDestination) {
  torch::manual_seed(42);
  const Layer layer;
  const auto linear = DnnlLinear::create(layer.weight, layer.bias, Epilogue::accumulate);
  if (linear == nullptr) EFCNET_SKIP_UNLESS_CI() << "this build has no oneDNN 2.x (libdnnl-dev)";
  torch::NoGradGuard no_grad;
  // Rows of a wider matrix (a row stride of 130), as the token mixer's chunks are views.
  const auto storage = torch::randn({50, 130});
  const auto x = torch::randn({50, 40});
  auto dst = storage.narrow(1, 10, 96);
  const auto expected = dst + torch::linear(x, layer.weight, layer.bias);
  const auto untouched = storage.narrow(1, 106, 24).clone();
  ASSERT_TRUE((*linear)(x, dst));
  EXPECT_LE(relative_error(dst, expected), 1e-5);
  EXPECT_TRUE(torch::equal(storage.narrow(1, 106, 24), untouched));
}

TEST(DnnlLinear, LeavesOtherInputsToTheCaller) {
  EXPECT_EQ(DnnlLinear::create(torch::randn({8, 4}, torch::kFloat64), torch::randn({8}), Epilogue::gelu), nullptr);
  EXPECT_EQ(DnnlLinear::create(torch::randn({8, 4}), torch::randn({5}), Epilogue::gelu), nullptr);
  const auto linear = DnnlLinear::create(torch::randn({8, 4}), torch::randn({8}), Epilogue::gelu);
  if (linear == nullptr) EFCNET_SKIP_UNLESS_CI() << "this build has no oneDNN 2.x (libdnnl-dev)";
  auto dst = torch::zeros({3, 8});
  EXPECT_FALSE((*linear)(torch::randn({3, 5}), dst));                       // other input width
  EXPECT_FALSE((*linear)(torch::randn({4, 4}), dst));                       // other row count
  EXPECT_FALSE((*linear)(torch::randn({4, 3}).t(), dst));                   // columns not contiguous
  EXPECT_FALSE((*linear)(torch::randn({3, 4}).to(torch::kBFloat16), dst));  // other dtype
  EXPECT_TRUE(torch::equal(dst, torch::zeros({3, 8})));
}

}  // namespace
}  // namespace efcnet
