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

// scipy.ndimage.uniform_filter1d(src, 7, axis=0) for CV_32F, exact to its arithmetic: each column
// is one line, and all columns advance together.
EFCNET_METRICS_HOT cv::Mat uniform_filter7_down(const cv::Mat& src) {
  const int rows = src.rows, cols = src.cols;
  cv::Mat dst(rows, cols, CV_32F);
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
    float* out = dst.ptr<float>(y);
    for (int x = 0; x < cols; ++x) out[x] = static_cast<float>(sum[x] / kWindow);
  }
  return dst;
}

// scipy.ndimage.uniform_filter(src, 7), transposed: the second (along-row) pass runs down the
// columns of the transposed image, so that it too advances many lines at once. SSIM is a
// pixel-wise map that is only averaged, so every map can stay transposed.
cv::Mat uniform_filter7_transposed(const cv::Mat& src) {
  cv::Mat across;
  cv::transpose(uniform_filter7_down(src), across);
  return uniform_filter7_down(across);
}

struct Filtered {
  cv::Mat mean;         // uniform_filter(im)
  cv::Mat mean_square;  // uniform_filter(im * im)
};

// One row of the SSIM map of x = F and y = a source, from the filtered moments.
EFCNET_METRICS_HOT void ssim_row(const float* ux, const float* uy, const float* uxx, const float* uyy, const float* uxy,
                                 int n, float* s) {
  const float cov_norm = static_cast<float>(49.0 / 48.0);
  const double k1r = 0.01 * 2, k2r = 0.03 * 2;  // K * data range
  const float c1 = static_cast<float>(k1r * k1r), c2 = static_cast<float>(k2r * k2r);
  for (int c = 0; c < n; ++c) {
    const float vx = cov_norm * (uxx[c] - ux[c] * ux[c]);
    const float vy = cov_norm * (uyy[c] - uy[c] * uy[c]);
    const float vxy = cov_norm * (uxy[c] - ux[c] * uy[c]);
    const float a1 = 2.0f * ux[c] * uy[c] + c1;
    const float a2 = 2.0f * vxy + c2;
    const float b1 = ux[c] * ux[c] + uy[c] * uy[c] + c1;
    const float b2 = vx + vy + c2;
    const float d = b1 * b2;
    s[c] = (a1 * a2) / d;
  }
}

// Mean of the SSIM map over the map less a kRadius border, in double like skimage's.
double mean_ssim(const Filtered& x, const Filtered& y, const cv::Mat& mean_xy) {
  const int rows = x.mean.rows, cols = x.mean.cols, n = cols - 2 * kRadius;
  std::vector<float> s(n);
  double total = 0;
  for (int r = kRadius; r < rows - kRadius; ++r) {
    ssim_row(x.mean.ptr<float>(r) + kRadius, y.mean.ptr<float>(r) + kRadius, x.mean_square.ptr<float>(r) + kRadius,
             y.mean_square.ptr<float>(r) + kRadius, mean_xy.ptr<float>(r) + kRadius, n, s.data());
    double row_total = 0;
    for (const float v : s) row_total += v;
    total += row_total;
  }
  return total / (static_cast<double>(rows - 2 * kRadius) * n);
}

}  // namespace

double ssim8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f) {
  cv::Mat af, bf, ff;
  a.convertTo(af, CV_32F);
  b.convertTo(bf, CV_32F);
  f.convertTo(ff, CV_32F);
  // Products of grey levels are exact in float32.
  const auto filtered = [](const cv::Mat& im) {
    return Filtered{uniform_filter7_transposed(im), uniform_filter7_transposed(im.mul(im))};
  };
  const Filtered fused = filtered(ff), anatomical = filtered(af), functional = filtered(bf);
  return mean_ssim(fused, anatomical, uniform_filter7_transposed(ff.mul(af))) +
         mean_ssim(fused, functional, uniform_filter7_transposed(ff.mul(bf)));
}

}  // namespace detail

double ssim(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) {
  cv::Mat a, b, f;
  detail::to_grey8_triple(A, B, F, a, b, f);
  return detail::ssim8(a, b, f);
}

}  // namespace efcnet::metrics
