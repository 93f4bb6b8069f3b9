#include "volume/series_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <gdcmImageHelper.h>
#include <gdcmReader.h>
#include <gdcmTag.h>

namespace efcnet::detail {
namespace {

namespace fs = std::filesystem;

const gdcm::Tag kPosition(0x0020, 0x0032), kPerFrameGroups(0x5200, 0x9230), kPixelData(0x7fe0, 0x0010);

std::string mm(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

std::string name(const std::string& file) { return fs::path(file).filename().string(); }

struct SliceHeader {
  std::vector<double> position, orientation, pixel_spacing;
  std::vector<unsigned> dimensions;  // columns, rows, frames
};

// One file's geometry as GDCM's image helper reads it (ITK's reader uses the same): from the
// top-level attributes, or from the functional groups of an enhanced image (GDCM writes a
// rescaled MR slice as Enhanced MR). Without either its position is unknown: left empty, where
// the helper would say 0, 0, 0.
SliceHeader read_slice_header(const std::string& dir, const std::string& file) {
  gdcm::Reader reader;
  reader.SetFileName(file.c_str());
  if (!reader.ReadUpToTag(kPixelData)) throw VolumeError(dir + ": " + name(file) + ": not a readable DICOM file");
  const gdcm::File& header = reader.GetFile();
  const gdcm::DataSet& data = header.GetDataSet();
  SliceHeader slice;
  slice.dimensions = gdcm::ImageHelper::GetDimensionsValue(header);
  if (data.FindDataElement(kPosition) || data.FindDataElement(kPerFrameGroups)) {
    slice.position = gdcm::ImageHelper::GetOriginValue(header);
    slice.orientation = gdcm::ImageHelper::GetDirectionCosinesValue(header);
  }
  slice.pixel_spacing = gdcm::ImageHelper::GetSpacingValue(header);
  slice.pixel_spacing.resize(std::min<std::size_t>(slice.pixel_spacing.size(), 2));  // the third is the stack's
  return slice;
}

bool differ(const std::vector<double>& a, const std::vector<double>& b, double tolerance) {
  if (a.size() != b.size()) return true;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::abs(a[i] - b[i]) > tolerance) return true;
  return false;
}

}  // namespace

SeriesSlices check_series_slices(const std::string& dir, const std::vector<std::string>& files, bool allow_uneven,
                                 const std::string& allow_uneven_option) {
  std::vector<SliceHeader> slices;
  for (const std::string& file : files) slices.push_back(read_slice_header(dir, file));
  const SliceHeader& head = slices.front();
  const std::string first = name(files.front());
  for (std::size_t s = 0; s < slices.size(); ++s) {
    const SliceHeader& slice = slices[s];
    const std::string file = name(files[s]);
    if (files.size() > 1 && slice.dimensions.size() > 2 && slice.dimensions[2] > 1) {
      throw VolumeError(dir + ": " + file + " holds " + std::to_string(slice.dimensions[2]) +
                        " frames; a series is read as one 2D slice per file");
    }
    if (slice.position.size() != 3 || slice.orientation.size() != 6)
      throw VolumeError(dir + ": " + file + " has no Image Position or Orientation (Patient): its place is unknown");
    if (differ(slice.orientation, head.orientation, 1e-4))
      throw VolumeError(dir + ": two slice orientations: " + file + " is tilted against " + first);
    if (differ(slice.pixel_spacing, head.pixel_spacing,
               1e-6 * (1 + std::abs(head.pixel_spacing.empty() ? 0 : head.pixel_spacing[0]))))
      throw VolumeError(dir + ": mixed pixel spacing: " + file + " differs from " + first);
    if (slice.dimensions.size() < 2 || head.dimensions.size() < 2 || slice.dimensions[0] != head.dimensions[0] ||
        slice.dimensions[1] != head.dimensions[1])
      throw VolumeError(dir + ": mixed slice sizes: " + file + " differs from " + first);
  }

  SeriesSlices result;
  for (int c = 0; c < 3; ++c) result.first[c] = head.position[c];
  if (slices.size() == 1) return result;
  // Distances along the line from the first slice to the last: ITK stacks the files in this order.
  std::array<double, 3> along{};
  double length = 0;
  for (int c = 0; c < 3; ++c) {
    along[c] = slices.back().position[c] - head.position[c];
    length += along[c] * along[c];
  }
  length = std::sqrt(length);
  if (!(length > 0)) throw VolumeError(dir + ": its first and last slices are at one position");
  for (int c = 0; c < 3; ++c) result.stack[c] = along[c] / length;
  for (const SliceHeader& slice : slices) {
    double d = 0;
    for (int c = 0; c < 3; ++c) d += (slice.position[c] - head.position[c]) * result.stack[c];
    result.distances.push_back(d);
  }
  std::vector<double> gaps;
  for (std::size_t s = 1; s < slices.size(); ++s) {
    const double gap = result.distances[s] - result.distances[s - 1];
    if (gap < 1e-3) {
      throw VolumeError(dir + ": " + name(files[s - 1]) + " and " + name(files[s]) +
                        (gap > -1e-3
                             ? " are both at " + mm(result.distances[s]) + " mm along the stack (a duplicated slice)"
                             : " are out of order along the stack"));
    }
    gaps.push_back(gap);
  }
  std::vector<double> sorted = gaps;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2), sorted.end());
  result.spacing = sorted[sorted.size() / 2];
  const double tolerance = kSliceSpacingTolerance * result.spacing;
  for (std::size_t s = 0; s < gaps.size(); ++s) {
    if (std::abs(gaps[s] - result.spacing) <= tolerance) continue;
    result.even = false;
    if (allow_uneven) continue;
    const double from = result.distances[s], to = result.distances[s + 1];
    const double slices_in_gap = gaps[s] / result.spacing;
    const long whole = std::lround(slices_in_gap);
    const std::string where = " between " + mm(from) + " and " + mm(to) + " mm from the first slice (" +
                              name(files[s]) + ", " + name(files[s + 1]) + "), spacing " + mm(result.spacing) + " mm";
    const std::string remedy =
        "; " + allow_uneven_option + " resamples it onto an even grid from the slices' positions";
    if (whole >= 2 && std::abs(slices_in_gap - static_cast<double>(whole)) * result.spacing <= tolerance) {
      throw VolumeError(dir + ": " + (whole == 2 ? "a slice" : std::to_string(whole - 1) + " slices") + " missing" +
                        where + remedy);
    }
    throw VolumeError(dir + ": uneven slice spacing: " + mm(gaps[s]) + " mm" + where + " (tolerance 1 %)" + remedy);
  }
  return result;
}

VolumeGeometry even_series_geometry(const VolumeGeometry& stacked, const SeriesSlices& slices) {
  VolumeGeometry g = stacked;
  g.size[2] = std::lround(slices.distances.back() / slices.spacing) + 1;
  g.spacing[2] = slices.spacing;
  for (int c = 0; c < 3; ++c) {
    g.origin[c] = slices.first[c];
    g.direction[c * 3 + 2] = slices.stack[c];
  }
  return g;
}

Volume resample_uneven_series(const Volume& stacked, const SeriesSlices& slices) {
  Volume even;
  even.geometry = even_series_geometry(stacked.geometry, slices);
  const auto plane = static_cast<std::size_t>(stacked.geometry.size[0] * stacked.geometry.size[1]);
  even.voxels.resize(plane * static_cast<std::size_t>(even.geometry.size[2]));
  const std::vector<double>& at = slices.distances;
  std::size_t below = 0;
  for (int64_t k = 0; k < even.geometry.size[2]; ++k) {
    const double t = std::min(static_cast<double>(k) * slices.spacing, at.back());
    while (below + 2 < at.size() && at[below + 1] <= t) ++below;
    const double w = std::clamp((t - at[below]) / (at[below + 1] - at[below]), 0.0, 1.0);
    const float* a = stacked.voxels.data() + below * plane;
    const float* b = a + plane;
    float* out = even.voxels.data() + static_cast<std::size_t>(k) * plane;
    for (std::size_t v = 0; v < plane; ++v) out[v] = static_cast<float>((1 - w) * a[v] + w * b[v]);
  }
  return even;
}

}  // namespace efcnet::detail
