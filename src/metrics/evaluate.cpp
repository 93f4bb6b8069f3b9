// evaluate_fusion: all twelve metrics with one validation and one moment pass.
#include "detail.h"
#include "efcnet/metrics.h"

namespace efcnet::metrics {

FusionMetrics evaluate_fusion(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F) {
  cv::Mat a, b, f;
  detail::to_grey8_triple(A, B, F, a, b, f);
  const detail::TripleMoments moments = detail::triple_moments(a, b, f);
  FusionMetrics m;
  m.EN = detail::entropy8(f);
  m.SD = detail::standard_deviation8(f);
  m.SF = detail::spatial_frequency8(f);
  m.AG = detail::average_gradient8(f);
  m.MI = detail::mutual_information8(a, b, f);
  m.SCD = detail::scd_from(moments);
  m.VIF = detail::vif8(a, b, f);
  m.Qabf = detail::qabf8(a, b, f);
  m.SSIM = detail::ssim8(a, b, f);
  m.PSNR = detail::psnr_from(moments);
  m.CC = detail::cc_from(moments);
  m.MSE = detail::mse_from(moments);
  return m;
}

FusionMetrics mean_metrics(const std::vector<FusionMetrics>& rows) {
  if (rows.empty()) throw MetricsError("mean of no scores");
  FusionMetrics mean;
  for (std::size_t i = 0; i < kMetricNames.size(); ++i) {
    double total = 0;
    for (const FusionMetrics& row : rows) total += row[i];
    mean[i] = total / static_cast<double>(rows.size());
  }
  return mean;
}

}  // namespace efcnet::metrics
