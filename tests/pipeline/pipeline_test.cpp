// The colour pipeline around the networks: golden end-to-end parity, baselines, input checks.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "support/shared_data.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using testing::golden_path;

TEST(PipelineGolden, ReproducesTheReferenceFusedImage) {
  EFCNET_REQUIRE_GOLDEN();
  const Fuser fuser({golden_path("efcnet_random.pth"), golden_path("seem_authors.pth"), "cpu", {}});
  const cv::Mat fused = fuser.fuse_pair(read_anatomical(golden_path("pipeline_mri.png")),
                                        read_functional(golden_path("pipeline_functional.png")));
  const cv::Mat expected = cv::imread(golden_path("pipeline_fused.png"), cv::IMREAD_COLOR);
  ASSERT_EQ(fused.size(), expected.size());
  ASSERT_EQ(fused.type(), expected.type());
  cv::Mat diff;
  cv::absdiff(fused, expected, diff);
  double max_level = 0;
  cv::minMaxLoc(diff.reshape(1), nullptr, &max_level);
  cv::Mat per_pixel;
  cv::transform(diff, per_pixel, cv::Matx13f(1, 1, 1));
  const int pixels_off = cv::countNonZero(per_pixel);
  EXPECT_LE(max_level, 1.0);
  EXPECT_LE(pixels_off, static_cast<int>(0.001 * fused.total())) << pixels_off << " pixels differ";
}

TEST(PipelineColour, ReplacingYKeepsTheChroma) {
  cv::Mat functional(16, 20, CV_8UC3);
  cv::randu(functional, 0, 256);
  const cv::Mat y(16, 20, CV_8UC1, cv::Scalar(77));
  cv::Mat yuv;
  cv::cvtColor(replace_y_plane(functional, y), yuv, cv::COLOR_BGR2YUV);
  cv::Mat original_yuv;
  cv::cvtColor(functional, original_yuv, cv::COLOR_BGR2YUV);
  // YUV -> BGR -> YUV rounds and clips, so the chroma comes back within a few levels unless clipped.
  cv::Mat u_new, u_old;
  cv::extractChannel(yuv, u_new, 1);
  cv::extractChannel(original_yuv, u_old, 1);
  cv::Mat diff;
  cv::absdiff(u_new, u_old, diff);
  EXPECT_GT(cv::countNonZero(diff <= 3), static_cast<int>(diff.total() / 2));
  const cv::Mat grey(16, 20, CV_8UC1, cv::Scalar(5));
  EXPECT_EQ(cv::countNonZero(replace_y_plane(grey, y) != y), 0);
}

TEST(PipelineBaselines, AverageAndMaxOfTheYPlane) {
  const cv::Mat anatomical(12, 12, CV_8UC1, cv::Scalar(100));
  const cv::Mat functional(12, 12, CV_8UC1, cv::Scalar(51));
  EXPECT_EQ(fuse_baseline(anatomical, functional, BaselineMethod::y_average).at<uint8_t>(3, 3),
            76);  // 75.5 rounds to even
  EXPECT_EQ(fuse_baseline(anatomical, functional, BaselineMethod::y_max).at<uint8_t>(3, 3), 100);
  const cv::Mat colour(12, 12, CV_8UC3, cv::Scalar(60, 80, 120));  // Y = 90, unsaturated
  const cv::Mat fused = fuse_baseline(anatomical, colour, BaselineMethod::y_max);
  EXPECT_EQ(fused.type(), CV_8UC3);
  EXPECT_NEAR(functional_y_plane(fused).at<uint8_t>(0, 0), 100, 1);  // YUV <-> BGR rounding
}

TEST(PipelineInputs, RefusesMismatchedOrTinyImages) {
  const cv::Mat a(12, 12, CV_8UC1, cv::Scalar(0));
  EXPECT_THROW(check_fusion_inputs(a, cv::Mat(12, 13, CV_8UC1)), FusionError);
  EXPECT_THROW(check_fusion_inputs(a, cv::Mat(12, 12, CV_16UC1)), FusionError);
  EXPECT_THROW(check_fusion_inputs(cv::Mat(10, 12, CV_8UC1), cv::Mat(10, 12, CV_8UC1)), FusionError);
  EXPECT_NO_THROW(check_fusion_inputs(a, cv::Mat(12, 12, CV_8UC3)));
}

TEST(PipelineFiles, EveryJobEndsFusedOrFailedWithItsReason) {
  const testing::TempDir dir;
  const auto at = [&dir](const std::string& name) { return (dir.path() / name).string(); };
  const Phantom phantom = make_phantom(32, PhantomKind::pet);
  const std::string anatomical = at("a.png"), functional = at("f.png");
  write_image_atomic(anatomical, phantom.anatomical);
  write_image_atomic(functional, phantom.functional);
  cv::Mat smaller;
  cv::resize(phantom.functional, smaller, {16, 16});
  write_image_atomic(at("small.png"), smaller);

  const std::vector<FusionJob> jobs{{"good", anatomical, functional, at("good.png")},
                                    {"missing", at("none.png"), functional, at("missing.png")},
                                    {"sizes", anatomical, at("small.png"), at("sizes.png")},
                                    {"unwritable", anatomical, functional, at("no-such-dir/out.png")},
                                    {"again", anatomical, functional, at("again.png")}};
  std::vector<std::pair<std::string, std::string>> reports;
  int fusions_made = 0;
  const BatchOutcome outcome = fuse_files(
      jobs,
      [&] {
        ++fusions_made;
        return [](const cv::Mat& a, const cv::Mat& f) { return fuse_baseline(a, f, BaselineMethod::y_max); };
      },
      WriteMode::no_clobber,
      [&](const FusionJob& job, const std::string& failure) { reports.emplace_back(job.name, failure); });

  EXPECT_EQ(fusions_made, 1);
  EXPECT_EQ(outcome.fused, 2u);
  EXPECT_EQ(outcome.failed, 3u);
  ASSERT_EQ(reports.size(), jobs.size());
  std::map<std::string, std::string> failure_of(reports.begin(), reports.end());
  EXPECT_EQ(failure_of["good"], "");
  EXPECT_EQ(failure_of["again"], "");
  EXPECT_NE(failure_of["missing"].find("none.png"), std::string::npos) << failure_of["missing"];
  EXPECT_NE(failure_of["sizes"].find("differ in size"), std::string::npos) << failure_of["sizes"];
  EXPECT_NE(failure_of["unwritable"].find("out.png"), std::string::npos) << failure_of["unwritable"];
  const cv::Mat expected = fuse_baseline(phantom.anatomical, phantom.functional, BaselineMethod::y_max);
  EXPECT_EQ(cv::norm(read_functional(at("good.png")), expected, cv::NORM_INF), 0);
}

// What `efcnet fuse` does with two directories, as a library call: pairs by stem, every output
// written, an existing output refused alone (named, counted failed) and the unpaired files listed.
TEST(PipelineFiles, ImageDirectoriesFuseEveryPairAndRefuseAnExistingOutputAlone) {
  const testing::TempDir dir;
  const auto at = [&dir](const std::string& name) { return (dir.path() / name).string(); };
  std::filesystem::create_directories(at("a"));
  std::filesystem::create_directories(at("f"));
  std::filesystem::create_directories(at("out"));
  const Phantom phantom = make_phantom(32, PhantomKind::pet);
  for (const std::string stem : {"one", "two", "three"}) {
    write_image_atomic(at("a/" + stem + ".png"), phantom.anatomical);
    write_image_atomic(at("f/" + stem + ".png"), phantom.functional);
  }
  write_image_atomic(at("a/alone.png"), phantom.anatomical);
  write_file_atomic(at("out/two.png"), "kept");
  FuseImageOptions options;
  options.method = "y-max";
  std::vector<ImageBatchEvent> events;
  const ImageBatchSummary summary =
      fuse_image_dirs(at("a"), at("f"), at("out"), options, [&](const ImageBatchEvent& e) { events.push_back(e); });

  EXPECT_EQ(summary.fused, 2u);
  EXPECT_EQ(summary.failed, 1u);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events.back().done, 3u);
  EXPECT_EQ(events.back().count, 3u);
  EXPECT_EQ(events.front().pair, "two");  // refused before the batch starts
  EXPECT_EQ(events.front().existing_output, at("out/two.png"));
  const cv::Mat expected = fuse_baseline(phantom.anatomical, phantom.functional, BaselineMethod::y_max);
  EXPECT_EQ(cv::norm(read_functional(at("out/one.png")), expected, cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(read_functional(at("out/three.png")), expected, cv::NORM_INF), 0);
  const auto unpaired = unpaired_reasons(summary.pairing, "image", at("a"), at("f"), [](const std::string& path) {
    return std::filesystem::path(path).stem().string();
  });
  ASSERT_EQ(unpaired.size(), 1u);
  EXPECT_EQ(unpaired[0].first, at("a/alone.png"));
  EXPECT_EQ(unpaired[0].second, "no single functional image named alone in " + at("f"));

  // One pair: the same bytes as the batch; the refusals before any work.
  fuse_image_files(at("a/one.png"), at("f/one.png"), at("single.png"), options);
  EXPECT_EQ(cv::norm(read_functional(at("single.png")), expected, cv::NORM_INF), 0);
  EXPECT_THROW(fuse_image_files(at("a/one.png"), at("f/one.png"), at("single.png"), options), OutputExistsError);
  EXPECT_THROW(fuse_image_files(at("a/one.png"), at("f/one.png"), at("out.txt"), options), IoError);
  options.method = "no-such-method";
  EXPECT_THROW(fuse_image_files(at("a/one.png"), at("f/one.png"), at("other.png"), options), OptionError);
  options.method = "y-max";
  EXPECT_THROW(fuse_image_dirs(at("a"), at("f"), at("a"), options), OptionError);  // an input directory
}

TEST(PipelineFiles, AnErrorMakingTheFusionEndsTheBatchAndWritesNothing) {
  const testing::TempDir dir;
  const auto at = [&dir](const std::string& name) { return (dir.path() / name).string(); };
  const Phantom phantom = make_phantom(32, PhantomKind::ct);
  write_image_atomic(at("a.png"), phantom.anatomical);
  write_image_atomic(at("f.png"), phantom.functional);
  std::vector<FusionJob> jobs;
  for (int i = 0; i < 6; ++i) {
    jobs.push_back({std::to_string(i), at("a.png"), at("f.png"), at("out") + std::to_string(i) + ".png"});
  }
  int reports = 0;
  EXPECT_THROW(fuse_files(
                   jobs, []() -> PairFusion { throw FusionError("w.pth: not a weights file"); }, WriteMode::replace,
                   [&](const FusionJob&, const std::string&) { ++reports; }),
               FusionError);
  EXPECT_EQ(reports, 0);
  for (const auto& job : jobs) EXPECT_FALSE(std::filesystem::exists(job.output)) << job.output;
}

}  // namespace
}  // namespace efcnet
