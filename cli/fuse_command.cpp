// `efcnet fuse`: one pair, or every pair of two directories matched by file name.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bench/bench_support.h"
#include "commands.h"
#include "efcnet/image.h"
#include "efcnet/inference.h"
#include "efcnet/models.h"
#include "efcnet/pipeline.h"
#include "efcnet/progress.h"
#include "efcnet/runtime.h"
#include "efcnet/volume.h"
#include "fuse_settings.h"

namespace efcnet::cli {
namespace {

// ---- one pair ----

void fuse_single(const FuseSettings& s) {
  const auto start = BenchClock::now();
  if (s.anatomical.empty() || s.functional.empty() || s.output.empty()) {
    throw std::runtime_error("fuse: a single pair needs all of --anatomical, --functional and --output");
  }
  try {
    fuse_image_files(s.anatomical, s.functional, s.output, image_options(s));
  } catch (const Error& e) {
    throw std::runtime_error(error_line(e));
  }
  std::fprintf(stderr, "fused %s in %.1f s\n", s.output.c_str(), seconds_since(start));
}

// ---- two directories ----

void fuse_batch(const FuseSettings& s) {
  const auto start = BenchClock::now();
  if (s.anatomical_dir.empty() || s.functional_dir.empty() || s.output_dir.empty()) {
    throw std::runtime_error("fuse: directory mode needs all of --anatomical-dir, --functional-dir and --output-dir");
  }
  ImageBatchSummary summary;
  std::optional<ProgressBar> bar;
  try {
    summary = fuse_image_dirs(
        s.anatomical_dir, s.functional_dir, s.output_dir, image_options(s), [&bar](const ImageBatchEvent& event) {
          if (!bar) bar.emplace(event.count);
          const std::string failure =
              event.existing_output.empty() ? event.failure : existing_output_message(event.existing_output);
          if (!failure.empty()) bar->message("failed: " + event.pair + ": " + failure);
          bar->advance();
        });
  } catch (const Error& e) {
    throw std::runtime_error(error_line(e));
  }
  bar.reset();
  const std::size_t unpaired = report_unpaired(
      s, summary.pairing, "image", [](const std::string& path) { return std::filesystem::path(path).stem().string(); });
  std::fprintf(stderr, "fused %zu, failed %zu, unpaired %zu in %.1f s\n", summary.fused, summary.failed, unpaired,
               seconds_since(start));
  if (summary.failed > 0 || unpaired > 0) throw CLI::RuntimeError(1);
}

constexpr const char* kFooter = R"(Modes:
  one pair     --anatomical A --functional F --output O  (2D images, or volumes: see "Volumes")
  directories  --anatomical-dir DA --functional-dir DF --output-dir DO
               Files pair by name: the stem (file name without its extension) must match exactly,
               letter case included; the extensions may differ (DA/x.png pairs with DF/x.tif).
               Only .png .jpg .jpeg .tif .tiff .bmp files count (any letter case); hidden files and
               subdirectories are ignored. The network and weights are loaded once; reading the next
               pair and writing the previous one overlap with the network. Output: DO/<stem>.<format>.
               Files without a partner are named ("unpaired: ..."), pairs that cannot be read or
               differ in size are named with the reason ("failed: ...") and skipped, the rest are
               fused. An existing output is not replaced without --overwrite: that pair is named and
               counted failed. A final line counts fused, failed and unpaired files; the exit status
               is 1 if any pair failed or any file was unpaired.

Volumes (chosen when the inputs are NIfTI files .nii/.nii.gz, DICOM series directories or DICOM
files; a volume with a 2D image is refused):
  --anatomical A.nii.gz --functional F.nii.gz --output O.nii.gz   (or .nii; A, F may be DICOM)
  --anatomical-dir DA --functional-dir DF --output-dir DO
               pairs volumes by name: study1.nii.gz with study1.nii (or a DICOM series directory
               study1/), writes DO/study1.nii.gz; unpaired and failed volumes as for images.
  A directory holds one DICOM series (sorted by position, not by file name); several are refused.
  The functional volume is resampled onto the anatomical grid in physical space (origin, spacing
  and direction of both; linear; 0 outside its extent); volumes that do not overlap are refused.
  The output has the anatomical volume's exact geometry, so it overlays it in any viewer.
  Each volume is mapped to 0..255 with one window for all its slices (--anatomical-window,
  --functional-window; default: 0.5-99.5 percentiles of its non-zero voxels), the functional one
  coloured with --colormap (hot-iron by default: of DICOM's palettes the only one whose brightness
  rises with uptake, as in the pseudo-colour the network was trained on). The output is an RGB24
  NIfTI, grey with --colormap grey. Slices (--plane) are cut in patient space and shown to the
  network in one orientation whatever the voxel order on disk; slices empty in both inputs are
  not fused (left 0). A 4D volume needs --frame. Volumes too large for memory are refused before
  any work.

DICOM output (--output-format dicom; --output DIR, or DO/<stem>/ in directory mode):
  a directory holding one Multi-frame True Color (grey: Grayscale Byte) Secondary Capture file
  with the anatomical grid's geometry per frame. From a DICOM anatomical it joins the same patient
  and study and frame of reference as a new series; from a NIfTI one it starts a new study with
  empty patient fields (said on stderr). Its description names efcnet, the model and the options.
  Written into a hidden temporary directory and renamed into place; --overwrite replaces a former
  series (a directory of .dcm files only); an existing file of that name is refused.

Registration (volumes acquired apart: a SPECT or PET from another day than the MRI):
  --register rigid estimates the transform that aligns the functional volume (after
  --frame) with the anatomical one before resampling: Mattes mutual information on the volumes'
  own values (before windowing and colour), 3 resolutions, started from the headers' placement or
  the centres of mass matched (whichever fits better), fixed samples and seed, the metric on one
  thread, so a rerun gives the same bytes. The metric before and after is printed; a registration
  that does not converge or ends worse than it started is refused (exit 1, nothing written).
  --save-transform T.tfm keeps it (ITK's transform file: anatomical to functional points);
  --transform T.tfm applies a given one (another frame, or one made with another tool).
  --qc QC.png shows the middle slices before and after as checkerboards, to judge it by eye.

Colour handling (as the authors' test script):
  colour functional image (pseudo-coloured SPECT/PET, GFP green fluorescence): converted to YUV;
    Y is fused with the anatomical image, U and V (the colour) are kept; the output is colour.
  grey functional image (CT, grey SPECT): fused directly; the output is grey.
  The anatomical image (MRI, CT, phase contrast) is read as grey.
  Images are read as OpenCV's IMREAD_COLOR / IMREAD_GRAYSCALE read them: RGBA loses its alpha,
  16-bit samples are reduced to 8 bits by the codec (PNG keeps the high byte). An image whose
  header declares more than --max-image-pixels pixels (default 2^26, 8192x8192), or whose pair the
  network could not fuse in the memory available (on the CPU), is refused before it is decoded.
  Inputs must be regular files: a FIFO or a device is refused.

Outputs are written atomically (a hidden temporary file renamed into place): an interrupted run
never leaves a partial image. Existing outputs are kept unless --overwrite is given.)";

}  // namespace

FuserOptions fuser_options(const FuseSettings& s) {
  FuserOptions options;
  const Model model = resolve_model(s.model);
  options.weights = model.network;
  options.seem_weights = model.seem;
  options.device = s.device;
  options.inference.precision = s.precision == "bf16" ? Precision::bfloat16 : Precision::float32;
  return options;
}

FuseImageOptions image_options(const FuseSettings& s) {
  FuseImageOptions options;
  options.method = s.method;
  if (s.method == "efcnet") options.fuser = fuser_options(s);
  options.fuser.device = s.device;
  options.max_pixels = s.max_image_pixels;
  options.format = s.format;
  options.overwrite = s.overwrite;
  options.option_name = flags_named({{"registration", "--register"}});
  return options;
}

std::string error_line(const std::exception& e) {
  if (const auto* exists = dynamic_cast<const OutputExistsError*>(&e)) return existing_output_message(exists->path());
  return e.what();
}

std::size_t report_unpaired(const FuseSettings& s, const Pairing& pairing, const std::string& kind,
                            const std::function<std::string(const std::string&)>& stem_of) {
  const auto reasons = unpaired_reasons(pairing, kind, s.anatomical_dir, s.functional_dir, stem_of);
  for (const auto& [path, why] : reasons) std::fprintf(stderr, "unpaired: %s (%s)\n", path.c_str(), why.c_str());
  return reasons.size();
}

void add_fuse_command(CLI::App& app) {
  auto settings = std::make_shared<FuseSettings>();
  CLI::App* cmd = add_torch_subcommand(app, "fuse");
  cmd->footer(std::string(kFooter) + "\n\n" + kModelLookupHelp);

  cmd->add_option("--anatomical", settings->anatomical, "Anatomical image (MRI, CT, phase contrast), read as grey");
  cmd->add_option("--functional", settings->functional, "Functional image (SPECT, PET, GFP colour; or grey CT)");
  cmd->add_option("--output", settings->output, "Fused image to write; its extension sets the format");
  cmd->add_option("--anatomical-dir", settings->anatomical_dir, "Directory of anatomical images");
  cmd->add_option("--functional-dir", settings->functional_dir, "Directory of functional images, same names");
  cmd->add_option("--output-dir", settings->output_dir, "Directory for the fused images (created if missing)");
  cmd->add_option("--format", settings->format,
                  "Output format in directory mode (default: the functional image's extension)")
      ->check(CLI::IsMember({"png", "jpg", "tif"}));
  cmd->add_option("--method", settings->method,
                  "efcnet (the network), or a baseline needing no weights: y-average ((Y + anatomical)/2), "
                  "y-max (max(Y, anatomical)), with the same colour handling, or anatomical-copy (the anatomical "
                  "image as Y: no fusion, a reference point for the metrics)")
      ->capture_default_str()
      ->check(CLI::IsMember({"efcnet", "y-average", "y-max", "anatomical-copy"}));
  add_model_options(cmd, settings->model);
  cmd->add_option("--threads", settings->threads,
                  "LibTorch intra-op threads (default: all cores, " + std::to_string(core_count()) + " here)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", settings->device, "cpu, cuda or cuda:N (default: cpu)");
  cmd->add_option("--precision", settings->precision,
                  "float32 (default: within 1 level of the reference) or bf16: the network's convolutions and "
                  "linear layers in bfloat16 on a CPU with AVX-512: faster, most where it has AMX or AVX-512 BF16, "
                  "up to 3 levels off (measurements in docs/model-history.md)")
      ->check(CLI::IsMember({"float32", "bf16"}));
  cmd->add_flag("--overwrite", settings->overwrite, "Replace existing output files");
  add_max_image_pixels_option(cmd, settings->max_image_pixels);
  // Volumes (see "Volumes" below).
  cmd->add_option("--frame", settings->volume.frame,
                  "Volumes: which frame of a 4D (dynamic) volume to fuse, N counting from 0, or 'mean' of all "
                  "frames; a 4D volume without --frame is refused");
  cmd->add_option("--anatomical-window", settings->volume.anatomical_window,
                  "Volumes: LO:HI in the anatomical file's units mapped to 0..255 (default: the 0.5 and 99.5 "
                  "percentiles of its non-zero voxels)");
  cmd->add_option("--functional-window", settings->volume.functional_window,
                  "Volumes: LO:HI in the functional file's units mapped to 0..255 (default as above)");
  cmd->add_option("--colormap", settings->volume.colormap,
                  "Volumes: pseudo-colour of the functional volume: hot-iron (default), pet, hot-metal-blue, "
                  "pet-20-step (DICOM PS3.6 Annex B palettes) or grey (CT; a grey output)")
      ->check(CLI::IsMember({"hot-iron", "pet", "hot-metal-blue", "pet-20-step", "grey"}));
  cmd->add_flag("--allow-uneven-slices", settings->volume.allow_uneven_slices,
                "Volumes: a DICOM series with a slice missing or unevenly spaced slices is resampled onto an even "
                "grid (its median spacing) from the slices' true positions, instead of refused");
  cmd->add_option("--plane", settings->volume.plane,
                  "Volumes: axial (default), coronal or sagittal slices, in patient space whatever the voxel order")
      ->check(CLI::IsMember({"axial", "coronal", "sagittal"}));
  cmd->add_option("--slices-dir", settings->slices_dir,
                  "Volumes, one pair: also write every fused slice as DIR/<plane>_<k>.png (created if missing)");
  cmd->add_option("--montage", settings->montage,
                  "Volumes, one pair: also write a picture (.png) of evenly spaced slices: anatomical, functional "
                  "and fused rows");
  cmd->add_option("--output-format", settings->output_format,
                  "Volumes: nifti (default: --output O.nii.gz) or dicom (--output DIR: a DICOM series directory, "
                  "see \"DICOM output\")")
      ->check(CLI::IsMember({"nifti", "dicom"}));
  cmd->add_option("--register", settings->register_kind,
                  "Volumes: align the functional volume with the anatomical one first (Mattes mutual information): "
                  "rigid or none (default: none, the headers' physical space as it is); see \"Registration\"")
      ->check(CLI::IsMember({"none", "rigid"}));
  cmd->add_option("--transform", settings->transform,
                  "Volumes: apply this rigid or affine transform (ITK .tfm/.txt/.mat/.h5, anatomical to functional "
                  "points, as --save-transform writes) instead of estimating one");
  cmd->add_option(
      "--save-transform", settings->save_transform,
      "Volumes, one pair, with --register rigid: also write the estimated transform (.tfm, .txt, .mat, .h5), "
      "readable by ITK, SimpleITK, 3D Slicer and ANTs");
  cmd->add_option("--qc", settings->qc,
                  "Volumes, one pair, with --register or --transform: also write a picture (.png) of the middle "
                  "slice of each plane, anatomical against functional as checkerboards before and after alignment");

  cmd->callback([settings] {
    if (settings->single_mode() == settings->batch_mode()) {
      throw std::runtime_error(
          "fuse: give either --anatomical/--functional/--output or --anatomical-dir/--functional-dir/--output-dir "
          "(see efcnet fuse --help)");
    }
    const bool volumes = volume_mode(*settings);
    if (!volumes && settings->volume_options_given()) {
      throw std::runtime_error(
          "fuse: --frame, --anatomical-window, --functional-window, --colormap, --plane, --slices-dir, --montage, "
          "--register, --transform, --save-transform and --qc are for volumes (NIfTI files, DICOM series), not 2D "
          "images");
    }
    if (!volumes && !settings->output_format.empty()) {
      throw std::runtime_error("fuse: --output-format is for volumes; a 2D output's extension sets its format");
    }
    use_fusion_runtime(settings->threads, settings->device);
    if (volumes) {
      settings->single_mode() ? fuse_volume_single(*settings) : fuse_volume_batch(*settings);
    } else if (settings->single_mode()) {
      fuse_single(*settings);
    } else {
      fuse_batch(*settings);
    }
  });
}

}  // namespace efcnet::cli
