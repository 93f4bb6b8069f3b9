// The Fuser over volumes (libefcnet): efcnet/volume.h prepares both volumes on the anatomical
// grid and cuts them into slices; each slice goes through Fuser::fuse_pair as a 2D pair does.
#pragma once

#include <string>

#include "efcnet/pipeline.h"
#include "efcnet/volume.h"

namespace efcnet {

// fuse_prepared with Fuser::fuse_pair: slice k of the result is exactly
// fuser.fuse_pair(extract_slice(anatomical, k), extract_slice(functional, k)).
FusedVolume fuse_volume(const Fuser& fuser, const PreparedVolumes& volumes, ProgressBar* progress = nullptr);

// Upper estimate of the memory that reading, preparing, fusing and writing two volumes with these
// headers takes: the volumes themselves (every frame of a 4D file is read), their resampled,
// 8-bit and coloured forms, the output, and on the CPU one slice's network working memory
// (estimated_working_bytes).
int64_t estimated_volume_bytes(const VolumeInfo& anatomical, const VolumeInfo& functional, Plane plane, bool colour,
                               bool cpu);

// Empty when estimated_volume_bytes fits available_memory_bytes(); otherwise the one-line reason,
// for a refusal before any work starts.
std::string volume_memory_shortfall(const VolumeInfo& anatomical, const VolumeInfo& functional, Plane plane,
                                    bool colour, bool cpu);

}  // namespace efcnet
