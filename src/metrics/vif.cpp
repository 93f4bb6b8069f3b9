// VIF: VIF(A, F) + VIF(B, F), each the 4-scale pixel-domain visual information fidelity as the
// evaluator computes it:
//  - at scale s = 1..4 a Gaussian window of side N = 2^(5-s) + 1 and sigma N/5, built like
//    MATLAB's fspecial and normalised. Its smallest tap ratio (exp(-5.5) at N = 17) is far above
//    the eps * max below which fspecial zeroes taps, so the window is the outer product of a
//    normalised 1-D window and filtering is separable;
//  - scipy.signal.convolve2d 'valid' filtering; before scales 2..4 both images are filtered and
//    subsampled by 2 (rows and columns 0, 2, 4, ...);
//  - sigma_n^2 = 2, eps = 1e-10 and the evaluator's order of clamping g and sv^2;
//  - each VIF is sum(log10(1 + g^2 s1^2 / (sv^2 + sigma_n^2))) / sum(log10(1 + s1^2 / sigma_n^2))
//    over all scales, and 1 when that is NaN (a constant reference gives 0/0).
// Accumulation is in double like the evaluator's (convolve2d promotes to float64).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "detail.h"
#include "efcnet/metrics.h"

namespace efcnet::metrics {
namespace detail {

namespace {

constexpr double kNoiseVariance = 2.0;  // sigma_n^2
constexpr double kEps = 1e-10;

std::vector<double> gaussian_taps(int side) {
  const double sigma = side / 5.0;
  const double half = (side - 1) / 2.0;
  std::vector<double> taps(side);
  double sum = 0;
  for (int i = 0; i < side; ++i) {
    const double x = i - half;
    taps[i] = std::exp(-(x * x) / (2 * sigma * sigma));
    sum += taps[i];
  }
  for (double& t : taps) t /= sum;
  return taps;
}

// convolve2d's 'valid' part along one axis is |n - N| + 1 long: when the image is smaller than
// the window the two swap roles (this happens at the coarse scales of images under 65 pixels).
// scipy swaps only when the image is smaller along both axes and refuses a mixed case, which the
// evaluator then cannot score; applying the rule per axis extends it to that case.
// With step 2 only every second output is produced, which is the subsampling.
int valid_length(int n, int taps, int step) {
  const int full = std::abs(n - taps) + 1;
  return (full + step - 1) / step;
}

// Output i of the valid part is the full convolution at m = min(n, N) - 1 + i. When the image is
// at least as long as the window, output i covers inputs i*step .. i*step + N - 1 and, the window
// being symmetric, each pair of inputs equally far from the centre shares one multiplication.

// Vertical pass: whole rows are combined, so the inner loops run along contiguous memory.
EFCNET_METRICS_HOT cv::Mat filter_columns(const cv::Mat& src, const std::vector<double>& g, int step) {
  const int n = src.rows, taps = static_cast<int>(g.size()), centre = taps / 2;
  cv::Mat dst(valid_length(n, taps, step), src.cols, CV_64F);
  const int cols = dst.cols;
  for (int i = 0; i < dst.rows; ++i) {
    double* out = dst.ptr<double>(i);
    if (n >= taps) {
      const double* middle = src.ptr<double>(i * step + centre);
      for (int x = 0; x < cols; ++x) out[x] = g[centre] * middle[x];
      for (int t = 0; t < centre; ++t) {
        const double w = g[t];
        const double* first = src.ptr<double>(i * step + t);
        const double* last = src.ptr<double>(i * step + taps - 1 - t);
        for (int x = 0; x < cols; ++x) out[x] += w * (first[x] + last[x]);
      }
    } else {
      std::fill(out, out + cols, 0.0);
      const int m = n - 1 + i * step;
      for (int k = std::max(0, m - taps + 1); k <= std::min(n - 1, m); ++k) {
        const double w = g[m - k];
        const double* in = src.ptr<double>(k);
        for (int x = 0; x < cols; ++x) out[x] += w * in[x];
      }
    }
  }
  return dst;
}

// Horizontal pass, taps outermost so that the inner loops are plain strided multiply-adds.
EFCNET_METRICS_HOT cv::Mat filter_rows(const cv::Mat& src, const std::vector<double>& g, int step) {
  const int n = src.cols, taps = static_cast<int>(g.size()), centre = taps / 2;
  cv::Mat dst(src.rows, valid_length(n, taps, step), CV_64F);
  const int cols = dst.cols;
  for (int y = 0; y < src.rows; ++y) {
    const double* in = src.ptr<double>(y);
    double* out = dst.ptr<double>(y);
    if (n >= taps) {
      for (int i = 0; i < cols; ++i) out[i] = g[centre] * in[i * step + centre];
      for (int t = 0; t < centre; ++t) {
        const double w = g[t];
        const double* first = in + t;
        const double* last = in + taps - 1 - t;
        for (int i = 0; i < cols; ++i) out[i] += w * (first[i * step] + last[i * step]);
      }
    } else {
      for (int i = 0; i < cols; ++i) {
        const int m = n - 1 + i * step;
        double acc = 0;
        for (int k = std::max(0, m - taps + 1); k <= std::min(n - 1, m); ++k) acc += in[k] * g[m - k];
        out[i] = acc;
      }
    }
  }
  return dst;
}

cv::Mat valid_filter(const cv::Mat& src, const std::vector<double>& g, int step = 1) {
  return filter_rows(filter_columns(src, g, step), g, step);
}

struct VifSums {
  double num = 0, den = 0;
  double value() const {
    const double v = num / den;
    return std::isnan(v) ? 1.0 : v;
  }
};

// Sum of log10 of factors in [1, ~1e4], taken one log per group of factors multiplied together:
// the logarithms otherwise dominate VIF's run time. A group's product stays far from overflow and
// carries a few ulp of rounding, which is far below the evaluator's own.
class Log10Sum {
 public:
  void add(double factor) {
    product_ *= factor;
    if (++count_ == kGroup) flush();
  }
  double total() {
    flush();
    return sum_;
  }

 private:
  static constexpr int kGroup = 16;
  void flush() {
    sum_ += std::log10(product_);
    product_ = 1;
    count_ = 0;
  }
  double product_ = 1, sum_ = 0;
  int count_ = 0;
};

// Per pixel of one row, the two factors whose log10 VIF sums, for reference r and distorted d,
// given the filtered moments; the evaluator's clamping of g and sv^2, in its order.
EFCNET_METRICS_HOT void vif_factors(const double* mr, const double* md, const double* rr, const double* dd,
                                    const double* rd, int n, double* num, double* den) {
  for (int x = 0; x < n; ++x) {
    const double s1_raw = std::max(rr[x] - mr[x] * mr[x], 0.0);
    const double s2 = std::max(dd[x] - md[x] * md[x], 0.0);
    const double s12 = rd[x] - mr[x] * md[x];
    double g = s12 / (s1_raw + kEps);
    double sv = s2 - g * s12;
    const bool flat_r = s1_raw < kEps;
    g = flat_r ? 0.0 : g;
    sv = flat_r ? s2 : sv;
    const double s1 = flat_r ? 0.0 : s1_raw;
    const bool flat_d = s2 < kEps;
    g = flat_d ? 0.0 : g;
    sv = flat_d ? 0.0 : sv;
    const bool negative = g < 0;
    sv = negative ? s2 : sv;
    g = negative ? 0.0 : g;
    sv = sv <= kEps ? kEps : sv;
    num[x] = 1 + g * g * s1 / (sv + kNoiseVariance);
    den[x] = 1 + s1 / kNoiseVariance;
  }
}

// One scale's contribution for reference r and distorted d.
void accumulate(const cv::Mat& mu_r, const cv::Mat& mu_d, const cv::Mat& e_rr, const cv::Mat& e_dd, const cv::Mat& e_rd,
                VifSums& sums) {
  const int n = mu_r.cols;
  std::vector<double> num_factors(n), den_factors(n);
  Log10Sum num, den;
  for (int y = 0; y < mu_r.rows; ++y) {
    vif_factors(mu_r.ptr<double>(y), mu_d.ptr<double>(y), e_rr.ptr<double>(y), e_dd.ptr<double>(y), e_rd.ptr<double>(y),
                n, num_factors.data(), den_factors.data());
    for (int x = 0; x < n; ++x) {
      num.add(num_factors[x]);
      den.add(den_factors[x]);
    }
  }
  sums.num += num.total();
  sums.den += den.total();
}

}  // namespace

double vif8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f) {
  cv::Mat ref_a, ref_b, dist;
  a.convertTo(ref_a, CV_64F);
  b.convertTo(ref_b, CV_64F);
  f.convertTo(dist, CV_64F);
  VifSums vif_a, vif_b;
  for (int scale = 1; scale <= 4; ++scale) {
    const std::vector<double> g = gaussian_taps((1 << (5 - scale)) + 1);
    if (scale > 1) {
      ref_a = valid_filter(ref_a, g, 2);
      ref_b = valid_filter(ref_b, g, 2);
      dist = valid_filter(dist, g, 2);
    }
    const cv::Mat mu_a = valid_filter(ref_a, g), mu_b = valid_filter(ref_b, g), mu_d = valid_filter(dist, g);
    const cv::Mat e_aa = valid_filter(ref_a.mul(ref_a), g), e_bb = valid_filter(ref_b.mul(ref_b), g),
                  e_dd = valid_filter(dist.mul(dist), g), e_ad = valid_filter(ref_a.mul(dist), g),
                  e_bd = valid_filter(ref_b.mul(dist), g);
    accumulate(mu_a, mu_d, e_aa, e_dd, e_ad, vif_a);
    accumulate(mu_b, mu_d, e_bb, e_dd, e_bd, vif_b);
  }
  return vif_a.value() + vif_b.value();
}

}  // namespace detail

double vif(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) {
  cv::Mat a, b, f;
  detail::to_grey8_triple(A, B, F, a, b, f);
  return detail::vif8(a, b, f);
}

}  // namespace efcnet::metrics
