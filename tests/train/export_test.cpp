// efcnet export-weights: what --half stores in float16 and what it keeps in float32.
#include <gtest/gtest.h>

#include "efcnet/model.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using efcnet::testing::TempDir;

TEST(ExportWeights, HalfStoresKernelsAndMatricesInFloat16AndTheRestInFloat32) {
  TempDir dir;
  torch::manual_seed(7);
  FusionNetwork network;
  const StateDict original = module_state_dict(*network);
  save_state_dict(original, dir / "full.pth");
  ASSERT_EQ(export_weights(dir / "full.pth", dir / "half.pth", /*half=*/true), WeightsKind::network);

  const StateDict exported = read_state_dict(dir / "half.pth");
  ASSERT_EQ(exported.size(), original.size());
  int halved = 0;
  for (size_t i = 0; i < exported.size(); ++i) {
    const auto& [key, tensor] = exported[i];
    const torch::Tensor& before = original[i].second;
    ASSERT_EQ(key, original[i].first);
    if (!before.is_floating_point()) {
      EXPECT_TRUE(torch::equal(tensor, before)) << key;
    } else if (before.dim() >= 2) {
      ++halved;
      EXPECT_EQ(tensor.scalar_type(), torch::kFloat16) << key;
      EXPECT_TRUE(torch::equal(tensor, before.to(torch::kFloat16))) << key;
    } else {  // biases, BatchNorm and LayerNorm parameters and running statistics
      EXPECT_EQ(tensor.scalar_type(), torch::kFloat32) << key;
      EXPECT_TRUE(torch::equal(tensor, before)) << key;
    }
  }
  EXPECT_GT(halved, 50);
  // The float16 file still loads into the float32 model.
  FusionNetwork loaded;
  load_state_dict(*loaded, exported, dir / "half.pth");
  EXPECT_EQ(loaded->conv7_7->conv->weight.scalar_type(), torch::kFloat32);
}

TEST(ExportWeights, WithoutHalfTheValuesAreKeptExactly) {
  TempDir dir;
  torch::manual_seed(8);
  SmoothEdgeExtractor seem;
  const StateDict original = module_state_dict(*seem);
  save_state_dict(original, dir / "seem.pth");
  ASSERT_EQ(export_weights(dir / "seem.pth", dir / "copy.pth", /*half=*/false), WeightsKind::seem);
  const StateDict exported = read_state_dict(dir / "copy.pth");
  ASSERT_EQ(exported.size(), original.size());
  for (size_t i = 0; i < exported.size(); ++i) {
    EXPECT_EQ(exported[i].first, original[i].first);
    EXPECT_TRUE(torch::equal(exported[i].second, original[i].second)) << exported[i].first;
  }
}

}  // namespace
}  // namespace efcnet
