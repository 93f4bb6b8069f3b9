// Where voxels are in physical space, the checks every header passes, and the canonical slicing.
// ITK-free (resampling is resample.cpp), so that the checks build into the volume fuzz target.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "efcnet/volume.h"

namespace efcnet {
namespace {

std::string number_text(double value, const char* format = "%.1f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

// Empty for a finite, non-singular direction; otherwise what is wrong with it.
std::string direction_problem(const std::array<double, 9>& d) {
  for (const double v : d) {
    if (!std::isfinite(v)) return "direction is not finite";
  }
  // |det| against the product of the axes' lengths (Hadamard's bound): 1 for orthogonal axes, 0
  // for an axis of zero length or axes in one plane.
  const double det =
      d[0] * (d[4] * d[8] - d[5] * d[7]) - d[1] * (d[3] * d[8] - d[5] * d[6]) + d[2] * (d[3] * d[7] - d[4] * d[6]);
  double lengths = 1;
  for (int c = 0; c < 3; ++c) lengths *= std::sqrt(d[c] * d[c] + d[3 + c] * d[3 + c] + d[6 + c] * d[6 + c]);
  if (!(std::abs(det) > 1e-6 * lengths)) return "direction is singular (its voxel axes do not span 3D)";
  return "";
}

}  // namespace

std::array<double, 3> VolumeGeometry::physical_point(double i, double j, double k) const {
  const double index[3] = {i * spacing[0], j * spacing[1], k * spacing[2]};
  std::array<double, 3> point = origin;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) point[r] += direction[r * 3 + c] * index[c];
  }
  return point;
}

std::string VolumeGeometry::text() const {
  return std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" + std::to_string(size[2]) + " voxels of " +
         number_text(spacing[0], "%g") + "x" + number_text(spacing[1], "%g") + "x" + number_text(spacing[2], "%g") +
         " mm";
}

std::string geometry_problem(const VolumeGeometry& g) {
  for (const int64_t extent : g.size) {
    if (extent < 1) {
      return "an extent below 1 voxel (" + std::to_string(g.size[0]) + "x" + std::to_string(g.size[1]) + "x" +
             std::to_string(g.size[2]) + ")";
    }
  }
  if (g.size[0] > kMaxVolumeValues / g.size[1] / g.size[2]) {
    return g.text() + ": more than " + std::to_string(kMaxVolumeValues) + " voxels";
  }
  for (const double s : g.spacing) {
    if (!(std::isfinite(s) && s > 0)) {
      return "spacing " + number_text(g.spacing[0], "%g") + "x" + number_text(g.spacing[1], "%g") + "x" +
             number_text(g.spacing[2], "%g") + " mm is not finite and positive";
    }
  }
  for (const double o : g.origin) {
    if (!std::isfinite(o)) return "origin is not finite";
  }
  return direction_problem(g.direction);
}

bool same_geometry(const VolumeGeometry& a, const VolumeGeometry& b, double tolerance) {
  if (a.size != b.size) return false;
  for (int i = 0; i < 3; ++i) {
    if (std::abs(a.spacing[i] - b.spacing[i]) > tolerance || std::abs(a.origin[i] - b.origin[i]) > tolerance)
      return false;
  }
  for (int i = 0; i < 9; ++i) {
    if (std::abs(a.direction[i] - b.direction[i]) > tolerance) return false;
  }
  return true;
}

std::string PhysicalExtent::text() const {
  const char* axes = "xyz";
  std::string out;
  for (int a = 0; a < 3; ++a) {
    if (a > 0) out += ", ";
    out += std::string(1, axes[a]) + " " + number_text(low[a]) + ".." + number_text(high[a]);
  }
  return out + " mm (LPS)";
}

PhysicalExtent physical_extent(const VolumeGeometry& g) {
  PhysicalExtent extent;
  extent.low.fill(std::numeric_limits<double>::infinity());
  extent.high.fill(-std::numeric_limits<double>::infinity());
  for (int corner = 0; corner < 8; ++corner) {
    const double i = (corner & 1) ? g.size[0] - 0.5 : -0.5;
    const double j = (corner & 2) ? g.size[1] - 0.5 : -0.5;
    const double k = (corner & 4) ? g.size[2] - 0.5 : -0.5;
    const auto p = g.physical_point(i, j, k);
    for (int a = 0; a < 3; ++a) {
      extent.low[a] = std::min(extent.low[a], p[a]);
      extent.high[a] = std::max(extent.high[a], p[a]);
    }
  }
  return extent;
}

// ---- slices ----

Plane parse_plane(const std::string& name) {
  if (name == "axial") return Plane::axial;
  if (name == "coronal") return Plane::coronal;
  if (name == "sagittal") return Plane::sagittal;
  throw OptionError("unknown plane '" + name + "' (axial, coronal or sagittal)");
}

const char* plane_name(Plane plane) {
  switch (plane) {
    case Plane::axial: return "axial";
    case Plane::coronal: return "coronal";
    case Plane::sagittal: return "sagittal";
  }
  return "?";
}

SliceLayout slice_layout(const VolumeGeometry& g, Plane plane) {
  if (const std::string problem = direction_problem(g.direction); !problem.empty()) {
    throw VolumeError("a volume cannot be sliced: its " + problem);
  }
  // Which patient axis (LPS: 0 = x to the left, 1 = y posterior, 2 = z superior) each voxel axis
  // runs along, and in which sense: the largest direction cosine first, then the largest of the
  // rest, so that oblique volumes still give a permutation.
  int patient_of[3] = {-1, -1, -1};
  int voxel_of[3] = {-1, -1, -1};
  bool positive[3] = {true, true, true};  // per voxel axis
  for (int round = 0; round < 3; ++round) {
    double best = -1;
    int best_r = 0, best_c = 0;
    for (int r = 0; r < 3; ++r) {
      if (voxel_of[r] >= 0) continue;
      for (int c = 0; c < 3; ++c) {
        if (patient_of[c] >= 0) continue;
        if (std::abs(g.direction[r * 3 + c]) > best) {
          best = std::abs(g.direction[r * 3 + c]);
          best_r = r;
          best_c = c;
        }
      }
    }
    patient_of[best_c] = best_r;
    voxel_of[best_r] = best_c;
    positive[best_c] = g.direction[best_r * 3 + best_c] >= 0;
  }

  // Canonical axes as (patient axis, runs towards +LPS).
  struct Axis {
    int patient;
    bool increasing;
  };
  Axis column{0, true}, row{1, true}, slice{2, true};  // axial: R->L, A->P, I->S
  if (plane == Plane::coronal) {
    column = {0, true};
    row = {2, false};  // S->I
    slice = {1, true};
  } else if (plane == Plane::sagittal) {
    column = {1, true};
    row = {2, false};
    slice = {0, true};
  }
  SliceLayout layout;
  layout.column_axis = voxel_of[column.patient];
  layout.row_axis = voxel_of[row.patient];
  layout.slice_axis = voxel_of[slice.patient];
  layout.column_flip = positive[layout.column_axis] != column.increasing;
  layout.row_flip = positive[layout.row_axis] != row.increasing;
  layout.slice_flip = positive[layout.slice_axis] != slice.increasing;
  layout.columns = static_cast<int>(g.size[layout.column_axis]);
  layout.rows = static_cast<int>(g.size[layout.row_axis]);
  layout.slices = static_cast<int>(g.size[layout.slice_axis]);
  return layout;
}

namespace {

// Offsets (in voxels) of the slice's first pixel and of one step along a row and down a column.
struct SliceWalk {
  int64_t start = 0, column_step = 0, row_step = 0;
};

SliceWalk slice_walk(const VolumeGeometry& g, const SliceLayout& layout, int k) {
  const int64_t stride[3] = {1, g.size[0], g.size[0] * g.size[1]};
  auto first = [&](int axis, bool flip) -> int64_t { return flip ? (g.size[axis] - 1) * stride[axis] : 0; };
  SliceWalk walk;
  const int64_t slice_index = layout.slice_flip ? layout.slices - 1 - k : k;
  walk.start = slice_index * stride[layout.slice_axis] + first(layout.row_axis, layout.row_flip) +
               first(layout.column_axis, layout.column_flip);
  walk.column_step = layout.column_flip ? -stride[layout.column_axis] : stride[layout.column_axis];
  walk.row_step = layout.row_flip ? -stride[layout.row_axis] : stride[layout.row_axis];
  return walk;
}

void check_slice(const ByteVolume& volume, const SliceLayout& layout, int k) {
  if (k < 0 || k >= layout.slices) {
    throw VolumeError("slice " + std::to_string(k) + " is outside 0.." + std::to_string(layout.slices - 1));
  }
  if (volume.voxels.size() != static_cast<std::size_t>(volume.geometry.voxel_count() * volume.channels)) {
    throw VolumeError("a volume's voxel buffer does not match its " + volume.geometry.text());
  }
}

}  // namespace

cv::Mat extract_slice(const ByteVolume& volume, const SliceLayout& layout, int k) {
  check_slice(volume, layout, k);
  const SliceWalk walk = slice_walk(volume.geometry, layout, k);
  const int channels = volume.channels;
  cv::Mat slice(layout.rows, layout.columns, CV_8UC(channels));
  for (int r = 0; r < layout.rows; ++r) {
    uint8_t* out = slice.ptr<uint8_t>(r);
    int64_t voxel = walk.start + r * walk.row_step;
    for (int c = 0; c < layout.columns; ++c, voxel += walk.column_step) {
      const uint8_t* in = volume.voxels.data() + voxel * channels;
      for (int ch = 0; ch < channels; ++ch) *out++ = in[ch];
    }
  }
  return slice;
}

void insert_slice(ByteVolume& volume, const SliceLayout& layout, int k, const cv::Mat& slice) {
  check_slice(volume, layout, k);
  if (slice.rows != layout.rows || slice.cols != layout.columns || slice.type() != CV_8UC(volume.channels)) {
    throw VolumeError("a " + size_text(slice) + " slice of " + std::to_string(slice.channels()) +
                      " channel(s) does not fit a volume's " + std::to_string(layout.columns) + "x" +
                      std::to_string(layout.rows) + " slices of " + std::to_string(volume.channels));
  }
  const SliceWalk walk = slice_walk(volume.geometry, layout, k);
  const int channels = volume.channels;
  for (int r = 0; r < layout.rows; ++r) {
    const uint8_t* in = slice.ptr<uint8_t>(r);
    int64_t voxel = walk.start + r * walk.row_step;
    for (int c = 0; c < layout.columns; ++c, voxel += walk.column_step) {
      uint8_t* out = volume.voxels.data() + voxel * channels;
      for (int ch = 0; ch < channels; ++ch) out[ch] = *in++;
    }
  }
}

}  // namespace efcnet
