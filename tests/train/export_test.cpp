// efcnet export-weights: what --half stores in float16 and what it keeps in float32, and what the
// output logit scale and bias offset change.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "efcnet/model.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using efcnet::testing::TempDir;

struct Exported {
  StateDict original, exported;
};

// Saves `module`'s weights to DIR/in.pth, exports them to DIR/out.pth (checking the kind they are
// recognised as) and reads the export back.
Exported export_round_trip(const torch::nn::Module& module, const ExportOptions& options, WeightsKind kind,
                           const TempDir& dir) {
  Exported result{module_state_dict(module), {}};
  save_state_dict(result.original, dir / "in.pth");
  EXPECT_EQ(export_weights(dir / "in.pth", dir / "out.pth", options), kind);
  result.exported = read_state_dict(dir / "out.pth");
  return result;
}

TEST(ExportWeights, HalfStoresKernelsAndMatricesInFloat16AndTheRestInFloat32) {
  TempDir dir;
  torch::manual_seed(7);
  FusionNetwork network;
  ExportOptions options;
  options.half = true;
  const auto [original, exported] = export_round_trip(*network, options, WeightsKind::network, dir);
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
  load_state_dict(*loaded, exported, dir / "out.pth");
  EXPECT_EQ(loaded->conv7_7->conv->weight.scalar_type(), torch::kFloat32);
}

TEST(ExportWeights, WithoutHalfTheValuesAreKeptExactly) {
  TempDir dir;
  torch::manual_seed(8);
  SmoothEdgeExtractor seem;
  const auto [original, exported] = export_round_trip(*seem, {}, WeightsKind::seem, dir);
  ASSERT_EQ(exported.size(), original.size());
  for (size_t i = 0; i < exported.size(); ++i) {
    EXPECT_EQ(exported[i].first, original[i].first);
    EXPECT_TRUE(torch::equal(exported[i].second, original[i].second)) << exported[i].first;
  }
}

// Exports a seeded network with `options` and expects the output layer's weight times the scale,
// its bias plus the offset times the scale, and every other tensor unchanged.
void expect_only_the_output_logit_calibrated(const ExportOptions& options) {
  TempDir dir;
  torch::manual_seed(9);
  FusionNetwork network;
  const auto [original, exported] = export_round_trip(*network, options, WeightsKind::network, dir);
  ASSERT_EQ(exported.size(), original.size());
  const double scale = options.output_logit_scale, offset = options.output_bias_offset;
  for (size_t i = 0; i < exported.size(); ++i) {
    const auto& [key, tensor] = exported[i];
    const auto& before = original[i].second;
    if (key == "convolutional_out2.conv.weight") {
      EXPECT_TRUE(torch::allclose(tensor, before * scale, 0.0, 1e-7)) << key;
    } else if (key == "convolutional_out2.conv.bias") {
      EXPECT_TRUE(torch::allclose(tensor, (before + offset) * scale, 0.0, 1e-7)) << tensor << before;
    } else {
      EXPECT_TRUE(torch::equal(tensor, before)) << key;
    }
  }
}

TEST(ExportWeights, OutputBiasOffsetMovesOnlyTheLogitBeforeTheSigmoid) {
  ExportOptions options;
  options.output_bias_offset = 0.25;
  expect_only_the_output_logit_calibrated(options);
}

TEST(ExportWeights, OutputLogitScaleMultipliesTheLastLayerAfterTheOffset) {
  ExportOptions options;
  options.output_logit_scale = 1.5;
  options.output_bias_offset = 0.25;
  expect_only_the_output_logit_calibrated(options);
}

TEST(ExportWeights, NonPositiveOrNonFiniteCalibrationIsRefusedAndWritesNothing) {
  TempDir dir;
  FusionNetwork network;
  save_state_dict(module_state_dict(*network), dir / "in.pth");
  const double infinity = std::numeric_limits<double>::infinity();
  for (const double scale : {0.0, -1.0, std::nan(""), infinity}) {
    ExportOptions options;
    options.output_logit_scale = scale;
    EXPECT_THROW(export_weights(dir / "in.pth", dir / "out.pth", options), OptionError) << scale;
    EXPECT_FALSE(std::filesystem::exists(dir / "out.pth"));
  }
  for (const double offset : {std::nan(""), -infinity}) {
    ExportOptions options;
    options.output_bias_offset = offset;
    EXPECT_THROW(export_weights(dir / "in.pth", dir / "out.pth", options), OptionError) << offset;
    EXPECT_FALSE(std::filesystem::exists(dir / "out.pth"));
  }
}

TEST(ExportWeights, BadCalibrationIsRefusedBeforeTheInputIsRead) {
  TempDir dir;
  ExportOptions options;
  options.output_logit_scale = -1.0;
  // The input does not exist: the option, not the file, is what the error names.
  EXPECT_THROW(export_weights(dir / "missing.pth", dir / "out.pth", options), OptionError);
}

TEST(ExportWeights, OutputBiasOffsetOnSeemWeightsIsRefusedAndWritesNothing) {
  TempDir dir;
  SmoothEdgeExtractor seem;
  save_state_dict(module_state_dict(*seem), dir / "in.pth");
  ExportOptions options;
  options.output_bias_offset = 0.1;
  EXPECT_THROW(export_weights(dir / "in.pth", dir / "out.pth", options), OptionError);
  EXPECT_FALSE(std::filesystem::exists(dir / "out.pth"));
  options.output_bias_offset = 0.0;
  options.output_logit_scale = 1.2;
  EXPECT_THROW(export_weights(dir / "in.pth", dir / "out.pth", options), OptionError);
  EXPECT_FALSE(std::filesystem::exists(dir / "out.pth"));
}

}  // namespace
}  // namespace efcnet
