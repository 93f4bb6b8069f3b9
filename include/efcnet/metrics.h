// The twelve objective fusion metrics, computed with the conventions of the Python evaluator
// published with CDDFuse (CVPR 2023) that the field's tables use, quirks included (each source
// file in src/metrics/ states the conventions it follows). LibTorch-free: OpenCV only.
//
// Every image is a 256-level grey image: CV_8UC1, or CV_32FC1 / CV_64FC1 holding whole numbers in
// 0..255 (what read_grey gives). A is the anatomical image, B the functional one, F the fused one;
// all three must have one size of at least 17x17 (the largest VIF window).
#pragma once

#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "efcnet/error.h"
#include "efcnet/image.h"  // ImageReadOptions

namespace efcnet::metrics {

// The evaluator's column order; also the order of FusionMetrics' members.
inline constexpr std::array<const char*, 12> kMetricNames = {"EN",  "SD",   "SF",   "AG",   "MI", "SCD",
                                                             "VIF", "Qabf", "SSIM", "PSNR", "CC", "MSE"};

// Which way each metric is better, in kMetricNames order: higher for all but MSE.
enum class Better { higher, lower };
inline constexpr std::array<Better, kMetricNames.size()> kMetricBetter = {
    Better::higher, Better::higher, Better::higher, Better::higher, Better::higher, Better::higher,
    Better::higher, Better::higher, Better::higher, Better::higher, Better::higher, Better::lower};

// What each metric is, in kMetricNames order, one line each (A anatomical, B functional, F fused):
// evaluate's --help, the Python module's docstrings and the report's notes all print these.
inline constexpr std::array<const char*, kMetricNames.size()> kMetricMeanings = {
    "entropy of F's 256-bin histogram, in bits",
    "standard deviation of F",
    "spatial frequency of F: sqrt(mean squared row + column neighbour difference)",
    "average gradient of F: mean of sqrt((gx^2 + gy^2) / 2), central differences",
    "MI(F, A) + MI(F, B) in nats, exact grey values",
    "corr(A, F - B) + corr(B, F - A)",
    "VIF(A, F) + VIF(B, F), 4-scale pixel domain",
    "Petrovic-Xydeas edge preservation",
    "SSIM(F, A) + SSIM(F, B), 7x7 window, data range 2 (sic, as scikit-image on float input)",
    "10 log10(max(F)^2 / MSE)",
    "(corr(A, F) + corr(B, F)) / 2",
    "(mean((A - F)^2) + mean((B - F)^2)) / 2",
};

// Degenerate inputs give what the evaluator gives: NaN for a correlation with a constant image
// (SCD, CC), +inf PSNR when F equals both inputs.
struct FusionMetrics {
  double EN = 0, SD = 0, SF = 0, AG = 0, MI = 0, SCD = 0, VIF = 0, Qabf = 0, SSIM = 0, PSNR = 0, CC = 0, MSE = 0;

  // i-th metric in kMetricNames order.
  double operator[](std::size_t i) const;
  double& operator[](std::size_t i);
};

// Bad input (type, channels, size, values that are not whole grey levels); the message says which.
class MetricsError : public Error {
 public:
  using Error::Error;
};

// The evaluator's reading convention: decoded as 8-bit BGR whatever the file holds, converted with
// COLOR_BGR2GRAY in float and rounded half to even. Returns CV_8UC1; throws MetricsError naming
// the file when it cannot be read (missing, not a regular file, truncated, undecodable or too
// large: the refusals and messages of read_functional in image.h, with `options`).
cv::Mat read_grey(const std::string& path, const ImageReadOptions& options = {});

// The conversion read_grey applies to a decoded image: CV_8UC3 (BGR) through COLOR_BGR2GRAY in
// float, rounded half to even; CV_8UC1 as it is. Throws MetricsError for any other type.
cv::Mat to_grey(const cv::Mat& image);

// All twelve metrics at once; shares the passes the metrics have in common.
FusionMetrics evaluate_fusion(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F);

// Each metric's mean over `rows`, summed in their order (a NaN or inf in a column makes that mean
// NaN or inf, as NumPy's mean does). Throws MetricsError when `rows` is empty.
FusionMetrics mean_metrics(const std::vector<FusionMetrics>& rows);

// Single-metric entry points (each validates its inputs).
double entropy(const cv::Mat& F);                                                 // EN, bits
double standard_deviation(const cv::Mat& F);                                      // SD
double spatial_frequency(const cv::Mat& F);                                       // SF
double average_gradient(const cv::Mat& F);                                        // AG
double mutual_information(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F);  // MI, nats
double scd(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F);
double vif(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F);
double qabf(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F);
double ssim(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F);
double psnr(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F);
double cc(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F);
double mse(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F);

}  // namespace efcnet::metrics
