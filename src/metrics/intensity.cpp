// Metrics of the fused image alone: EN, SD, SF, AG. Integer sums are exact, so these agree with
// the evaluator's float32 numpy arithmetic to its own rounding.
#include <array>
#include <cmath>
#include <cstdint>

#include "detail.h"
#include "efcnet/metrics.h"

namespace efcnet::metrics {
namespace detail {

namespace {

std::array<std::int64_t, 256> histogram(const cv::Mat& f) {
  std::array<std::int64_t, 256> counts{};
  for (int y = 0; y < f.rows; ++y) {
    const std::uint8_t* row = f.ptr<std::uint8_t>(y);
    for (int x = 0; x < f.cols; ++x) ++counts[row[x]];
  }
  return counts;
}

}  // namespace

// Shannon entropy in bits of the 256-bin histogram.
double entropy8(const cv::Mat& f) {
  const auto counts = histogram(f);
  const double n = static_cast<double>(f.total());
  double en = 0;
  for (const std::int64_t c : counts) {
    if (c == 0) continue;
    const double p = static_cast<double>(c) / n;
    en -= p * std::log2(p);
  }
  return en;
}

// Population standard deviation (np.std), from the histogram with exact integer moments.
double standard_deviation8(const cv::Mat& f) {
  const auto counts = histogram(f);
  __int128 n = 0, s = 0, ss = 0;
  for (int v = 0; v < 256; ++v) {
    n += counts[v];
    s += static_cast<__int128>(counts[v]) * v;
    ss += static_cast<__int128>(counts[v]) * v * v;
  }
  const double n_d = static_cast<double>(n);
  return std::sqrt(static_cast<double>(n * ss - s * s) / (n_d * n_d));
}

// sqrt(mean of squared horizontal differences + mean of squared vertical differences).
double spatial_frequency8(const cv::Mat& f) {
  std::int64_t horizontal = 0, vertical = 0;
  for (int y = 0; y < f.rows; ++y) {
    const std::uint8_t* row = f.ptr<std::uint8_t>(y);
    for (int x = 1; x < f.cols; ++x) {
      const int d = row[x] - row[x - 1];
      horizontal += d * d;
    }
    if (y == 0) continue;
    const std::uint8_t* above = f.ptr<std::uint8_t>(y - 1);
    for (int x = 0; x < f.cols; ++x) {
      const int d = row[x] - above[x];
      vertical += d * d;
    }
  }
  const double h_count = static_cast<double>(f.rows) * (f.cols - 1);
  const double v_count = static_cast<double>(f.rows - 1) * f.cols;
  return std::sqrt(horizontal / h_count + vertical / v_count);
}

// Mean of sqrt((gx^2 + gy^2) / 2) with central differences inside and one-sided differences on the
// border rows and columns (np.gradient's layout). Works on doubled differences, which are integers.
double average_gradient8(const cv::Mat& f) {
  const int rows = f.rows, cols = f.cols;
  double total = 0;
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* row = f.ptr<std::uint8_t>(y);
    // Rows above and below for the vertical difference; on the border the row itself, with the
    // one-sided difference doubled to match the central ones' scale.
    const std::uint8_t* up = f.ptr<std::uint8_t>(y == 0 ? 0 : y - 1);
    const std::uint8_t* down = f.ptr<std::uint8_t>(y == rows - 1 ? y : y + 1);
    const int v_scale = (y == 0 || y == rows - 1) ? 2 : 1;
    double row_total = 0;
    for (int x = 0; x < cols; ++x) {
      int dx2;  // 2 * gx
      if (x == 0)
        dx2 = 2 * (row[1] - row[0]);
      else if (x == cols - 1)
        dx2 = 2 * (row[x] - row[x - 1]);
      else
        dx2 = row[x + 1] - row[x - 1];
      const int dy2 = v_scale * (down[x] - up[x]);
      row_total += std::sqrt((dx2 * dx2 + dy2 * dy2) / 8.0);
    }
    total += row_total;
  }
  return total / static_cast<double>(f.total());
}

}  // namespace detail

double entropy(const cv::Mat& F) {
  const cv::Mat f = detail::to_grey8(F, "fused");
  detail::check_single(f);
  return detail::entropy8(f);
}

double standard_deviation(const cv::Mat& F) {
  const cv::Mat f = detail::to_grey8(F, "fused");
  detail::check_single(f);
  return detail::standard_deviation8(f);
}

double spatial_frequency(const cv::Mat& F) {
  const cv::Mat f = detail::to_grey8(F, "fused");
  detail::check_single(f);
  return detail::spatial_frequency8(f);
}

double average_gradient(const cv::Mat& F) {
  const cv::Mat f = detail::to_grey8(F, "fused");
  detail::check_single(f);
  return detail::average_gradient8(f);
}

}  // namespace efcnet::metrics
