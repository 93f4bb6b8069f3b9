// The prepared inference path (inference.h) against the eager model and the golden reference
// outputs, the Fuser built on it, its FLOP count and its memory refusal.
#include <gtest/gtest.h>

#include <malloc.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"
#include "efcnet/inference.h"
#include "efcnet/model.h"
#include "efcnet/pipeline.h"
#include "efcnet/weights.h"
#include "support/golden_tensor.h"
#include "support/required.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using testing::golden_path;
using testing::golden_tensor;
using testing::max_abs_diff;

// Random weights whose BatchNorm statistics are far from (0, 1), so that folding them matters:
// training-mode passes on inputs with an offset and a scale.
struct RandomModels {
  SmoothEdgeExtractor seem{nullptr};
  FusionNetwork network{nullptr};

  explicit RandomModels(uint64_t seed) {
    torch::manual_seed(seed);
    seem = SmoothEdgeExtractor();
    network = FusionNetwork();
    torch::NoGradGuard no_grad;
    for (int pass = 0; pass < 3; ++pass) {
      const auto images = torch::rand({2, 1, 24, 32}) * 3.0 + 0.5;
      seem->forward(images);
      network->forward(images, images.flip(3) * 0.5);
    }
    seem->eval();
    network->eval();
  }
};

TEST(InferenceModel, BatchNormStatisticsOfTheTestModelsAreNonTrivial) {
  RandomModels models(11);
  EXPECT_GT(models.network->conv7_7->bn->running_mean.abs().max().item<double>(), 0.05);
  EXPECT_GT((models.network->conv7_7->bn->running_var - 1).abs().max().item<double>(), 0.05);
  EXPECT_GT(models.seem->up->ptr(1)->as<torch::nn::BatchNorm2dImpl>()->running_mean.abs().max().item<double>(), 0.05);
}

struct Shape {
  int64_t batch, height, width;
};

void PrintTo(const Shape& s, std::ostream* os) { *os << s.batch << "x" << s.height << "x" << s.width; }

class InferenceMatchesEager : public ::testing::TestWithParam<Shape> {};

// Non-square sizes, widths that are no multiple of any channel count (tokens span rows), batch > 1.
TEST_P(InferenceMatchesEager, Within1e5) {
  const Shape shape = GetParam();
  RandomModels models(21);
  const InferenceModel prepared(*models.seem, *models.network);
  torch::manual_seed(22);
  const auto functional = torch::rand({shape.batch, 1, shape.height, shape.width});
  const auto anatomical = torch::rand({shape.batch, 1, shape.height, shape.width});

  torch::NoGradGuard no_grad;
  const auto s = models.seem->forward(functional);
  EXPECT_LE(max_abs_diff(prepared.seem(functional), s), 1e-5);
  models.network->use_textbook_attention(true);
  const auto eager = models.network->forward(s, anatomical);
  StageSeconds seconds;
  const auto fast = prepared.forward(s, anatomical, &seconds);
  EXPECT_LE(max_abs_diff(fast.fused, eager.fused), 1e-5);
  EXPECT_LE(max_abs_diff(fast.v1, eager.v1), 1e-5);
  EXPECT_LE(max_abs_diff(fast.v2, eager.v2), 1e-5);
  EXPECT_LE(max_abs_diff(fast.v3, eager.v3), 1e-5);
  EXPECT_LE(max_abs_diff(prepared.fuse(functional, anatomical), eager.fused), 1e-5);
  EXPECT_GT(seconds.su3, 0.0);
  EXPECT_EQ(seconds.seem, 0.0);  // forward() runs no SEEM
}

INSTANTIATE_TEST_SUITE_P(RandomWeights, InferenceMatchesEager,
                         ::testing::Values(Shape{1, 16, 16}, Shape{2, 24, 40}, Shape{1, 37, 23}, Shape{2, 20, 33}),
                         [](const auto& test_case) {
                           const Shape& s = test_case.param;
                           return std::to_string(s.batch) + "x" + std::to_string(s.height) + "x" +
                                  std::to_string(s.width);
                         });

bool cpu_has_flag(const std::string& flag) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" " + flag + " ") != std::string::npos;
  }
  return false;
}

// One random model prepared with the default options and with one of their switches off.
struct WithAndWithout {
  static InferenceOptions without_option(bool InferenceOptions::*option) {
    InferenceOptions options;
    options.*option = false;
    return options;
  }

  WithAndWithout(uint64_t seed, bool InferenceOptions::*option)
      : models(seed),
        with(*models.seem, *models.network),
        without(*models.seem, *models.network, without_option(option)) {}

  // Max |difference| between the two fusions of a random H x W pair.
  double fusion_difference(int64_t h, int64_t w) const {
    const auto functional = torch::rand({1, 1, h, w});
    const auto anatomical = torch::rand({1, 1, h, w});
    return max_abs_diff(with.fuse(functional, anatomical), without.fuse(functional, anatomical));
  }

  RandomModels models;
  InferenceModel with, without;
};

// The Winograd convolutions (on by default) and the direct ones give the same fusion; the eager
// comparison above runs with Winograd where the CPU has it.
TEST(InferenceModel, WinogradConvolutionsMatchTheDirectOnes) {
  const WithAndWithout models(23, &InferenceOptions::winograd);
  EXPECT_EQ(models.without.winograd_layers(), 0);
  if (!cpu_has_flag("avx512f")) GTEST_SKIP() << "no AVX-512 on this CPU: oneDNN has no Winograd kernels for it";
  EXPECT_EQ(models.with.winograd_layers(), 18);  // 6 in each of SU2, SU3, SU4
  EXPECT_LE(models.fusion_difference(48, 72), 1e-5);
}

// bfloat16 runs, close to float32, where the CPU has the instructions, and is refused with a
// message saying why where it does not.
TEST(InferenceModel, Bfloat16RunsOrIsRefusedByName) {
  const RandomModels models(27);
  InferenceOptions options;
  options.precision = Precision::bfloat16;
  if (!bfloat16_supported()) {
    try {
      InferenceModel(*models.seem, *models.network, options);
      ADD_FAILURE() << "bfloat16 was accepted on a CPU without AVX-512";
    } catch (const OptionError& e) {
      EXPECT_NE(std::string(e.what()).find("AVX-512"), std::string::npos) << e.what();
    }
    return;
  }
  const InferenceModel exact(*models.seem, *models.network), fast(*models.seem, *models.network, options);
  torch::manual_seed(28);
  const auto functional = torch::rand({1, 1, 24, 40}), anatomical = torch::rand({1, 1, 24, 40});
  const auto reference = exact.fuse(functional, anatomical), rounded = fast.fuse(functional, anatomical);
  EXPECT_GT(max_abs_diff(rounded, reference), 0.0);   // it really ran in bfloat16
  EXPECT_LE(max_abs_diff(rounded, reference), 0.02);  // 5 levels; measured 0.003 (8-bit mantissas)
}

// The token mixers' linear layers through oneDNN (on by default) and through LibTorch give the
// same fusion.
TEST(InferenceModel, DnnlLinearLayersMatchLibTorchs) {
  const WithAndWithout models(25, &InferenceOptions::dnnl_linear);
  EXPECT_EQ(models.without.dnnl_linear_layers(), 0);
  if (models.with.dnnl_linear_layers() == 0) EFCNET_SKIP_UNLESS_CI() << "this build has no oneDNN 2.x (libdnnl-dev)";
  EXPECT_EQ(models.with.dnnl_linear_layers(), 24);  // attention, fc1, fc2 of two blocks in each of SU1..SU4
  EXPECT_LE(models.fusion_difference(40, 56), 1e-5);
}

class InferenceGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(InferenceGolden, MatchesTheReferenceWithin1e5) {
  EFCNET_REQUIRE_GOLDEN();
  const std::string name = GetParam();
  SmoothEdgeExtractor seem;
  FusionNetwork network;
  load_weights(*seem, golden_path("seem_authors.pth"));
  load_weights(*network, golden_path("efcnet_random.pth"));
  const InferenceModel prepared(*seem, *network);

  const auto seem_out = golden_tensor(name + "_seem.npy");
  EXPECT_LE(max_abs_diff(prepared.seem(golden_tensor(name + "_func.npy")), seem_out), 1e-5);
  const auto out = prepared.forward(seem_out, golden_tensor(name + "_mri.npy"));
  EXPECT_LE(max_abs_diff(out.fused, golden_tensor(name + "_fused.npy")), 1e-5);
  EXPECT_LE(max_abs_diff(out.v1, golden_tensor(name + "_v1.npy")), 1e-5);
  EXPECT_LE(max_abs_diff(out.v2, golden_tensor(name + "_v2.npy")), 1e-5);
  EXPECT_LE(max_abs_diff(out.v3, golden_tensor(name + "_v3.npy")), 1e-5);
}

// case_a: 64x64 real content; case_b: a batch of two 40x56 random inputs.
INSTANTIATE_TEST_SUITE_P(Golden, InferenceGolden, ::testing::Values("case_a", "case_b"),
                         [](const auto& test_case) { return test_case.param; });

// ---------------------------------------------------------------------------------------------
// The Fuser (which runs the prepared model) against the eager pipeline, colour and grey.

class FuserOnRandomWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    save_state_dict(module_state_dict(*models_.network), dir_ / "network.pth");
    save_state_dict(module_state_dict(*models_.seem), dir_ / "seem.pth");
  }
  FuserOptions options() const { return {dir_ / "network.pth", dir_ / "seem.pth", "cpu", {}}; }

  // The reference test script with the eager modules.
  cv::Mat eager_fuse(const cv::Mat& anatomical, const cv::Mat& functional) {
    torch::NoGradGuard no_grad;
    const auto unit = [](const cv::Mat& plane) {
      return torch::from_blob(plane.clone().data, {1, 1, plane.rows, plane.cols}, torch::kUInt8).to(torch::kFloat32) /
             255.0f;
    };
    models_.network->use_textbook_attention(true);
    const auto fused =
        models_.network->forward(models_.seem->forward(unit(functional_y_plane(functional))), unit(anatomical)).fused;
    const auto bytes = (fused * 255.0f).to(torch::kUInt8).contiguous();
    const cv::Mat y(anatomical.rows, anatomical.cols, CV_8UC1, bytes.data_ptr<uint8_t>());
    return replace_y_plane(functional, y.clone());
  }

  RandomModels models_{31};
  testing::TempDir dir_;
};

TEST_F(FuserOnRandomWeights, ColourAndGreyOutputsAreWithinOneLevelOfTheEagerPipeline) {
  const Fuser fuser(options());
  for (const PhantomKind kind : {PhantomKind::spect, PhantomKind::ct}) {
    const Phantom p = make_phantom(64, kind);
    cv::Mat anatomical, functional;  // non-square
    cv::resize(p.anatomical, anatomical, {56, 40}, 0, 0, cv::INTER_AREA);
    cv::resize(p.functional, functional, {56, 40}, 0, 0, cv::INTER_AREA);
    const cv::Mat fast = fuser.fuse_pair(anatomical, functional);
    const cv::Mat eager = eager_fuse(anatomical, functional);
    ASSERT_EQ(fast.type(), eager.type());
    EXPECT_EQ(fast.channels(), kind == PhantomKind::ct ? 1 : 3);
    cv::Mat diff;
    cv::absdiff(fast, eager, diff);
    double max_level = 0;
    cv::minMaxLoc(diff.reshape(1), nullptr, &max_level);
    EXPECT_LE(max_level, 1.0);
    EXPECT_LE(cv::countNonZero(diff.reshape(1)), static_cast<int>(diff.total() / 100));
  }
}

// A Fuser embedded in another program leaves its threads and heap as that program set them:
// runtime.h's settings are the program's to opt into.
TEST_F(FuserOnRandomWeights, LeavesTheProcessThreadsAndHeapAlone) {
  torch::set_num_threads(1);
  const Fuser fuser(options());
  const Phantom p = make_phantom(32, PhantomKind::spect);
  fuser.fuse_pair(p.anatomical, p.functional);
  EXPECT_EQ(torch::get_num_threads(), 1);
  // glibc still maps a large block of its own (keep_freed_memory_for_reuse would forbid it).
  constexpr std::size_t kLarge = std::size_t{64} << 20;
  void* block = std::malloc(kLarge);
  ASSERT_NE(block, nullptr);
  EXPECT_GE(static_cast<std::size_t>(mallinfo2().hblkhd), kLarge);
  std::free(block);
}

TEST_F(FuserOnRandomWeights, RefusesAPairTooLargeForMemoryBeforeRunning) {
  const Fuser fuser(options());
  // Never touched: the refusal comes before the pixels are read.
  const cv::Mat anatomical(16384, 16384, CV_8UC1), functional(16384, 16384, CV_8UC1);
  ASSERT_GT(estimated_working_bytes(16384, 16384), available_memory_bytes());
  try {
    fuser.fuse_pair(anatomical, functional);
    FAIL() << "a 16384x16384 pair was not refused";
  } catch (const FusionError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("16384x16384"), std::string::npos) << message;
    EXPECT_NE(message.find("GiB of working memory"), std::string::npos) << message;
    EXPECT_NE(message.find("MemAvailable"), std::string::npos) << message;
  }
}

// ---------------------------------------------------------------------------------------------
TEST(InferenceCost, FlopCountMatchesTheSpecification) {
  // Spec section 6 and the performance notes: about 1.06-1.07 TFLOP per 256x256 pair, most of it
  // in SU3 and in conv7_7 (64->256, 7x7, on both inputs).
  const StageFlops reference = counted_flops(256, 256, true);
  EXPECT_NEAR(reference.total() / 1e12, 1.07, 0.02);
  const double conv7_7 = 2.0 * 2 * 64 * 256 * 49 * 256 * 256;
  EXPECT_GT((reference.su3 + conv7_7) / reference.total(), 0.8);
  const StageFlops folded = counted_flops(256, 256, false);
  EXPECT_LT(folded.total(), reference.total());
  EXPECT_EQ(folded.encoder, reference.encoder);
  // Cost and memory grow with the pixels.
  EXPECT_NEAR(counted_flops(512, 512, false).total() / folded.total(), 4.0, 0.01);
  const auto growth = [](int side) {
    return estimated_working_bytes(2 * side, 2 * side) - estimated_working_bytes(side, side);
  };
  EXPECT_EQ(growth(512), 4 * growth(256));
}

TEST(InferenceCost, AvailableMemoryIsReadable) { EXPECT_GT(available_memory_bytes(), 0); }

}  // namespace
}  // namespace efcnet
