// Hand-computable cases for every metric (constant images, identity fusion, step edges), the
// evaluator's quirks that set its numbers apart from textbook definitions, and input errors.
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/metrics.h"
#include "support/temp_dir.h"

namespace {

namespace m = efcnet::metrics;

constexpr int kSide = 32;
constexpr double kTg = 0.9994, kTa = 0.9879;  // Qabf's sigmoid heights

cv::Mat constant(int value, int side = kSide) { return cv::Mat(side, side, CV_8U, cv::Scalar(value)); }

// Left half `low`, right half `high`.
cv::Mat step(int low = 0, int high = 100, int side = kSide) {
  cv::Mat image = constant(low, side);
  image.colRange(side / 2, side).setTo(high);
  return image;
}

// Deterministic texture with many grey levels and edges in every direction.
cv::Mat texture(int side = 64) {
  cv::Mat image(side, side, CV_8U);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) image.at<uchar>(y, x) = static_cast<uchar>((x * 37 + y * y * 11 + x * y) % 256);
  return image;
}

// ---- single-image metrics ----

TEST(Entropy, ConstantImageHasNone) { EXPECT_DOUBLE_EQ(m::entropy(constant(7)), 0.0); }

TEST(Entropy, TwoAndFourEquallyFrequentLevels) {
  EXPECT_DOUBLE_EQ(m::entropy(step()), 1.0);
  cv::Mat bands = constant(0);
  for (int band = 1; band < 4; ++band) bands.colRange(band * 8, band * 8 + 8).setTo(band * 60);
  EXPECT_DOUBLE_EQ(m::entropy(bands), 2.0);
}

TEST(StandardDeviation, ConstantAndStep) {
  EXPECT_DOUBLE_EQ(m::standard_deviation(constant(200)), 0.0);
  EXPECT_DOUBLE_EQ(m::standard_deviation(step(0, 100)), 50.0);  // population, not sample
}

TEST(SpatialFrequency, StepEdgeIsOneJumpPerRow) {
  EXPECT_DOUBLE_EQ(m::spatial_frequency(constant(9)), 0.0);
  // 32 jumps of 100 among 32 x 31 horizontal differences, no vertical ones.
  EXPECT_NEAR(m::spatial_frequency(step()), 100 / std::sqrt(31.0), 1e-12);
  EXPECT_NEAR(m::spatial_frequency(step().t()), 100 / std::sqrt(31.0), 1e-12);
}

TEST(AverageGradient, CentralDifferencesInside) {
  EXPECT_DOUBLE_EQ(m::average_gradient(constant(3)), 0.0);
  // Columns 15 and 16 see a central difference of 50; sqrt(50^2 / 2) there, 0 elsewhere.
  EXPECT_NEAR(m::average_gradient(step()), 2 * (50 / std::sqrt(2.0)) / kSide, 1e-12);
}

TEST(AverageGradient, OneSidedDifferencesOnTheBorder) {
  cv::Mat edge = constant(0);
  edge.col(0).setTo(100);
  // Column 0: one-sided difference 100; column 1: central difference 50.
  EXPECT_NEAR(m::average_gradient(edge), (100 + 50) / std::sqrt(2.0) / kSide, 1e-12);
}

// ---- triple metrics ----

TEST(MutualInformation, IdentityIsTwiceTheEntropyInNats) {
  EXPECT_NEAR(m::mutual_information(step(), step(), step()), 2 * std::log(2.0), 1e-12);
}

TEST(MutualInformation, LabelsNotOrderMatter) {
  // The inverted step carries the same partition; a constant image carries none.
  EXPECT_NEAR(m::mutual_information(step(100, 0), constant(5), step()), std::log(2.0), 1e-12);
  EXPECT_DOUBLE_EQ(m::mutual_information(step(), step(), constant(5)), 0.0);
}

TEST(MutualInformation, IndependentImagesShareNothing) {
  EXPECT_NEAR(m::mutual_information(step().t(), step().t(), step()), 0.0, 1e-12);
}

TEST(Scd, DifferencesThatEqualTheOtherSource) {
  // F - B = A and F - A = B: each correlation is 1.
  EXPECT_NEAR(m::scd(step(0, 100), step(100, 0), constant(100)), 2.0, 1e-12);
  EXPECT_TRUE(std::isnan(m::scd(constant(4), step(), step())));
}

TEST(Cc, PerfectAndInverted) {
  EXPECT_NEAR(m::cc(step(), step(), step()), 1.0, 1e-12);
  EXPECT_NEAR(m::cc(step(100, 0), step(100, 0), step()), -1.0, 1e-12);
  EXPECT_TRUE(std::isnan(m::cc(constant(4), step(), step())));
}

TEST(MseAndPsnr, ConstantOffsets) {
  EXPECT_DOUBLE_EQ(m::mse(constant(0), constant(20), constant(10)), 100.0);
  EXPECT_DOUBLE_EQ(m::mse(step(), step(), step()), 0.0);
  // max(F) = 100, MSE = mean(F^2) = 5000.
  EXPECT_NEAR(m::psnr(constant(0), constant(0), step()), 10 * std::log10(2.0), 1e-12);
  EXPECT_EQ(m::psnr(step(), step(), step()), std::numeric_limits<double>::infinity());
}

TEST(Vif, IdentityIsOnePerSource) {
  const cv::Mat t = texture();
  EXPECT_NEAR(m::vif(t, t, t), 2.0, 1e-9);
}

TEST(Vif, FlatFusionKeepsNoInformation) { EXPECT_DOUBLE_EQ(m::vif(texture(), texture(), constant(128, 64)), 0.0); }

TEST(Vif, ConstantReferenceCountsAsOne) {
  // The evaluator turns 0/0 into 1 for a reference without variance.
  const cv::Mat t = texture();
  EXPECT_NEAR(m::vif(constant(50, 64), t, t), 2.0, 1e-9);
}

TEST(Qabf, IdentityUsesTheFusedStrengthWhereStrengthsAreEqual) {
  // Equal strengths give G = g_F (>= 100 here), not 1, so the strength sigmoid is at its top Tg;
  // equal angles give A = 1. Textbook G = 1 would give Tg / (1 + e^-7.5) instead.
  const double expected = kTg * kTa / (1 + std::exp(-22 * (1 - 0.8)));
  EXPECT_NEAR(m::qabf(step(), step(), step()), expected, 1e-6);
}

TEST(Qabf, FlatSourcesHaveNoEdgesToPreserve) { EXPECT_TRUE(std::isnan(m::qabf(constant(0), constant(0), step()))); }

TEST(Ssim, IdentityIsOnePerSource) {
  const cv::Mat t = texture();
  EXPECT_DOUBLE_EQ(m::ssim(t, t, t), 2.0);
}

TEST(Ssim, ConstantImagesCompareTheirMeans) {
  // Variances vanish, so each map value is (2 mu_F mu_X + C1) / (mu_F^2 + mu_X^2 + C1).
  const double c1 = 0.0004;
  EXPECT_NEAR(m::ssim(constant(50), constant(50), constant(100)), 2 * (2 * 100 * 50 + c1) / (100 * 100 + 50 * 50 + c1),
              1e-6);
}

TEST(Ssim, DataRangeIsTwo) {
  // F = 0 against 1: C1 / (1 + C1) with C1 = (0.01 * 2)^2; a 255 data range would give 0.87.
  const double c1 = 0.0004;
  EXPECT_NEAR(m::ssim(constant(1), constant(1), constant(0)), 2 * c1 / (1 + c1), 1e-9);
}

// ---- all at once ----

TEST(EvaluateFusion, AgreesWithTheSingleMetricsInColumnOrder) {
  const cv::Mat a = texture(), b = texture().t(), f = (texture() + texture().t()) / 2;
  const m::FusionMetrics all = m::evaluate_fusion(a, b, f);
  const double singles[] = {m::entropy(f),
                            m::standard_deviation(f),
                            m::spatial_frequency(f),
                            m::average_gradient(f),
                            m::mutual_information(a, b, f),
                            m::scd(a, b, f),
                            m::vif(a, b, f),
                            m::qabf(a, b, f),
                            m::ssim(a, b, f),
                            m::psnr(a, b, f),
                            m::cc(a, b, f),
                            m::mse(a, b, f)};
  ASSERT_EQ(m::kMetricNames.size(), std::size(singles));
  for (std::size_t i = 0; i < m::kMetricNames.size(); ++i) EXPECT_DOUBLE_EQ(all[i], singles[i]) << m::kMetricNames[i];
  EXPECT_EQ(all[6], all.VIF);
  EXPECT_EQ(std::string(m::kMetricNames[7]), "Qabf");
}

TEST(EvaluateFusion, FloatInputWithWholeGreyLevelsEqualsEightBit) {
  const cv::Mat a = texture(), b = texture().t(), f = (texture() + texture().t()) / 2;
  cv::Mat af, bf, ff;
  a.convertTo(af, CV_32F);
  b.convertTo(bf, CV_64F);
  f.convertTo(ff, CV_32F);
  const m::FusionMetrics from_bytes = m::evaluate_fusion(a, b, f);
  const m::FusionMetrics from_floats = m::evaluate_fusion(af, bf, ff);
  for (std::size_t i = 0; i < m::kMetricNames.size(); ++i)
    EXPECT_EQ(from_bytes[i], from_floats[i]) << m::kMetricNames[i];
}

TEST(EvaluateFusion, SmallestAcceptedSize) {
  const m::FusionMetrics r = m::evaluate_fusion(texture(17), texture(17).t(), texture(17));
  EXPECT_TRUE(std::isfinite(r.VIF));
  EXPECT_TRUE(std::isfinite(r.SSIM));
}

// ---- errors ----

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const m::MetricsError& e) {
    return e.what();
  }
  return "";
}

TEST(Errors, SizesMustMatch) {
  const std::string message = error_of([] { m::evaluate_fusion(constant(1), constant(1, 40), constant(1)); });
  EXPECT_NE(message.find("differ"), std::string::npos) << message;
  EXPECT_NE(message.find("40x40"), std::string::npos) << message;
  EXPECT_THROW(m::ssim(constant(1), constant(1), constant(1, 40)), m::MetricsError);
}

TEST(Errors, TooSmall) {
  const std::string message = error_of([] { m::evaluate_fusion(constant(1, 16), constant(1, 16), constant(1, 16)); });
  EXPECT_NE(message.find("16x16"), std::string::npos) << message;
  EXPECT_THROW(m::entropy(cv::Mat(17, 16, CV_8U, cv::Scalar(0))), m::MetricsError);
}

TEST(Errors, OnlyGreyLevels) {
  EXPECT_THROW(m::entropy(cv::Mat(kSide, kSide, CV_8UC3, cv::Scalar::all(0))), m::MetricsError);
  EXPECT_THROW(m::entropy(cv::Mat(kSide, kSide, CV_32F, cv::Scalar(0.5))), m::MetricsError);
  EXPECT_THROW(m::entropy(cv::Mat(kSide, kSide, CV_32F, cv::Scalar(256))), m::MetricsError);
  EXPECT_THROW(m::entropy(cv::Mat(kSide, kSide, CV_16U, cv::Scalar(3))), m::MetricsError);
  EXPECT_THROW(m::entropy(cv::Mat()), m::MetricsError);
}

// ---- reading ----

class ReadGrey : public ::testing::Test {
 protected:
  efcnet::testing::TempDir dir_;
};

TEST_F(ReadGrey, ColourConvertsInFloatAndRoundsToEven) {
  cv::Mat bgr(1, 4, CV_8UC3);
  bgr.at<cv::Vec3b>(0, 0) = {0, 0, 255};   // R: 76.245 -> 76
  bgr.at<cv::Vec3b>(0, 1) = {0, 255, 0};   // G: 149.685 -> 150
  bgr.at<cv::Vec3b>(0, 2) = {255, 0, 0};   // B: 29.07 -> 29
  bgr.at<cv::Vec3b>(0, 3) = {90, 90, 90};  // grey stays
  const std::string path = dir_ / "colours.png";
  ASSERT_TRUE(cv::imwrite(path, bgr));
  const cv::Mat grey = m::read_grey(path);
  ASSERT_EQ(grey.type(), CV_8UC1);
  EXPECT_EQ(grey.at<uchar>(0, 0), 76);
  EXPECT_EQ(grey.at<uchar>(0, 1), 150);
  EXPECT_EQ(grey.at<uchar>(0, 2), 29);
  EXPECT_EQ(grey.at<uchar>(0, 3), 90);
}

TEST(ToGrey, IsReadGreysConversionOfDecodedImages) {
  cv::Mat bgr(1, 3, CV_8UC3);
  bgr.at<cv::Vec3b>(0, 0) = {0, 0, 255};  // R: 76.245 -> 76
  bgr.at<cv::Vec3b>(0, 1) = {0, 255, 0};  // G: 149.685 -> 150 (OpenCV's 8-bit weights give 150 too, R 76)
  bgr.at<cv::Vec3b>(0, 2) = {255, 0, 0};  // B: 29.07 -> 29
  const cv::Mat grey = m::to_grey(bgr);
  ASSERT_EQ(grey.type(), CV_8UC1);
  EXPECT_EQ(grey.at<uchar>(0, 0), 76);
  EXPECT_EQ(grey.at<uchar>(0, 1), 150);
  EXPECT_EQ(grey.at<uchar>(0, 2), 29);
  const cv::Mat already(2, 2, CV_8UC1, cv::Scalar(7));
  EXPECT_EQ(m::to_grey(already).data, already.data);  // grey passes through, not copied
  EXPECT_THROW(m::to_grey(cv::Mat(2, 2, CV_8UC4, cv::Scalar::all(0))), m::MetricsError);
  EXPECT_THROW(m::to_grey(cv::Mat(2, 2, CV_32FC3, cv::Scalar::all(0))), m::MetricsError);
}

TEST_F(ReadGrey, UnreadableFilesAreNamed) {
  const std::string missing = dir_ / "missing.png";
  EXPECT_EQ(error_of([&] { m::read_grey(missing); }), missing + ": no such file");
  const std::string garbage = dir_ / "garbage.png";
  std::ofstream(garbage) << "not an image";
  EXPECT_EQ(error_of([&] { m::read_grey(garbage); }),
            garbage + ": cannot decode (corrupt, truncated or not a supported image format)");
  EXPECT_EQ(error_of([&] { m::read_grey(dir_.path().string()); }),
            dir_.path().string() + ": is a directory, not an image file");
}

// libpng decodes the rows it has of a cut-off file; scoring them would be scoring noise.
TEST_F(ReadGrey, TruncatedPngIsRefused) {
  std::vector<unsigned char> png;
  ASSERT_TRUE(cv::imencode(".png", cv::Mat(64, 64, CV_8UC3, cv::Scalar(10, 200, 30)), png));
  const std::string path = dir_ / "cut.png";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), png.size() - 20);
  EXPECT_NE(error_of([&] { m::read_grey(path); }).find(path + ": truncated PNG"), std::string::npos);
}

}  // namespace
