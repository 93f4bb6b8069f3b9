// Internal to efcnet_metrics: input validation and the per-family kernels, which all take
// validated CV_8UC1 images (so evaluate_fusion validates once and shares intermediate results).
#pragma once

#include <cstdint>

#include <opencv2/core.hpp>

// Marks the hot loops: on x86-64 compiled for AVX2 and for the baseline target, the CPU picking at
// run time. Both give identical results (no FMA contraction, no reassociation); only the vector
// width differs.
#if defined(__x86_64__) && defined(__GNUC__)
#define EFCNET_METRICS_HOT __attribute__((target_clones("avx2", "default")))
#else
#define EFCNET_METRICS_HOT
#endif

namespace efcnet::metrics::detail {

// VIF's largest window is 17x17; the evaluator cannot score smaller images.
inline constexpr int kMinSide = 17;

// CV_8UC1 view or copy of a grey image (see metrics.h for what is accepted); `role` names the
// image in the error message.
cv::Mat to_grey8(const cv::Mat& image, const char* role);
// Validates and converts a triple; all three the same size, at least kMinSide on each side.
void to_grey8_triple(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F, cv::Mat& a, cv::Mat& b, cv::Mat& f);
void check_single(const cv::Mat& f8);

// Exact integer sums over the triple: everything SCD, CC, MSE and PSNR need.
struct TripleMoments {
  std::int64_t n = 0;
  std::int64_t sa = 0, sb = 0, sf = 0;
  std::int64_t saa = 0, sbb = 0, sff = 0, saf = 0, sbf = 0, sab = 0;
  int max_f = 0;
};
TripleMoments triple_moments(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f);
double scd_from(const TripleMoments& m);
double cc_from(const TripleMoments& m);
double mse_from(const TripleMoments& m);
double psnr_from(const TripleMoments& m);

double entropy8(const cv::Mat& f);
double standard_deviation8(const cv::Mat& f);
double spatial_frequency8(const cv::Mat& f);
double average_gradient8(const cv::Mat& f);
double mutual_information8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f);
double vif8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f);
double qabf8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f);
double ssim8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f);

}  // namespace efcnet::metrics::detail
