// The Fuser over volumes (libefcnet): efcnet/volume.h prepares both volumes on the anatomical
// grid and cuts them into slices; each slice goes through Fuser::fuse_pair as a 2D pair does.
// fuse_volume_files and fuse_volume_dirs are what `efcnet fuse` does with volumes, from reading
// the headers to writing the fused volume, for the command line, Python and embedding programs.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "efcnet/files.h"
#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "efcnet/registration.h"
#include "efcnet/volume.h"

namespace efcnet {

// fuse_prepared with Fuser::fuse_pair: slice k of the result is exactly
// fuser.fuse_pair(extract_slice(anatomical, k), extract_slice(functional, k)).
FusedVolume fuse_volume(const Fuser& fuser, const PreparedVolumes& volumes, const SliceProgress& progress = {});

// ---- volume files in, volume files out ----

enum class VolumeOutputFormat {
  nifti,  // .nii or .nii.gz
  dicom,  // a directory holding one DICOM series (volume_dicom.h)
};

struct FuseVolumeOptions {
  std::string method = "efcnet";  // the network, or a baseline's name (baseline_method_named)
  FuserOptions fuser;             // method "efcnet": the network's and SEEM's weights, device, precision
  std::string model_name;         // the shipped model those weights are ("" for files), for DICOM's description
  VolumeFusionOptions volume;     // frame, uneven DICOM series, windows, colormap, plane
  std::string transform_file;     // anatomical -> functional transform to read (read_transform), or ""
  RegistrationKind registration = RegistrationKind::none;  // or estimate one per pair
  int threads = 0;  // registration's smoothing and shrinking threads; 0: every core
  VolumeOutputFormat output_format = VolumeOutputFormat::nifti;
  bool overwrite = false;  // replace existing outputs; otherwise OutputExistsError
  // One pair only; empty: not written.
  std::string slices_dir;      // every fused slice as <plane>_<k>.png
  std::string montage;         // make_montage's picture (.png)
  std::string save_transform;  // the estimated transform (.tfm, .txt, .mat, .h5)
  std::string qc;              // make_registration_qc's picture (.png)
  OptionNamer option_name{};   // error.h
};

// What happens, in order, for a caller's progress display and log.
struct VolumeFusionEvent {
  enum class Kind {
    pair_started,  // batch: pair `index` of `count` (from 0), before its headers are read
    registering,   // a registration level started: `registration`
    registered,    // `registration_result`, `seconds`; `message`: "FUNCTIONAL to ANATOMICAL"
    slice_done,    // `index` slices of `count` done (fused or empty)
    note,          // `message`: something the output's reader should know (e.g. a new DICOM study)
    pair_failed,   // batch: `message`; `existing_output` when an output was there already
  } kind = Kind::note;
  std::string pair;  // batch: the pair's name; one pair: ""
  std::size_t index = 0, count = 0;
  RegistrationProgress registration;
  RegistrationResult registration_result;
  double seconds = 0;
  std::string message;
  std::string existing_output;
};
using VolumeFusionCallback = std::function<void(const VolumeFusionEvent&)>;

struct VolumeFusionSummary {
  int fused_slices = 0, empty_slices = 0;
  std::optional<LinearTransform> transform;  // estimated or given
};

// Fuses one pair of volumes (NIfTI files, DICOM series or files) onto the anatomical grid and
// writes the result to `output` (.nii/.nii.gz, or a directory for DICOM) and the pictures the
// options ask for. Everything that can be refused from the options, the paths and the headers
// (an existing output without overwrite, a 4D input without a frame, too little memory) is
// refused before the networks load or a voxel is read; outputs are written atomically, the
// volume first. Throws Error (OutputExistsError for an existing output, OptionError for options
// that do not go together).
VolumeFusionSummary fuse_volume_files(const std::string& anatomical, const std::string& functional,
                                      const std::string& output, const FuseVolumeOptions& options,
                                      const VolumeFusionCallback& callback = {});

// The same fusion of two volumes in memory (registration, windows, colormap and plane as
// `options` says; `anatomical` and `functional` are messages' names): the fused volume on the
// anatomical grid, nothing written. The one-pair files (slices_dir, montage, save_transform, qc)
// are refused. Throws Error as fuse_volume_files.
FusedVolume fuse_volumes(const Volume& anatomical, const Volume& functional, const FuseVolumeOptions& options,
                         const VolumeFusionCallback& callback = {});

struct VolumeBatchSummary {
  Pairing pairing;                    // the pairs, and the volumes left unpaired or ambiguous
  std::size_t fused = 0, failed = 0;  // of pairing.pairs
};

// Every pair of pair_volumes_by_name(anatomical_dir, functional_dir) into output_dir/<name>.nii.gz
// (or output_dir/<name>/ for DICOM), created if missing. A pair that fails is reported
// (pair_failed) and the batch goes on; options that cannot work and networks that cannot load
// stop it (Error). The one-pair outputs (slices_dir, montage, save_transform, qc) are refused.
VolumeBatchSummary fuse_volume_dirs(const std::string& anatomical_dir, const std::string& functional_dir,
                                    const std::string& output_dir, const FuseVolumeOptions& options,
                                    const VolumeFusionCallback& callback = {});

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
