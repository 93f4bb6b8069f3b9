// module_state_dict / load_state_dict / load_weights on small torch::nn modules.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "efcnet/weights.h"
#include "support/temp_dir.h"
#include "weights/archive_support.h"

namespace efcnet {
namespace {

using testing::expect_mentions;
using testing::TempDir;
using testing::weights_error;

// A module with its own parameter and buffer before its children, nested children, a Linear
// without bias and a BatchNorm's buffers: everything that decides PyTorch's key order.
struct Net : torch::nn::Module {
  Net() {
    scale = register_parameter("scale", torch::ones({1}));
    steps = register_buffer("steps", torch::zeros({}, torch::kInt64));
    body = register_module("body", torch::nn::Sequential(torch::nn::Linear(3, 4), torch::nn::BatchNorm1d(4)));
    head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(4, 2).bias(false)));
  }
  torch::Tensor scale, steps;
  torch::nn::Sequential body{nullptr};
  torch::nn::Linear head{nullptr};
};

std::vector<std::string> keys(const StateDict& dict) {
  std::vector<std::string> names;
  for (const auto& entry : dict) names.push_back(entry.first);
  return names;
}

StateDict cloned(const StateDict& dict) {
  StateDict copy;
  for (const auto& [key, value] : dict) copy.emplace_back(key, value.clone());
  return copy;
}

TEST(WeightsStateDict, KeysFollowPyTorchOrder) {
  Net net;
  // PyTorch: own parameters, own buffers, then children depth first in registration order.
  const std::vector<std::string> expected = {"scale",
                                             "steps",
                                             "body.0.weight",
                                             "body.0.bias",
                                             "body.1.weight",
                                             "body.1.bias",
                                             "body.1.running_mean",
                                             "body.1.running_var",
                                             "body.1.num_batches_tracked",
                                             "head.weight"};
  EXPECT_EQ(keys(module_state_dict(net)), expected);
}

TEST(WeightsStateDict, EntriesAliasTheModuleWithoutGrad) {
  Net net;
  const StateDict dict = module_state_dict(net);
  EXPECT_FALSE(dict[0].second.requires_grad());
  EXPECT_EQ(dict[0].second.data_ptr(), net.scale.data_ptr());
}

TEST(WeightsStateDict, LoadCopiesEveryValueInPlace) {
  torch::manual_seed(1);
  Net source;
  source.body->forward(torch::randn({5, 3}));  // training mode: moves the BatchNorm statistics
  Net target;
  const StateDict dict = cloned(module_state_dict(source));
  const void* weight_before = target.head->weight.data_ptr();
  load_state_dict(target, dict, "source.pth");
  const StateDict loaded = module_state_dict(target);
  ASSERT_EQ(loaded.size(), dict.size());
  for (std::size_t i = 0; i < dict.size(); ++i) {
    EXPECT_TRUE(torch::equal(loaded[i].second, dict[i].second)) << dict[i].first;
  }
  EXPECT_EQ(target.head->weight.data_ptr(), weight_before);
  EXPECT_TRUE(target.head->weight.requires_grad());
  EXPECT_EQ(module_state_dict(target)[8].second.item<int64_t>(), 1);  // num_batches_tracked
}

TEST(WeightsStateDict, LoadConvertsDtype) {
  Net source;
  Net target;
  StateDict dict = cloned(module_state_dict(source));
  for (auto& [key, value] : dict) {
    if (value.is_floating_point()) value = value.to(torch::kFloat16);
  }
  load_state_dict(target, dict, "half.pth");
  EXPECT_EQ(target.head->weight.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::allclose(target.head->weight, source.head->weight, 1e-3, 1e-3));
}

TEST(WeightsStateDict, RefusesMissingKeyNamingIt) {
  Net net;
  StateDict dict = cloned(module_state_dict(net));
  dict.erase(dict.begin() + 3);  // body.0.bias
  expect_mentions(weights_error([&] { load_state_dict(net, dict, "some.pth"); }),
                  {"some.pth", "missing key(s) 'body.0.bias'"});
}

TEST(WeightsStateDict, RefusesUnexpectedKeyNamingIt) {
  Net net;
  StateDict dict = cloned(module_state_dict(net));
  dict.emplace_back("head.bias", torch::zeros({2}));
  expect_mentions(weights_error([&] { load_state_dict(net, dict, "some.pth"); }),
                  {"some.pth", "unexpected key(s) 'head.bias'"});
}

TEST(WeightsStateDict, RefusesShapeMismatchNamingKeyAndShapes) {
  Net net;
  StateDict dict = cloned(module_state_dict(net));
  dict.back().second = torch::zeros({4, 2});  // head.weight is [2, 4]
  expect_mentions(weights_error([&] { load_state_dict(net, dict, "some.pth"); }),
                  {"some.pth", "shape mismatch for 'head.weight'", "file [4, 2]", "module [2, 4]"});
}

// NaN weights would fuse to a black image: refused by key, the module left as it was.
TEST(WeightsStateDict, RefusesNonFiniteValuesNamingTheKeys) {
  Net net;
  const StateDict before = cloned(module_state_dict(net));
  StateDict dict = cloned(before);
  dict[0].second.fill_(std::numeric_limits<float>::quiet_NaN());      // scale
  dict.back().second[0][1] = std::numeric_limits<float>::infinity();  // head.weight
  dict[2].second = dict[2].second.to(torch::kFloat16);                // body.0.weight, finite
  expect_mentions(weights_error([&] { load_state_dict(net, dict, "some.pth"); }),
                  {"some.pth", "non-finite values (NaN or infinity) in 'scale', 'head.weight'"});
  EXPECT_TRUE(torch::equal(module_state_dict(net)[0].second, before[0].second));
}

TEST(WeightsStateDict, RefusedLoadLeavesTheModuleUnchanged) {
  Net net;
  const StateDict before = cloned(module_state_dict(net));
  StateDict dict;
  for (const auto& [key, value] : before) dict.emplace_back(key, torch::full_like(value, 7));
  dict.emplace_back("extra", torch::zeros({1}));
  EXPECT_THROW(load_state_dict(net, dict, "some.pth"), WeightsError);
  const StateDict after = module_state_dict(net);
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(after[i].second, before[i].second)) << before[i].first;
  }
}

TEST(WeightsStateDict, LongProblemListsStayReadable) {
  torch::nn::Sequential many;
  for (int i = 0; i < 20; ++i) many->push_back(torch::nn::Linear(2, 2));
  const std::string message = weights_error([&] { load_state_dict(*many, StateDict{}, "empty.pth"); });
  expect_mentions(message, {"missing key(s) '0.weight', '0.bias'", "and 30 more"});
}

TEST(WeightsStateDict, LoadWeightsRoundTripsThroughAFile) {
  TempDir dir;
  torch::manual_seed(2);
  Net source;
  save_state_dict(module_state_dict(source), dir / "net.pth");
  Net target;
  load_weights(target, dir / "net.pth");
  const StateDict expected = module_state_dict(source);
  const StateDict loaded = module_state_dict(target);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(torch::equal(loaded[i].second, expected[i].second)) << expected[i].first;
  }
}

}  // namespace
}  // namespace efcnet
