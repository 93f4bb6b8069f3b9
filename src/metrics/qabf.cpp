// Qabf: Petrovic-Xydeas edge preservation as the evaluator computes it, quirks included:
//  - Sobel responses by true 2-D convolution ('same' size, zero padding) with
//    sx = [[-1,0,1],[-2,0,2],[-1,0,1]] and sy = [[1,2,1],[0,0,0],[-1,-2,-1]], so that after the
//    kernel flip sx is left minus right and sy is below minus above;
//  - g = sqrt(sx^2 + sy^2); angle = atan(sy / sx), and pi/2 wherever sx = 0 (whatever sy is);
//  - G = min(g_A, g_F) / max(g_A, g_F), but g_F itself (not 1) where the two are equal;
//  - A = 1 - |a_A - a_F| / (pi/2);
//  - Q = 0.9994 / (1 + exp(-15 (G - 0.5))) * 0.9879 / (1 + exp(-22 (A - 0.8)));
//  - Qabf = sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B); NaN when A and B are both flat.
// Per-pixel values are float like the evaluator's float32 arrays; the sums are double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "detail.h"
#include "efcnet/metrics.h"

namespace efcnet::metrics {
namespace detail {

namespace {

constexpr float kHalfPi = static_cast<float>(M_PI / 2);
constexpr float kQuarterPi = static_cast<float>(M_PI / 4);

// atan in float to about 2 ulp (Cephes atanf: reduction to |x| <= tan(pi/8), odd polynomial),
// branch-free so that loops calling it vectorise; glibc's atanf took a fifth of the time of all
// twelve metrics.
inline float atan_float(float t) {
  const float a = std::fabs(t);
  const float beyond_3pi_8 = -1.0f / a;               // used where a > tan(3pi/8)
  const float beyond_pi_8 = (a - 1.0f) / (a + 1.0f);  // used where a > tan(pi/8)
  const bool above_3pi_8 = a > 2.414213562373095f;
  const bool above_pi_8 = a > 0.4142135623730950f;
  const float x = above_3pi_8 ? beyond_3pi_8 : (above_pi_8 ? beyond_pi_8 : a);
  const float offset = above_3pi_8 ? kHalfPi : (above_pi_8 ? kQuarterPi : 0.0f);
  const float z = x * x;
  const float poly = ((8.05374449538e-2f * z - 1.38776856032e-1f) * z + 1.99777106478e-1f) * z - 3.33329491539e-1f;
  return std::copysign(offset + (poly * z * x + x), t);
}

struct EdgeMap {
  std::vector<float> strength;  // g
  std::vector<float> angle;
};

// Sobel responses of one row (the padded rows above, at and below it).
EFCNET_METRICS_HOT void edge_row(const std::uint8_t* up, const std::uint8_t* mid, const std::uint8_t* down, int cols,
                                 float* strength, float* angle) {
  for (int x = 0; x < cols; ++x) {
    // Column x of the padded rows is the left neighbour of image column x.
    const int sx = (up[x] + 2 * mid[x] + down[x]) - (up[x + 2] + 2 * mid[x + 2] + down[x + 2]);
    const int sy = (down[x] + 2 * down[x + 1] + down[x + 2]) - (up[x] + 2 * up[x + 1] + up[x + 2]);
    strength[x] = std::sqrt(static_cast<float>(sx * sx + sy * sy));
    const float ratio = static_cast<float>(sy) / static_cast<float>(sx == 0 ? 1 : sx);
    angle[x] = sx == 0 ? kHalfPi : atan_float(ratio);
  }
}

EdgeMap edge_map(const cv::Mat& img) {
  const int rows = img.rows, cols = img.cols;
  // Zero-padded copy so the 3x3 neighbourhood needs no border cases.
  cv::Mat padded;
  cv::copyMakeBorder(img, padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  EdgeMap map;
  map.strength.resize(static_cast<std::size_t>(rows) * cols);
  map.angle.resize(map.strength.size());
  for (int y = 0; y < rows; ++y) {
    const std::size_t offset = static_cast<std::size_t>(y) * cols;
    edge_row(padded.ptr<std::uint8_t>(y), padded.ptr<std::uint8_t>(y + 1), padded.ptr<std::uint8_t>(y + 2), cols,
             map.strength.data() + offset, map.angle.data() + offset);
  }
  return map;
}

// Edge preservation of source s in the fused image f at one pixel.
inline float preservation(float g_s, float a_s, float g_f, float a_f) {
  const float ratio = std::min(g_s, g_f) / std::max(g_s, g_f);  // NaN where both are 0: not used
  const float strength_ratio = g_s == g_f ? g_f : ratio;
  const float orientation = 1.0f - std::fabs(a_s - a_f) / kHalfPi;
  const float q_g = 0.9994f / (1.0f + std::exp(-15.0f * (strength_ratio - 0.5f)));
  const float q_a = 0.9879f / (1.0f + std::exp(-22.0f * (orientation - 0.8f)));
  return q_g * q_a;
}

}  // namespace

double qabf8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& f) {
  const EdgeMap ea = edge_map(a), eb = edge_map(b), ef = edge_map(f);
  double numerator = 0, denominator = 0;
  for (std::size_t i = 0; i < ef.strength.size(); ++i) {
    const float ga = ea.strength[i], gb = eb.strength[i];
    const float q_af = preservation(ga, ea.angle[i], ef.strength[i], ef.angle[i]);
    const float q_bf = preservation(gb, eb.angle[i], ef.strength[i], ef.angle[i]);
    numerator += q_af * ga + q_bf * gb;
    denominator += ga + gb;
  }
  return numerator / denominator;
}

}  // namespace detail

double qabf(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) {
  cv::Mat a, b, f;
  detail::to_grey8_triple(A, B, F, a, b, f);
  return detail::qabf8(a, b, f);
}

}  // namespace efcnet::metrics
