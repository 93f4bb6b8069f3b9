// libFuzzer target for volume headers as far as the project's own checks go: the raw NIfTI-1
// header check that runs before ITK reads a file (src/volume/nifti_header.h), and the geometry
// checks and slicing every header then passes through (geometry_problem, slice_layout,
// extract_slice). Any input must pass or be refused with IoError/VolumeError; crashes, sanitizer
// reports, leaks and other exceptions are bugs. ITK's own readers are not fuzzed: Debian's ITK
// headers accept only GCC, and libFuzzer's coverage needs clang. The input is both a .nii file
// and, read as numbers, a geometry. Seeds (tests/fuzz/seeds/volume): small NIfTI-1 files made by
// tests/fuzz/make_volume_seeds.py.
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "efcnet/volume.h"
#include "volume/nifti_header.h"

namespace {

// nifti1_io picks the format by the name, so the input is a real .nii file, one per process.
const std::string& input_path() {
  static const std::string path = "/tmp/efcnet_volume_fuzz_" + std::to_string(getpid()) + ".nii";
  return path;
}

void check_file(const uint8_t* data, size_t size) {
  std::FILE* file = std::fopen(input_path().c_str(), "wb");
  if (file == nullptr || std::fwrite(data, 1, size, file) != size || std::fclose(file) != 0) __builtin_trap();
  try {
    efcnet::detail::check_nifti_header(input_path());
  } catch (const efcnet::IoError&) {
  } catch (const efcnet::VolumeError&) {}
}

// The NIfTI-1 header's dims (offset 40), pixdims (76) and srow_x/y/z (280) as a geometry, small
// extents kept small so that a passing geometry can be sliced.
efcnet::VolumeGeometry geometry_of(const uint8_t* data, size_t size) {
  efcnet::VolumeGeometry g;
  if (size < 328) return g;
  for (int a = 0; a < 3; ++a) {
    int16_t dim = 0;
    float pixdim = 0;
    std::memcpy(&dim, data + 42 + 2 * a, sizeof dim);
    std::memcpy(&pixdim, data + 80 + 4 * a, sizeof pixdim);
    g.size[a] = dim;
    g.spacing[a] = pixdim;
    for (int c = 0; c < 4; ++c) {
      float value = 0;
      std::memcpy(&value, data + 280 + 16 * a + 4 * c, sizeof value);
      if (c < 3) g.direction[a * 3 + c] = value;
      if (c == 3) g.origin[a] = value;
    }
  }
  return g;
}

void check_geometry(const efcnet::VolumeGeometry& g) {
  if (!efcnet::geometry_problem(g).empty() || g.voxel_count() > (int64_t{1} << 16)) return;
  efcnet::ByteVolume volume{g, 1, std::vector<uint8_t>(static_cast<std::size_t>(g.voxel_count()), 7)};
  for (const efcnet::Plane plane : {efcnet::Plane::axial, efcnet::Plane::coronal, efcnet::Plane::sagittal}) {
    try {
      const efcnet::SliceLayout layout = efcnet::slice_layout(g, plane);
      if (layout.slices < 1 || layout.rows < 1 || layout.columns < 1 ||
          int64_t{layout.slices} * layout.rows * layout.columns != g.voxel_count()) {
        __builtin_trap();  // a layout that does not cover the volume exactly once
      }
      for (const int k : {0, layout.slices - 1}) {
        const cv::Mat slice = efcnet::extract_slice(volume, layout, k);
        if (slice.rows != layout.rows || slice.cols != layout.columns) __builtin_trap();
        efcnet::insert_slice(volume, layout, k, slice);
      }
    } catch (const efcnet::VolumeError&) {
      __builtin_trap();  // geometry_problem passed it: slicing must not refuse it
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_file(data, size);
  check_geometry(geometry_of(data, size));
  return 0;
}
