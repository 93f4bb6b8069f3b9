// Losses and gradients against the reference (golden case_a), and their behaviour on simple inputs.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "efcnet/losses.h"
#include "efcnet/model.h"
#include "efcnet/weights.h"
#include "support/golden_tensor.h"

namespace efcnet {
namespace {

using testing::golden_path;
using testing::golden_tensor;

TEST(Losses, IdenticalImagesCostNothing) {
  torch::manual_seed(0);
  const auto x = torch::rand({2, 1, 20, 24});
  EXPECT_NEAR(ssim_loss(x, x).item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(edge_loss(x, x).item<double>(), 0.0, 1e-7);
}

TEST(Losses, SsimLossOfUncorrelatedNoiseIsNearOne) {
  torch::manual_seed(1);
  const auto loss = ssim_loss(torch::rand({1, 1, 64, 64}), torch::rand({1, 1, 64, 64})).item<double>();
  EXPECT_GT(loss, 0.9);
  EXPECT_LT(loss, 1.1);
}

TEST(Losses, SobelMagnitudeOfAStepEdge) {
  auto step = torch::zeros({1, 1, 5, 6});
  step.narrow(3, 3, 3).fill_(1.0);
  const auto s = sobel_magnitude(step);
  // Interior rows: gx = -4 on both columns beside the edge (|[1,2,1]| weights), gy = 0.
  EXPECT_FLOAT_EQ(s[0][0][2][2].item<float>(), 4.0f);
  EXPECT_FLOAT_EQ(s[0][0][2][3].item<float>(), 4.0f);
  EXPECT_FLOAT_EQ(s[0][0][2][0].item<float>(), 0.0f);
}

TEST(Losses, FlatRegionsGiveFiniteGradients) {
  auto x = torch::full({1, 1, 16, 16}, 0.5, torch::requires_grad());
  const auto y = torch::rand({1, 1, 16, 16});
  edge_loss(x, y).backward();
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
}

TEST(Losses, SeemTargetIsClippedSobel) {
  torch::manual_seed(2);
  const auto f = torch::rand({1, 1, 12, 12});
  const auto target = seem_edge_target(f);
  EXPECT_LE(target.max().item<float>(), 1.0f);
  EXPECT_GE(target.min().item<float>(), 0.0f);
  EXPECT_TRUE(torch::allclose(target, sobel_magnitude(f).clamp(0, 1)));
}

class GoldenTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    EFCNET_REQUIRE_GOLDEN();
    std::ifstream in(golden_path("manifest.json"));
    manifest = nlohmann::json::parse(in);
    load_weights(*network, golden_path("efcnet_random.pth"));
    network->eval();  // the golden gradients were taken in eval mode
    seem = golden_tensor("case_a_seem.npy");
    mri = golden_tensor("case_a_mri.npy");
  }
  nlohmann::json manifest;
  FusionNetwork network;
  torch::Tensor seem, mri;
};

TEST_F(GoldenTraining, LossTermsMatchWithin1e5Relative) {
  torch::NoGradGuard no_grad;
  const auto loss = fusion_loss(network->forward(seem, mri).fused, seem, mri);
  const auto& expected = manifest["losses_case_a"];
  const std::pair<const char*, torch::Tensor> terms[] = {{"ssim_functional", loss.ssim_functional},
                                                         {"ssim_mri", loss.ssim_anatomical},
                                                         {"edge_functional", loss.edge_functional},
                                                         {"edge_mri", loss.edge_anatomical},
                                                         {"total", loss.total}};
  for (const auto& [name, value] : terms) {
    const double want = expected[name].get<double>();
    EXPECT_NEAR(value.item<double>(), want, 1e-5 * std::abs(want)) << name;
  }
}

TEST_F(GoldenTraining, GradientsMatchWithin1e4OfTheLargest) {
  const auto loss = fusion_loss(network->forward(seem, mri).fused, seem, mri);
  loss.total.backward();
  const auto parameters = network->named_parameters();
  for (const auto& name : manifest["grads_case_a"]) {
    const std::string key = name.get<std::string>();
    const auto expected = golden_tensor("grad_" + key + ".npy");
    const auto& grad = parameters[key].grad();
    ASSERT_TRUE(grad.defined()) << key;
    const double scale = expected.abs().max().item<double>();
    EXPECT_LE((grad - expected).abs().max().item<double>(), 1e-4 * scale) << key;
  }
}

}  // namespace
}  // namespace efcnet
