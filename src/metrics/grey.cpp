// Reading and validating the 256-level grey images every metric works on.
#include <cmath>
#include <string>

#include <opencv2/imgproc.hpp>

#include "detail.h"
#include "efcnet/image.h"
#include "efcnet/metrics.h"

namespace efcnet::metrics {

namespace {

constexpr std::array<double FusionMetrics::*, kMetricNames.size()> kMembers = {
    &FusionMetrics::EN,   &FusionMetrics::SD,   &FusionMetrics::SF,  &FusionMetrics::AG,
    &FusionMetrics::MI,   &FusionMetrics::SCD,  &FusionMetrics::VIF, &FusionMetrics::Qabf,
    &FusionMetrics::SSIM, &FusionMetrics::PSNR, &FusionMetrics::CC,  &FusionMetrics::MSE};

template <typename T>
bool whole_grey_levels(const cv::Mat& image) {
  for (int y = 0; y < image.rows; ++y) {
    const T* row = image.ptr<T>(y);
    for (int x = 0; x < image.cols; ++x) {
      const T v = row[x];
      // Written so that NaN fails too.
      if (!(v >= 0 && v <= 255 && v == std::floor(v))) return false;
    }
  }
  return true;
}

}  // namespace

double FusionMetrics::operator[](std::size_t i) const { return this->*kMembers.at(i); }
double& FusionMetrics::operator[](std::size_t i) { return this->*kMembers.at(i); }

cv::Mat read_grey(const std::string& path, const ImageReadOptions& options) {
  // io's reader: the same refusals (and messages) as fusion's, truncated PNGs included. A grey file
  // comes back as is, which is what the evaluator's BGR decode and conversion give for it.
  cv::Mat image;
  try {
    image = read_functional(path, options);
  } catch (const IoError& e) {
    throw MetricsError(e.what());
  }
  return to_grey(image);
}

cv::Mat to_grey(const cv::Mat& image) {
  if (image.type() == CV_8UC1) return image;
  if (image.type() != CV_8UC3) throw MetricsError("expected an 8-bit grey or 3-channel BGR image");
  // The evaluator converts in float (cv2 on a float32 array) and rounds with np.round, i.e. half
  // to even; OpenCV's float->8U conversion rounds the same way. Converting the 8-bit image
  // directly would use OpenCV's fixed-point weights, which differ from these on some colours.
  cv::Mat bgr_f, grey_f, grey;
  image.convertTo(bgr_f, CV_32F);
  cv::cvtColor(bgr_f, grey_f, cv::COLOR_BGR2GRAY);
  grey_f.convertTo(grey, CV_8U);
  return grey;
}

namespace detail {

cv::Mat to_grey8(const cv::Mat& image, const char* role) {
  if (image.empty()) throw MetricsError(std::string(role) + ": empty image");
  if (image.channels() != 1)
    throw MetricsError(std::string(role) + ": expected a single-channel grey image, got " +
                       std::to_string(image.channels()) + " channels");
  switch (image.depth()) {
    case CV_8U: return image;
    case CV_32F:
    case CV_64F: {
      const bool ok = image.depth() == CV_32F ? whole_grey_levels<float>(image) : whole_grey_levels<double>(image);
      if (!ok) throw MetricsError(std::string(role) + ": float image values must be whole grey levels in 0..255");
      cv::Mat grey;
      image.convertTo(grey, CV_8U);
      return grey;
    }
    default: throw MetricsError(std::string(role) + ": unsupported pixel type (use 8-bit or float)");
  }
}

void check_single(const cv::Mat& f8) {
  if (f8.rows < kMinSide || f8.cols < kMinSide)
    throw MetricsError("image is " + size_text(f8) + "; the metrics need at least " + std::to_string(kMinSide) + "x" +
                       std::to_string(kMinSide));
}

void to_grey8_triple(const cv::Mat& A, const cv::Mat& B, const cv::Mat& F, cv::Mat& a, cv::Mat& b, cv::Mat& f) {
  a = to_grey8(A, "anatomical");
  b = to_grey8(B, "functional");
  f = to_grey8(F, "fused");
  if (a.size() != b.size() || a.size() != f.size())
    throw MetricsError("image sizes differ: anatomical " + size_text(a) + ", functional " + size_text(b) + ", fused " +
                       size_text(f));
  check_single(f);
}

}  // namespace detail
}  // namespace efcnet::metrics
