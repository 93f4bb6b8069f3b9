// The colour pipeline around the networks: golden end-to-end parity, baselines, input checks.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "support/shared_data.h"

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
  EXPECT_EQ(fuse_baseline(anatomical, functional, BaselineMethod::y_average).at<uint8_t>(3, 3), 76);  // 75.5 rounds to even
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

}  // namespace
}  // namespace efcnet
