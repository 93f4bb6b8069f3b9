// Volumes through the Fuser, and the memory they need (volume_fusion.h).
#include "efcnet/volume_fusion.h"

#include <string>

#include "efcnet/inference.h"

namespace efcnet {

FusedVolume fuse_volume(const Fuser& fuser, const PreparedVolumes& volumes, const SliceProgress& progress) {
  return fuse_prepared(
      volumes,
      [&fuser](const cv::Mat& anatomical, const cv::Mat& functional) {
        return fuser.fuse_pair(anatomical, functional);
      },
      progress);
}

int64_t estimated_volume_bytes(const VolumeInfo& anatomical, const VolumeInfo& functional, Plane plane, bool colour,
                               bool cpu) {
  const int64_t a = anatomical.geometry.voxel_count(), f = functional.geometry.voxel_count();
  const int64_t channels = colour ? 3 : 1;
  int64_t bytes = 0;
  bytes += 4 * a * anatomical.frames + 4 * a;      // the file's frames, then the chosen one
  bytes += 2 * 4 * f * functional.frames + 4 * f;  // the same, plus ITK's copy for resampling
  bytes += 2 * 4 * a;                              // the resampled functional volume (ITK's and ours)
  bytes += a + a + channels * a;                   // 8-bit anatomical, functional, coloured
  bytes += 2 * channels * a;                       // the fused volume and ITK's copy for writing
  if (cpu) {
    const SliceLayout layout = slice_layout(anatomical.geometry, plane);
    bytes += estimated_working_bytes(layout.rows, layout.columns);
  }
  return bytes;
}

std::string volume_memory_shortfall(const VolumeInfo& anatomical, const VolumeInfo& functional, Plane plane,
                                    bool colour, bool cpu) {
  const int64_t needed = estimated_volume_bytes(anatomical, functional, plane, colour, cpu);
  const int64_t available = available_memory_bytes();
  if (available < 0 || needed <= available) return "";
  return "fusing a " + anatomical.geometry.text() + " volume with a " + functional.geometry.text() +
         " one needs about " + gibibytes(needed) + " of memory, but only " + gibibytes(available) +
         " is available (MemAvailable)";
}

}  // namespace efcnet
