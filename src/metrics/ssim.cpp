// SSIM: SSIM(F, A) + SSIM(F, B), each skimage.metrics.structural_similarity with its defaults for
// float32 input: 7x7 uniform window (scipy.ndimage.uniform_filter), K1 = 0.01, K2 = 0.03, sample
// covariance (49/48), the mean over the map with a 3-pixel border cropped, and data range 2
// (skimage takes the range of the float dtype, -1..1, not 255).
//
// With data range 2 the constants C1 = 0.0004 and C2 = 0.0036 are tiny next to the float32
// rounding of 255-scale moments, so in nearly flat windows the result hinges on that rounding.
// The computation therefore reproduces skimage's float32 arithmetic operation by operation,
// including scipy's uniform filter: per axis (down the columns first, then along the rows) a
// running sum in double over the 'reflect'-extended line, updated by (entering - leaving), divided
// by 7 and stored as float32 at each position.
#include <algorithm>
#include <vector>

#include "detail.h"
#include "efcnet/metrics.h"

namespace efcnet::metrics {
namespace detail {

namespace {

constexpr int kWindow = 7;
constexpr int kRadius = kWindow / 2;

// scipy 'reflect' (d c b a | a b c d | d c b a) index for -kRadius <= i < n + kRadius.
inline int reflect(int i, int n) { return i < 0 ? -i - 1 : (i >= n ? 2 * n - i - 1 : i); }

// scipy.ndimage.uniform_filter(src, 7) for a CV_32F image, exact to its arithmetic; only output
// rows [row_begin, row_end) are produced (the rows above are still run through, as the running
// sum starts at row 0 in scipy too).
cv::Mat uniform_filter7(const cv::Mat& src, int row_begin, int row_end) {
  const int rows = src.rows, cols = src.cols;
  const double size = kWindow;

  // Along axis 0 (down the columns), all columns at once.
  cv::Mat vertical(rows, cols, CV_32F);
  std::vector<double> sum(cols, 0.0);
  for (int k = -kRadius; k <= kRadius; ++k) {
    const float* in = src.ptr<float>(reflect(k, rows));
    for (int x = 0; x < cols; ++x) sum[x] += in[x];
  }
  for (int y = 0; y < rows; ++y) {
    if (y > 0) {
      const float* entering = src.ptr<float>(reflect(y + kRadius, rows));
      const float* leaving = src.ptr<float>(reflect(y - kRadius - 1, rows));
      for (int x = 0; x < cols; ++x) sum[x] += static_cast<double>(entering[x]) - leaving[x];
    }
    float* out = vertical.ptr<float>(y);
    for (int x = 0; x < cols; ++x) out[x] = static_cast<float>(sum[x] / size);
  }

  // Along axis 1 (each row on its own).
  cv::Mat result(row_end - row_begin, cols, CV_32F);
  std::vector<double> line(cols + 2 * kRadius);
  for (int y = row_begin; y < row_end; ++y) {
    const float* in = vertical.ptr<float>(y);
    for (int i = -kRadius; i < cols + kRadius; ++i) line[i + kRadius] = in[reflect(i, cols)];
    float* out = result.ptr<float>(y - row_begin);
    double sum_x = 0;
    for (int k = 0; k < kWindow; ++k) sum_x += line[k];
    out[0] = static_cast<float>(sum_x / size);
    for (int x = 1; x < cols; ++x) {
      sum_x += line[x + kWindow - 1] - line[x - 1];
      out[x] = static_cast<float>(sum_x / size);
    }
  }
  return result;
}

struct Filtered {
  cv::Mat mean;         // uniform_filter(im)
  cv::Mat mean_square;  // uniform_filter(im * im)
};

// Mean of the SSIM map of x = F and y = the source, over the cropped rows/columns, given the
// filtered moments (rows already cropped).
double mean_ssim(const Filtered& x, const Filtered& y, const cv::Mat& mean_xy) {
  const float cov_norm = static_cast<float>(49.0 / 48.0);
  const double k1r = 0.01 * 2, k2r = 0.03 * 2;  // K * data range
  const float c1 = static_cast<float>(k1r * k1r), c2 = static_cast<float>(k2r * k2r);
  const int cols = x.mean.cols;
  double total = 0;
  for (int r = 0; r < x.mean.rows; ++r) {
    const float* ux = x.mean.ptr<float>(r);
    const float* uy = y.mean.ptr<float>(r);
    const float* uxx = x.mean_square.ptr<float>(r);
    const float* uyy = y.mean_square.ptr<float>(r);
    const float* uxy = mean_xy.ptr<float>(r);
    double row_total = 0;
    for (int c = kRadius; c < cols - kRadius; ++c) {
      const float vx = cov_norm * (uxx[c] - ux[c] * ux[c]);
      const float vy = cov_norm * (uyy[c] - uy[c] * uy[c]);
      const float vxy = cov_norm * (uxy[c] - ux[c] * uy[c]);
      const float a1 = 2.0f * ux[c] * uy[c] + c1;
      const float a2 = 2.0f * vxy + c2;
      const float b1 = ux[c] * ux[c] + uy[c] * uy[c] + c1;
      const float b2 = vx + vy + c2;
      const float d = b1 * b2;
      row_total += (a1 * a2) / d;
    }
    total += row_total;
  }
  const double count = static_cast<double>(x.mean.rows) * (cols - 2 * kRadius);
  return total / count;
}

}  // namespace

double ssim8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f) {
  const int row_begin = kRadius, row_end = f.rows - kRadius;
  cv::Mat af, bf, ff;
  a.convertTo(af, CV_32F);
  b.convertTo(bf, CV_32F);
  f.convertTo(ff, CV_32F);
  // Products of grey levels are exact in float32.
  const auto filtered = [&](const cv::Mat& im) {
    return Filtered{uniform_filter7(im, row_begin, row_end),
                    uniform_filter7(im.mul(im), row_begin, row_end)};
  };
  const Filtered fused = filtered(ff), anatomical = filtered(af), functional = filtered(bf);
  return mean_ssim(fused, anatomical, uniform_filter7(ff.mul(af), row_begin, row_end)) +
         mean_ssim(fused, functional, uniform_filter7(ff.mul(bf), row_begin, row_end));
}

}  // namespace detail

double ssim(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) {
  cv::Mat a, b, f;
  detail::to_grey8_triple(A, B, F, a, b, f);
  return detail::ssim8(a, b, f);
}

}  // namespace efcnet::metrics
