// `efcnet fuse`'s command line, shared by its 2D pairs (fuse_command.cpp) and its volumes
// (fuse_volume.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

#include "efcnet/image.h"
#include "efcnet/models.h"
#include "efcnet/pipeline.h"
#include "efcnet/volume.h"

namespace efcnet::cli {

struct FuseSettings {
  std::string anatomical, functional, output;
  std::string anatomical_dir, functional_dir, output_dir, format;
  ModelChoice model;  // --model, or --weights with --seem-weights
  std::string device = "cpu";
  std::string method = "efcnet";
  std::string precision = "float32";
  int threads = 0;
  bool overwrite = false;
  std::int64_t max_image_pixels = kDefaultMaxImagePixels;  // 2D images only
  // Volumes only (empty: not given).
  VolumeOptionTexts volume;  // frame, windows, colormap, plane, uneven series
  std::string slices_dir, montage;
  std::string register_kind, transform, save_transform, qc;  // registration (fuse_volume.cpp)
  std::string output_format;                                 // nifti (empty: the default) or dicom

  bool single_mode() const { return !anatomical.empty() || !functional.empty() || !output.empty(); }
  bool batch_mode() const { return !anatomical_dir.empty() || !functional_dir.empty() || !output_dir.empty(); }
  bool volume_options_given() const {
    return volume.any() || !slices_dir.empty() || !montage.empty() || !register_kind.empty() || !transform.empty() ||
           !save_transform.empty() || !qc.empty();
  }
  WriteMode write_mode() const { return overwrite ? WriteMode::replace : WriteMode::no_clobber; }
};

// FuserOptions from the command line (the model looked up as --help says).
FuserOptions fuser_options(const FuseSettings& s);

// FuseImageOptions from the command line.
FuseImageOptions image_options(const FuseSettings& s);

// The one line for an error: an existing output says how to replace it.
std::string error_line(const std::exception& e);

// Names every unpaired and ambiguous entry of `pairing` on stderr ("unpaired: PATH (why)"), the
// entries being `kind`s ("image", "volume") whose stems `stem_of` gives; returns how many.
std::size_t report_unpaired(const FuseSettings& s, const Pairing& pairing, const std::string& kind,
                            const std::function<std::string(const std::string&)>& stem_of);

// Whether the command line names volumes (NIfTI files, DICOM series or files) rather than 2D
// images; throws for a mix of the two.
bool volume_mode(const FuseSettings& s);

// One pair of volumes / two directories of volumes (fuse_volume.cpp).
void fuse_volume_single(const FuseSettings& s);
void fuse_volume_batch(const FuseSettings& s);

}  // namespace efcnet::cli
