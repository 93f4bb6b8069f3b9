// Volumes as the 2D fusion sees them: both on the anatomical grid, windowed, coloured, cut into
// slices in the canonical orientation, fused slice by slice; and the montage of a result.
#include <algorithm>
#include <cmath>
#include <string>

#include <opencv2/imgproc.hpp>

#include "efcnet/volume.h"

namespace efcnet {
namespace {

constexpr int kMinSide = 11;  // check_fusion_inputs' smallest image

bool is_zero(const cv::Mat& slice) { return cv::countNonZero(slice.reshape(1)) == 0; }

}  // namespace

void check_slice_size(const VolumeGeometry& geometry, Plane plane, const std::string& name,
                      const OptionNamer& option_name) {
  const SliceLayout layout = slice_layout(geometry, plane);
  if (std::min(layout.rows, layout.columns) < kMinSide) {
    throw VolumeError(name + ": its " + plane_name(plane) + " slices are " + std::to_string(layout.columns) + "x" +
                      std::to_string(layout.rows) + " pixels, smaller than " + std::to_string(kMinSide) + "x" +
                      std::to_string(kMinSide) + "; choose another " + efcnet::option_name(option_name, "plane"));
  }
}

PreparedVolumes prepare_volumes(const Volume& anatomical, const Volume& functional, const VolumeFusionOptions& options,
                                const std::string& anatomical_name, const std::string& functional_name) {
  check_slice_size(anatomical.geometry, options.plane, anatomical_name);
  PreparedVolumes prepared;
  prepared.layout = slice_layout(anatomical.geometry, options.plane);
  // Windows from each file's own voxels (before resampling), so a volume's bytes do not depend
  // on the grid it is shown on.
  prepared.anatomical_window = options.anatomical_window.value_or(robust_window(anatomical));
  prepared.functional_window = options.functional_window.value_or(robust_window(functional));
  prepared.anatomical = window_to_bytes(anatomical, prepared.anatomical_window);
  const Volume resampled = options.functional_transform
                               ? resample_through(functional, *options.functional_transform, anatomical.geometry,
                                                  functional_name, anatomical_name)
                               : resample_onto(functional, anatomical.geometry, functional_name, anatomical_name);
  prepared.functional = colourise(window_to_bytes(resampled, prepared.functional_window), options.colormap);
  return prepared;
}

bool slice_has_content(const PreparedVolumes& volumes, int k) {
  return !is_zero(extract_slice(volumes.anatomical, volumes.layout, k)) ||
         !is_zero(extract_slice(volumes.functional, volumes.layout, k));
}

FusedVolume fuse_prepared(const PreparedVolumes& volumes, const SliceFusion& fuse, const SliceProgress& progress) {
  FusedVolume result;
  result.fused.geometry = volumes.anatomical.geometry;
  result.fused.channels = volumes.functional.channels;
  result.fused.voxels.assign(volumes.functional.voxels.size(), 0);
  // One slice per call: the network's kernels choose their blocking by batch size, so a batch of
  // slices is not guaranteed to give each slice the bytes Fuser::fuse_pair gives it alone, and
  // one 256x256 slice already keeps every core busy.
  for (int k = 0; k < volumes.layout.slices; ++k) {
    const cv::Mat anatomical = extract_slice(volumes.anatomical, volumes.layout, k);
    const cv::Mat functional = extract_slice(volumes.functional, volumes.layout, k);
    if (is_zero(anatomical) && is_zero(functional)) {
      ++result.empty_slices;  // nothing to fuse: the output stays 0 there
    } else {
      insert_slice(result.fused, volumes.layout, k, fuse(anatomical, functional));
      ++result.fused_slices;
    }
    if (progress) progress(k + 1, volumes.layout.slices);
  }
  return result;
}

cv::Mat make_montage(const PreparedVolumes& volumes, const ByteVolume& fused, int columns, int tile) {
  const SliceLayout& layout = volumes.layout;
  std::vector<int> candidates;
  for (int k = 0; k < layout.slices; ++k) {
    if (slice_has_content(volumes, k)) candidates.push_back(k);
  }
  if (candidates.empty()) {
    for (int k = 0; k < layout.slices; ++k) candidates.push_back(k);
  }
  columns = std::max(1, std::min<int>(columns, static_cast<int>(candidates.size())));
  std::vector<int> chosen;
  for (int c = 0; c < columns; ++c) {
    // Evenly spaced, the first and last slices with content included.
    const double position =
        columns == 1 ? (candidates.size() - 1) / 2.0 : c * (candidates.size() - 1) / static_cast<double>(columns - 1);
    chosen.push_back(candidates[static_cast<std::size_t>(std::lround(position))]);
  }
  // Tiles keep the slices' physical aspect ratio.
  const double row_mm = volumes.anatomical.geometry.spacing[layout.row_axis] * layout.rows;
  const double column_mm = volumes.anatomical.geometry.spacing[layout.column_axis] * layout.columns;
  const int tile_width = std::max(1, static_cast<int>(std::lround(tile * column_mm / row_mm)));
  constexpr int kGap = 2;
  cv::Mat montage(3 * tile + 2 * kGap, columns * tile_width + (columns - 1) * kGap, CV_8UC3, cv::Scalar::all(32));
  const ByteVolume* rows[3] = {&volumes.anatomical, &volumes.functional, &fused};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < columns; ++c) {
      cv::Mat slice = extract_slice(*rows[r], layout, chosen[c]);
      if (slice.channels() == 1) cv::cvtColor(slice, slice, cv::COLOR_GRAY2BGR);
      cv::Mat resized;
      cv::resize(slice, resized, cv::Size(tile_width, tile), 0, 0,
                 tile < slice.rows ? cv::INTER_AREA : cv::INTER_LINEAR);
      resized.copyTo(montage(cv::Rect(c * (tile_width + kGap), r * (tile + kGap), tile_width, tile)));
    }
  }
  return montage;
}

}  // namespace efcnet
