// A DICOM series' slices checked one by one before its voxels are read (internal to read.cpp).
// ITK stacks a series' files with one spacing, that of its first two slices, whatever the others
// say: a missing slice, a duplicated position or a tilted slice would be fused at the wrong place.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "efcnet/volume.h"

namespace efcnet::detail {

// How far neighbouring slices may be from the series' spacing and still count as even: this
// fraction of the spacing.
inline constexpr double kSliceSpacingTolerance = 0.01;

// Where a series' slices lie, from their own headers.
struct SeriesSlices {
  std::vector<double> distances;  // of each file's slice from the first one's, along the stack (mm)
  double spacing = 0;             // the series' spacing: the median distance between neighbours
  bool even = true;               // every neighbour `spacing` apart, within the tolerance
  std::array<double, 3> first{};  // the first file's Image Position (Patient)
  std::array<double, 3> stack{};  // unit vector from the first slice towards the last
};

// Checks the files of the one series in `dir`, in ITK's stacking order: every file one 2D frame,
// one orientation, one pixel spacing, one size, positions distinct and in order, and evenly spaced
// with no slice missing unless `allow_uneven`. Throws VolumeError, one line naming `dir` (and the
// files concerned) and what is wrong.
SeriesSlices check_series_slices(const std::string& dir, const std::vector<std::string>& files, bool allow_uneven,
                                 const std::string& allow_uneven_option = "allow_uneven_slices");

// The geometry of an uneven series resampled onto an even grid at its spacing: `stacked` (ITK's
// geometry) with the slice axis along `slices.stack`, from the first slice to the last.
VolumeGeometry even_series_geometry(const VolumeGeometry& stacked, const SeriesSlices& slices);

// `stacked` (the series' slices in file order, as ITK read them) resampled along the stack onto
// even_series_geometry, each new slice linear between the two true slices around it.
Volume resample_uneven_series(const Volume& stacked, const SeriesSlices& slices);

}  // namespace efcnet::detail
