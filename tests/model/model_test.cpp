// The model's structure (state-dict keys) and its parity with the reference on the golden cases.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "efcnet/model.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"
#include "model/autocast.h"
#include "model/layers.h"
#include "support/golden_tensor.h"
#include "train/losses.h"
#include "train/precision.h"

namespace efcnet {
namespace {

using testing::golden_path;
using testing::golden_tensor;
using testing::max_abs_diff;

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}

std::set<std::string> entry_names(const torch::nn::Module& module) {
  std::set<std::string> names;
  for (const auto& p : module.named_parameters()) names.insert(p.key());
  for (const auto& b : module.named_buffers()) names.insert(b.key());
  return names;
}

TEST(ModelStructure, SeemHasTheReferenceParameters) {
  SmoothEdgeExtractor seem;
  EXPECT_EQ(parameter_count(*seem), 306);
  EXPECT_EQ(entry_names(*seem).size(), 48u);
  EXPECT_TRUE(entry_names(*seem).count("conv_efg.10.running_var"));
}

TEST(ModelStructure, NetworkHasTheReferenceParameters) {
  FusionNetwork network;
  EXPECT_EQ(parameter_count(*network), 7459145);
  EXPECT_EQ(entry_names(*network).size(), 231u);
  for (const char* key :
       {"SU3.GlobalFeature.transformer.0.mlp.fc1.weight", "SU4.FFN.weight",
        "SU1.LocalFeature.Extraction.0.conv.0.weight", "ca3.conv1.weight", "convolutional_out2.conv.bias",
        "SU2.GlobalFeature.pos_embed", "conv4.bn.num_batches_tracked"}) {
    EXPECT_TRUE(entry_names(*network).count(key)) << key;
  }
}

// The layer table (model/layers.h) that the FLOP count sums over is the network that is built: each
// convolution's weight has the table's [out, in, k, k], each unit the table's width.
TEST(ModelStructure, TheLayerTableDescribesTheBuiltNetwork) {
  FusionNetwork network;
  const auto parameters = network->named_parameters();
  const auto shape = [&parameters](const std::string& key) {
    const torch::Tensor* found = parameters.find(key);
    return found != nullptr ? found->sizes().vec() : std::vector<int64_t>{};
  };
  std::vector<layers::Conv> convs(layers::kEncoder.begin(), layers::kEncoder.end());
  convs.insert(convs.end(), layers::kMerge.begin(), layers::kMerge.end());
  convs.push_back(layers::kJoin);
  convs.push_back(layers::kDecoderBlock);
  convs.push_back(layers::kOutput);
  for (const layers::Conv& c : convs) {
    EXPECT_EQ(shape(std::string(c.name) + ".conv.weight"), (std::vector<int64_t>{c.out, c.in, c.kernel, c.kernel}))
        << c.name;
  }
  for (std::size_t k = 0; k < layers::kEncoder.size(); ++k) {
    const int64_t width = layers::kEncoder[k].out;
    EXPECT_EQ(shape(std::string(layers::kAttention[k]) + ".conv1.weight"),
              (std::vector<int64_t>{layers::attention_hidden(width), width, 1, 1}));
    EXPECT_EQ(shape(std::string(layers::kScaleUnits[k]) + ".embed.weight"),
              (std::vector<int64_t>{layers::kMerge[k].out, layers::kMerge[k].out, 3, 3}));
  }
  EXPECT_EQ(shape(std::string(layers::kJoinUnit) + ".embed.weight"),
            (std::vector<int64_t>{layers::kJoin.out, layers::kJoin.out, 3, 3}));
  // Every module the network registers is in the table.
  std::set<std::string> tabled;
  for (const layers::Conv& c : convs) tabled.insert(c.name);
  for (const char* name : layers::kAttention) tabled.insert(name);
  for (const char* name : layers::kScaleUnits) tabled.insert(name);
  tabled.insert(layers::kJoinUnit);
  std::set<std::string> built;
  for (const auto& child : network->named_children()) built.insert(child.key());
  EXPECT_EQ(built, tabled);
}

TEST(ModelStructure, KeysMatchTheReferenceFiles) {
  EFCNET_REQUIRE_GOLDEN();
  SmoothEdgeExtractor seem;
  FusionNetwork network;
  for (const auto& [module, file] : std::vector<std::pair<torch::nn::Module*, std::string>>{
           {seem.get(), "seem_authors.pth"}, {network.get(), "efcnet_random.pth"}}) {
    std::set<std::string> file_keys;
    for (const auto& entry : read_state_dict(golden_path(file))) file_keys.insert(entry.first);
    EXPECT_EQ(entry_names(*module), file_keys) << file;
  }
}

TEST(ModelBehaviour, IdentitySeemReturnsItsInput) {
  torch::manual_seed(3);
  SmoothEdgeExtractor seem;  // random weights first: set_identity must overwrite all of them
  set_identity(*seem);
  seem->eval();
  torch::NoGradGuard no_grad;
  // Pixel values as images have them (0 and 1 included), on an odd, non-square size, batch 2.
  auto image = torch::rand({2, 1, 23, 37});
  image[0][0][0][0] = 0.0;
  image[1][0][22][36] = 1.0;
  const auto passed = seem->forward(image);
  ASSERT_EQ(passed.sizes(), image.sizes());
  EXPECT_LE((passed - image).abs().max().item<float>(), 1e-6f);
}

TEST(ModelBehaviour, TrainingModeIsStochasticAndEvalIsNot) {
  torch::manual_seed(1);
  FusionNetwork network;
  const auto s = torch::rand({2, 1, 12, 16});
  const auto a = torch::rand({2, 1, 12, 16});
  network->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(network->forward(s, a).fused, network->forward(s, a).fused));
  network->train();
  const auto before = network->conv3_3->bn->running_mean.clone();
  EXPECT_FALSE(torch::equal(network->forward(s, a).fused, network->forward(s, a).fused));  // dropout, DropPath
  EXPECT_FALSE(torch::equal(before, network->conv3_3->bn->running_mean));                  // batch statistics
}

TEST(ModelBehaviour, ShortcutAttentionEqualsTextbookAttention) {
  torch::manual_seed(2);
  FusionNetwork network;
  network->eval();
  torch::NoGradGuard no_grad;
  const auto s = torch::rand({1, 1, 16, 20});
  const auto a = torch::rand({1, 1, 16, 20});
  const auto shortcut = network->forward(s, a).fused;
  network->use_textbook_attention(true);
  EXPECT_LE(max_abs_diff(shortcut, network->forward(s, a).fused), 1e-6);
}

TEST(ModelBehaviour, RecomputedMlpHasTheSameValuesAndGradients) {
  torch::manual_seed(4);
  TokenMlp mlp(16, 64, 0.1);
  mlp->eval();  // no dropout, so both paths are deterministic
  const auto tokens = torch::randn({50, 1, 16});
  const auto run = [&](int64_t threshold) {
    mlp->recompute_above_bytes = threshold;
    mlp->zero_grad();
    auto input = tokens.clone().requires_grad_(true);
    const auto out = mlp->forward(input);
    (out * out).sum().backward();
    return std::vector<torch::Tensor>{out.detach(), input.grad(), mlp->fc1->weight.grad().clone(),
                                      mlp->fc1->bias.grad().clone(), mlp->fc2->weight.grad().clone()};
  };
  const auto plain = run(int64_t{1} << 40);
  const auto recomputed = run(0);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_LE(max_abs_diff(plain[i], recomputed[i]), 1e-5) << i;
  mlp->train();  // with dropout: a recomputed backward still gives finite gradients
  mlp->recompute_above_bytes = 0;
  auto input = tokens.clone().requires_grad_(true);
  mlp->forward(input).sum().backward();
  EXPECT_TRUE(torch::isfinite(input.grad()).all().item<bool>());
}

// Under bfloat16 autocast (efcnet train --precision bf16) the recomputing MLP's backward, which
// runs outside autocast, must compute what the plain path's does and return float32 gradients to
// float32 weights. Both paths round to bfloat16 (8 bits), in places in a different order.
TEST(ModelBehaviour, RecomputedMlpUnderBfloat16AutocastMatchesThePlainPath) {
  torch::manual_seed(4);
  TokenMlp mlp(16, 64, 0.1);
  mlp->eval();
  const auto tokens = torch::randn({50, 1, 16});
  const auto run = [&](int64_t threshold) {
    mlp->recompute_above_bytes = threshold;
    mlp->zero_grad();
    auto input = tokens.clone().requires_grad_(true);
    torch::Tensor out;
    {
      Bfloat16Autocast autocast(torch::kCPU);
      out = mlp->forward(input);
    }
    (out.to(torch::kFloat32) * out.to(torch::kFloat32)).sum().backward();
    EXPECT_EQ(mlp->fc1->weight.grad().scalar_type(), torch::kFloat32);
    return std::vector<torch::Tensor>{out.detach().to(torch::kFloat32), input.grad(), mlp->fc1->weight.grad().clone(),
                                      mlp->fc1->bias.grad().clone(), mlp->fc2->weight.grad().clone()};
  };
  const auto plain = run(int64_t{1} << 40);
  const auto recomputed = run(0);
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_LE(max_abs_diff(plain[i], recomputed[i]), 2e-2 * plain[i].abs().max().item<double>()) << i;
  }
}

// The lean training memory (recomputed E-Fusion stages and blocks, BatchNorm+LeakyReLU and the
// coordinate attention's product keeping less) computes what plain autograd does, in training
// mode: same loss, gradients, BatchNorm statistics and dropout masks (the recomputation repeats
// the forward pass's random numbers).
class TrainingMemory : public ::testing::TestWithParam<bool> {};

TEST_P(TrainingMemory, LeanStepEqualsKeepingEverything) {
  const bool bfloat16 = GetParam();
  if (bfloat16 && !bfloat16_training_supported()) {
    GTEST_SKIP() << "this CPU has neither AVX-512 BF16 nor AMX, where bfloat16 training is refused";
  }
  torch::manual_seed(5);
  FusionNetwork lean, eager;
  {
    torch::NoGradGuard no_grad;
    const auto from = lean->named_parameters();
    for (auto& p : eager->named_parameters()) p.value().copy_(from[p.key()]);
  }
  eager->set_training_memory(FusionNetworkImpl::TrainingMemory::keep_everything);
  const auto s = torch::rand({2, 1, 24, 32});
  const auto a = torch::rand({2, 1, 24, 32});
  const auto step = [&](FusionNetwork& network) {
    network->train();
    torch::manual_seed(9);
    const auto loss = training::network_loss(*network, s, a, bfloat16 ? Precision::bfloat16 : Precision::float32).total;
    loss.backward();
    return loss.item<double>();
  };
  const double lean_loss = step(lean);
  const double eager_loss = step(eager);
  // float32: rounding only; bfloat16: both round to 8 bits, in places in a different order.
  const double tolerance = bfloat16 ? 2e-2 : 1e-4;
  EXPECT_NEAR(lean_loss, eager_loss, (bfloat16 ? 2e-3 : 1e-6) * std::abs(eager_loss));
  // A convolution's bias before BatchNorm in training has a gradient of exactly zero but for
  // rounding, which differs between the two: it is held to the network's largest gradient.
  const auto eager_parameters = eager->named_parameters();
  double largest = 0.0;
  for (const auto& p : eager_parameters) largest = std::max(largest, p.value().grad().abs().max().item<double>());
  const auto before_batch_norm = [&eager_parameters](const std::string& key) {
    for (const auto& [bias, norm] :
         {std::pair<std::string, std::string>{".conv.bias", ".bn.weight"}, {".conv1.bias", ".bn1.weight"}}) {
      const auto at = key.size() >= bias.size() ? key.size() - bias.size() : std::string::npos;
      if (at != std::string::npos && key.compare(at, bias.size(), bias) == 0 &&
          eager_parameters.contains(key.substr(0, at) + norm)) {
        return true;
      }
    }
    return false;
  };
  for (const auto& p : lean->named_parameters()) {
    const auto& want = eager_parameters[p.key()].grad();
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    const double scale = before_batch_norm(p.key()) ? largest : want.abs().max().item<double>();
    EXPECT_LE(max_abs_diff(p.value().grad(), want), tolerance * scale) << p.key();
  }
  const auto eager_buffers = eager->named_buffers();
  for (const auto& b : lean->named_buffers()) {
    const auto& want = eager_buffers[b.key()];
    EXPECT_LE(max_abs_diff(b.value().to(torch::kDouble), want.to(torch::kDouble)), 1e-5) << b.key();
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, TrainingMemory, ::testing::Values(false, true),
                         [](const auto& test_case) { return test_case.param ? "Bfloat16" : "Float32"; });

// The token mixer's tokens are runs of C consecutive floats of the NCHW buffer (the reference's
// layout, which published weights mean), not the C channels of one pixel: the two differ.
TEST(ModelBehaviour, TokensAreRunsOfTheNchwBufferNotPixels) {
  torch::manual_seed(3);
  TokenMixer mixer(16);
  mixer->eval();
  torch::NoGradGuard no_grad;
  const int64_t b = 2, c = 16, h = 5, w = 7;
  const auto x = torch::rand({b, c, h, w});
  const auto mix = [&](const torch::Tensor& tokens) { return mixer->transformer->forward(tokens + mixer->pos_embed); };
  const auto runs = mix(x.reshape({b * h * w, 1, c})).reshape({b, c, h, w});
  const auto pixels =
      mix(x.permute({0, 2, 3, 1}).reshape({b * h * w, 1, c})).reshape({b, h, w, c}).permute({0, 3, 1, 2});
  const auto mixed = mixer->forward(x);
  EXPECT_LE(max_abs_diff(mixed, runs), 1e-6);
  EXPECT_GT(max_abs_diff(mixed, pixels), 1e-3);
}

struct GoldenCase {
  std::string name;
  bool textbook_attention;
};

class ModelParity : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(ModelParity, MatchesTheReferenceWithin1e5) {
  EFCNET_REQUIRE_GOLDEN();
  const auto& param = GetParam();
  SmoothEdgeExtractor seem;
  FusionNetwork network;
  load_weights(*seem, golden_path("seem_authors.pth"));
  load_weights(*network, golden_path("efcnet_random.pth"));
  seem->eval();
  network->eval();
  network->use_textbook_attention(param.textbook_attention);
  torch::NoGradGuard no_grad;

  const auto func = golden_tensor(param.name + "_func.npy");
  const auto mri = golden_tensor(param.name + "_mri.npy");
  const auto s = seem->forward(func);
  EXPECT_LE(max_abs_diff(s, golden_tensor(param.name + "_seem.npy")), 1e-5);
  // The network's parity is checked on the golden SEEM output, so an error is attributed to one net.
  const auto out = network->forward(golden_tensor(param.name + "_seem.npy"), mri);
  EXPECT_LE(max_abs_diff(out.fused, golden_tensor(param.name + "_fused.npy")), 1e-5);
  EXPECT_LE(max_abs_diff(out.v1, golden_tensor(param.name + "_v1.npy")), 1e-5);
  EXPECT_LE(max_abs_diff(out.v2, golden_tensor(param.name + "_v2.npy")), 1e-5);
  EXPECT_LE(max_abs_diff(out.v3, golden_tensor(param.name + "_v3.npy")), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Golden, ModelParity,
                         ::testing::Values(GoldenCase{"case_a", false}, GoldenCase{"case_b", false},
                                           GoldenCase{"case_a", true}, GoldenCase{"case_b", true}),
                         [](const auto& test_case) {
                           return test_case.param.name +
                                  (test_case.param.textbook_attention ? "_textbook" : "_shortcut");
                         });

}  // namespace
}  // namespace efcnet
