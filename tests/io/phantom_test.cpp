// The demo phantom: right types, deterministic, and the functional activity sits on the anatomy.
#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"

namespace efcnet {
namespace {

cv::Mat functional_signal(const cv::Mat& functional) {
  cv::Mat grey;
  if (functional.channels() == 3) {
    cv::cvtColor(functional, grey, cv::COLOR_BGR2GRAY);
  } else {
    grey = functional;
  }
  return grey > 10;
}

class PhantomKinds : public ::testing::TestWithParam<PhantomKind> {};

TEST_P(PhantomKinds, TypesSizesAndDeterminism) {
  const Phantom p = make_phantom(96, GetParam());
  EXPECT_EQ(p.anatomical.type(), CV_8UC1);
  EXPECT_EQ(p.functional.type(), GetParam() == PhantomKind::ct ? CV_8UC1 : CV_8UC3);
  EXPECT_EQ(p.anatomical.size(), cv::Size(96, 96));
  EXPECT_EQ(p.functional.size(), cv::Size(96, 96));
  const Phantom again = make_phantom(96, GetParam());
  EXPECT_EQ(cv::norm(p.anatomical, again.anatomical, cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(p.functional, again.functional, cv::NORM_INF), 0);
}

TEST_P(PhantomKinds, FunctionalSignalLiesOnTheAnatomy) {
  const Phantom p = make_phantom(128, GetParam());
  const cv::Mat active = functional_signal(p.functional);
  const double active_pixels = cv::countNonZero(active);
  EXPECT_GT(active_pixels, 0.05 * 128 * 128);
  EXPECT_LT(active_pixels, 0.9 * 128 * 128);  // a background exists
  // Where the functional image shows something, the anatomical image is not empty background.
  const cv::Mat outside = active & (p.anatomical < 15);
  EXPECT_LT(cv::countNonZero(outside), 0.02 * active_pixels);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, PhantomKinds,
                         ::testing::Values(PhantomKind::spect, PhantomKind::pet, PhantomKind::ct, PhantomKind::gfp));

TEST(Phantom, BrainHasDarkVentriclesInsideBrighterTissue) {
  const Phantom p = make_phantom(256);
  const double centre_left = p.anatomical.at<uint8_t>(118, 116);   // left ventricle
  const double white_matter = p.anatomical.at<uint8_t>(160, 128);  // below the ventricles
  const double corner = p.anatomical.at<uint8_t>(2, 2);
  EXPECT_LT(centre_left, 60);
  EXPECT_GT(white_matter, 130);
  EXPECT_EQ(corner, 0);
  cv::Scalar mean, stddev;
  cv::meanStdDev(p.anatomical, mean, stddev);
  EXPECT_GT(stddev[0], 30);  // real contrast, not a flat disc
}

TEST(Phantom, SpectIsPseudoColouredOnBlack) {
  const Phantom p = make_phantom(128, PhantomKind::spect);
  EXPECT_EQ(p.functional.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 0));
  cv::Mat hsv;
  cv::cvtColor(p.functional, hsv, cv::COLOR_BGR2HSV);
  std::vector<cv::Mat> channels;
  cv::split(hsv, channels);
  const cv::Mat coloured = (channels[1] > 128) & (channels[2] > 64);
  EXPECT_GT(cv::countNonZero(coloured), 0.2 * 128 * 128);
  // JET spans hues: both reddish (hue < 20) and bluish (hue > 100) pixels occur in the brain.
  EXPECT_GT(cv::countNonZero(coloured & (channels[0] < 20)), 50);
  EXPECT_GT(cv::countNonZero(coloured & (channels[0] > 100)), 50);
}

TEST(Phantom, GfpIsGreenOnly) {
  const Phantom p = make_phantom(64, PhantomKind::gfp);
  std::vector<cv::Mat> bgr;
  cv::split(p.functional, bgr);
  EXPECT_EQ(cv::countNonZero(bgr[0]), 0);
  EXPECT_EQ(cv::countNonZero(bgr[2]), 0);
  EXPECT_GT(cv::countNonZero(bgr[1]), 0);
}

TEST(Phantom, RejectsTinySizes) { EXPECT_THROW(make_phantom(16), efcnet::OptionError); }

}  // namespace
}  // namespace efcnet
