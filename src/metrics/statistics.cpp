// Metrics from pixel statistics of the triple: MI (joint histograms), and SCD, CC, MSE, PSNR (exact
// integer moments; the evaluator's float32 sums agree with them to its own rounding).
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "detail.h"
#include "efcnet/metrics.h"

namespace efcnet::metrics {
namespace detail {

namespace {

using Wide = __int128;  // n * sum(x*y) overflows int64 from about 4096x4096 pixels

// Pearson correlation from sums; 0/0 = NaN for a constant image, as in the evaluator.
double correlation(std::int64_t n, std::int64_t sx, std::int64_t sy, std::int64_t sxx, std::int64_t syy,
                   std::int64_t sxy) {
  const Wide cov = Wide{n} * sxy - Wide{sx} * sy;
  const Wide var_x = Wide{n} * sxx - Wide{sx} * sx;
  const Wide var_y = Wide{n} * syy - Wide{sy} * sy;
  return static_cast<double>(cov) / std::sqrt(static_cast<double>(var_x) * static_cast<double>(var_y));
}

// sklearn.metrics.mutual_info_score of two label images whose labels are grey levels: every
// distinct value its own cluster, natural log, terms below DBL_EPSILON dropped, clipped at 0.
double mutual_information_pair(const cv::Mat& x, const cv::Mat& y) {
  std::vector<std::int32_t> joint(256 * 256, 0);
  std::int64_t rows_sum[256] = {}, cols_sum[256] = {};
  for (int r = 0; r < x.rows; ++r) {
    const std::uint8_t* xr = x.ptr<std::uint8_t>(r);
    const std::uint8_t* yr = y.ptr<std::uint8_t>(r);
    for (int c = 0; c < x.cols; ++c) ++joint[xr[c] * 256 + yr[c]];
  }
  for (int i = 0; i < 256; ++i)
    for (int j = 0; j < 256; ++j) {
      rows_sum[i] += joint[i * 256 + j];
      cols_sum[j] += joint[i * 256 + j];
    }
  int x_levels = 0, y_levels = 0;
  for (int i = 0; i < 256; ++i) {
    x_levels += rows_sum[i] > 0;
    y_levels += cols_sum[i] > 0;
  }
  if (x_levels == 1 || y_levels == 1) return 0.0;  // a single cluster carries no information

  const double n = static_cast<double>(x.total());
  const double log_n = std::log(n);
  double mi = 0;
  for (int i = 0; i < 256; ++i) {
    if (rows_sum[i] == 0) continue;
    for (int j = 0; j < 256; ++j) {
      const std::int32_t count = joint[i * 256 + j];
      if (count == 0) continue;
      const double p = count / n;
      const double log_outer = -std::log(static_cast<double>(rows_sum[i] * cols_sum[j])) + log_n + log_n;
      const double term = p * (std::log(static_cast<double>(count)) - log_n) + p * log_outer;
      if (std::abs(term) >= DBL_EPSILON) mi += term;
    }
  }
  return mi > 0 ? mi : 0.0;
}

}  // namespace

TripleMoments triple_moments(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f) {
  TripleMoments m;
  m.n = static_cast<std::int64_t>(f.total());
  for (int y = 0; y < f.rows; ++y) {
    const std::uint8_t* ar = a.ptr<std::uint8_t>(y);
    const std::uint8_t* br = b.ptr<std::uint8_t>(y);
    const std::uint8_t* fr = f.ptr<std::uint8_t>(y);
    // Per-row plain sums fit in 32 bits for rows of up to 16M pixels.
    std::uint32_t sa = 0, sb = 0, sf = 0;
    std::uint64_t saa = 0, sbb = 0, sff = 0, saf = 0, sbf = 0, sab = 0;
    int max_f = m.max_f;
    for (int x = 0; x < f.cols; ++x) {
      const std::uint32_t av = ar[x], bv = br[x], fv = fr[x];
      sa += av;
      sb += bv;
      sf += fv;
      saa += av * av;
      sbb += bv * bv;
      sff += fv * fv;
      saf += av * fv;
      sbf += bv * fv;
      sab += av * bv;
      max_f = fr[x] > max_f ? fr[x] : max_f;
    }
    m.sa += sa;
    m.sb += sb;
    m.sf += sf;
    m.saa += static_cast<std::int64_t>(saa);
    m.sbb += static_cast<std::int64_t>(sbb);
    m.sff += static_cast<std::int64_t>(sff);
    m.saf += static_cast<std::int64_t>(saf);
    m.sbf += static_cast<std::int64_t>(sbf);
    m.sab += static_cast<std::int64_t>(sab);
    m.max_f = max_f;
  }
  return m;
}

// corr(A, F - B) + corr(B, F - A).
double scd_from(const TripleMoments& m) {
  const double a_vs_f_minus_b = correlation(m.n, m.sa, m.sf - m.sb, m.saa, m.sff - 2 * m.sbf + m.sbb, m.saf - m.sab);
  const double b_vs_f_minus_a = correlation(m.n, m.sb, m.sf - m.sa, m.sbb, m.sff - 2 * m.saf + m.saa, m.sbf - m.sab);
  return a_vs_f_minus_b + b_vs_f_minus_a;
}

double cc_from(const TripleMoments& m) {
  return (correlation(m.n, m.sa, m.sf, m.saa, m.sff, m.saf) + correlation(m.n, m.sb, m.sf, m.sbb, m.sff, m.sbf)) / 2;
}

// (mean((A-F)^2) + mean((B-F)^2)) / 2.
double mse_from(const TripleMoments& m) {
  const std::int64_t squared_errors = (m.saa - 2 * m.saf + m.sff) + (m.sbb - 2 * m.sbf + m.sff);
  return static_cast<double>(squared_errors) / (2.0 * static_cast<double>(m.n));
}

// 10 log10(max(F)^2 / MSE): +inf when F equals both inputs, as in the evaluator.
double psnr_from(const TripleMoments& m) {
  return 10 * std::log10(static_cast<double>(m.max_f) * m.max_f / mse_from(m));
}

// MI(F, A) + MI(F, B), nats.
double mutual_information8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f) {
  return mutual_information_pair(f, a) + mutual_information_pair(f, b);
}

}  // namespace detail

namespace {

detail::TripleMoments checked_moments(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) {
  cv::Mat a, b, f;
  detail::to_grey8_triple(A, B, F, a, b, f);
  return detail::triple_moments(a, b, f);
}

}  // namespace

double mutual_information(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) {
  cv::Mat a, b, f;
  detail::to_grey8_triple(A, B, F, a, b, f);
  return detail::mutual_information8(a, b, f);
}

double scd(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) { return detail::scd_from(checked_moments(A, B, F)); }

double cc(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) { return detail::cc_from(checked_moments(A, B, F)); }

double mse(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) { return detail::mse_from(checked_moments(A, B, F)); }

double psnr(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) {
  return detail::psnr_from(checked_moments(A, B, F));
}

}  // namespace efcnet::metrics
