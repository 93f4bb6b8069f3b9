// The registration's picture for the eye (registration.h): checkerboards of the anatomical and the
// functional middle slices, before and after alignment.
#include <algorithm>
#include <string>

#include <opencv2/imgproc.hpp>

#include "efcnet/registration.h"

namespace efcnet {
namespace {

constexpr Plane kPlanes[] = {Plane::axial, Plane::coronal, Plane::sagittal};

// A slice shown at its physical aspect ratio, fitted into tile x tile (black around it).
cv::Mat fit_tile(const cv::Mat& slice, const VolumeGeometry& g, const SliceLayout& layout, int tile) {
  const double width_mm = layout.columns * g.spacing[layout.column_axis];
  const double height_mm = layout.rows * g.spacing[layout.row_axis];
  const double scale = tile / std::max(width_mm, height_mm);
  const int width = std::max(1, static_cast<int>(width_mm * scale + 0.5));
  const int height = std::max(1, static_cast<int>(height_mm * scale + 0.5));
  cv::Mat resized;
  cv::resize(slice, resized, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  cv::Mat out(tile, tile, resized.type(), cv::Scalar::all(0));
  resized.copyTo(out(cv::Rect((tile - width) / 2, (tile - height) / 2, width, height)));
  return out;
}

// Squares of the anatomical tile (grey) alternating with the functional one (hot iron), 8 across.
cv::Mat checkerboard(const cv::Mat& anatomical, const cv::Mat& functional) {
  cv::Mat out = functional.clone();
  const int square = std::max(1, anatomical.cols / 8);
  for (int r = 0; r < out.rows; ++r) {
    for (int c = 0; c < out.cols; ++c) {
      if (((r / square) + (c / square)) % 2 == 0) out.at<cv::Vec3b>(r, c) = anatomical.at<cv::Vec3b>(r, c);
    }
  }
  return out;
}

void label(cv::Mat& image, const std::string& text) {
  cv::putText(image, text, cv::Point(6, 18), cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
}

}  // namespace

cv::Mat make_registration_qc(const Volume& fixed, const Volume& moving, const LinearTransform& before,
                             const LinearTransform& after, int tile) {
  const ByteVolume anatomical = colourise(window_to_bytes(fixed, robust_window(fixed)), Colormap::grey);
  const Window window = robust_window(moving);
  const ByteVolume functional[2] = {
      colourise(window_to_bytes(resample_through(moving, before, fixed.geometry, "functional", "anatomical"), window),
                Colormap::hot_iron),
      colourise(window_to_bytes(resample_through(moving, after, fixed.geometry, "functional", "anatomical"), window),
                Colormap::hot_iron)};
  const int gap = 4;
  cv::Mat picture(3 * tile + 2 * gap, 2 * tile + gap, CV_8UC3, cv::Scalar::all(0));
  for (int p = 0; p < 3; ++p) {
    const SliceLayout layout = slice_layout(fixed.geometry, kPlanes[p]);
    const int k = layout.slices / 2;
    cv::Mat grey_bgr;
    cv::cvtColor(extract_slice(anatomical, layout, k), grey_bgr, cv::COLOR_GRAY2BGR);
    const cv::Mat a = fit_tile(grey_bgr, fixed.geometry, layout, tile);
    for (int column = 0; column < 2; ++column) {
      const cv::Mat f = fit_tile(extract_slice(functional[column], layout, k), fixed.geometry, layout, tile);
      cv::Mat cell = checkerboard(a, f);
      label(cell, std::string(plane_name(kPlanes[p])) + (column == 0 ? ", before" : ", after"));
      cell.copyTo(picture(cv::Rect(column * (tile + gap), p * (tile + gap), tile, tile)));
    }
  }
  return picture;
}

}  // namespace efcnet
