// `efcnet fuse` on volumes: NIfTI files and DICOM series in, a NIfTI volume on the anatomical grid out.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "command_support.h"
#include "commands.h"
#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "efcnet/progress.h"
#include "efcnet/registration.h"
#include "efcnet/volume.h"
#include "efcnet/volume_dicom.h"
#include "efcnet/volume_fusion.h"
#include "fuse_settings.h"

namespace efcnet::cli {
namespace {

namespace fs = std::filesystem;
// Library messages speak of options; the command line names its flags.
VolumeFusionOptions volume_options(const FuseSettings& s) {
  VolumeFusionOptions options;
  options.read.allow_uneven_slices = s.allow_uneven_slices;
  try {
    if (!s.frame.empty()) options.read.frame = parse_frame(s.frame);
  } catch (const OptionError& e) {
    throw std::runtime_error(std::string("--frame: ") + e.what());
  }
  try {
    if (!s.anatomical_window.empty()) options.anatomical_window = parse_window(s.anatomical_window);
  } catch (const OptionError& e) {
    throw std::runtime_error(std::string("--anatomical-window: ") + e.what());
  }
  try {
    if (!s.functional_window.empty()) options.functional_window = parse_window(s.functional_window);
  } catch (const OptionError& e) {
    throw std::runtime_error(std::string("--functional-window: ") + e.what());
  }
  if (!s.colormap.empty()) options.colormap = parse_colormap(s.colormap);
  if (!s.plane.empty()) options.plane = parse_plane(s.plane);
  // A given transform is read once, before any pair: a bad file stops the command before any work.
  if (!s.transform.empty()) options.functional_transform = read_transform(s.transform);
  return options;
}

// --register: the options of estimate_transform, or none.
std::optional<RegistrationOptions> registration_options(const FuseSettings& s) {
  const RegistrationKind kind =
      s.register_kind.empty() ? RegistrationKind::none : parse_registration_kind(s.register_kind);
  if (!s.save_transform.empty() && kind == RegistrationKind::none)
    throw std::runtime_error("fuse: --save-transform saves what --register rigid estimates");
  if (!s.qc.empty() && kind == RegistrationKind::none && s.transform.empty())
    throw std::runtime_error("fuse: --qc shows the alignment of --register rigid or --transform");
  if (kind == RegistrationKind::none) return std::nullopt;
  if (!s.transform.empty()) throw std::runtime_error("fuse: give --register or --transform, not both");
  RegistrationOptions options;
  options.kind = kind;
  // Smoothing and shrinking threads; the metric runs on one, so the transform does not depend on them.
  options.threads = s.threads > 0 ? s.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return options;
}

// Estimates the pair's transform, one line per resolution level and the metric before and after.
LinearTransform register_pair(const Volume& anatomical, const Volume& functional, const std::string& anatomical_name,
                              const std::string& functional_name, const RegistrationOptions& options) {
  const auto start = Clock::now();
  int level = -1;
  const RegistrationResult result = estimate_transform(
      anatomical, functional, options, anatomical_name, functional_name, [&level](const RegistrationProgress& p) {
        if (p.level == level) return;
        level = p.level;
        std::fprintf(stderr, "registering: level %d/%d (Mattes MI %.4f)\n", p.level + 1, p.levels, p.metric);
      });
  std::fprintf(stderr, "registered %s to %s (%s): Mattes MI %.4f before, %.4f after, %d iterations, %.1f s\n",
               functional_name.c_str(), anatomical_name.c_str(), registration_kind_name(options.kind),
               result.metric_before, result.metric_after, result.iterations, seconds_since(start));
  return result.transform;
}

std::string with_flags(std::string message) {
  const auto replace = [&message](const std::string& from, const std::string& to) {
    const auto at = message.find(from);
    if (at != std::string::npos) message.replace(at, from.size(), to);
  };
  replace("the frame option", "--frame N");
  replace("or their mean", "or --frame mean");
  replace("choose another plane", "choose another --plane");
  return message;
}

// The header checks that can refuse a pair before anything is read or loaded.
void check_headers(const std::string& path, const VolumeInfo& info, const VolumeFusionOptions& options) {
  if (info.components != 1) {
    throw VolumeError(path + ": holds " + std::to_string(info.components) +
                      " values per voxel (colour?); a volume of intensities is needed");
  }
  if (info.dimensions == 4 && info.frames > 1 && options.read.frame.kind == FrameChoice::Kind::none) {
    throw VolumeError(path + ": is 4D with " + std::to_string(info.frames) + " frames; choose one with --frame N (0.." +
                      std::to_string(info.frames - 1) + ") or their mean with --frame mean");
  }
  if (info.dimensions == 4 && info.frames > 1 && options.read.frame.kind == FrameChoice::Kind::index &&
      options.read.frame.index >= info.frames) {
    throw VolumeError(path + ": has " + std::to_string(info.frames) + " frames, so no frame " +
                      std::to_string(options.read.frame.index) + " (--frame counts from 0)");
  }
}

// One 2D fusion per slice: the network, or a baseline.
class SliceFuser {
 public:
  explicit SliceFuser(const FuseSettings& s) {
    if (const auto method = baseline_method_named(s.method)) {
      fuse_ = [method = *method](const cv::Mat& a, const cv::Mat& f) { return fuse_baseline(a, f, method); };
    } else {
      fuser_ = std::make_unique<const Fuser>(fuser_options(s));
      const Fuser* fuser = fuser_.get();
      fuse_ = [fuser](const cv::Mat& a, const cv::Mat& f) { return fuser->fuse_pair(a, f); };
    }
  }
  FusedVolume fuse(const PreparedVolumes& volumes, ProgressBar* progress) const {
    return fuser_ ? fuse_volume(*fuser_, volumes, progress) : fuse_prepared(volumes, fuse_, progress);
  }

 private:
  std::unique_ptr<const Fuser> fuser_;
  SliceFusion fuse_;
};

struct VolumeJob {
  std::string name, anatomical, functional, output;
};

// Reads, prepares, fuses and writes one pair; returns the prepared inputs and the result for the
// pictures. Every refusal happens before the output is written.
struct VolumeResult {
  PreparedVolumes prepared;
  FusedVolume fused;
  std::optional<LinearTransform> transform;  // estimated or given
  cv::Mat qc;                                // --qc
};

// Loading the networks failed: no pair of a batch would fuse, so the batch stops.
class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a DICOM series says of its making: software, model and options (file names, not paths).
DicomOutputOptions dicom_options(const VolumeJob& job, const FuseSettings& s, const PreparedVolumes& prepared) {
  const auto name = [](const std::string& path) { return fs::path(path).filename().string(); };
  const auto window = [](const Window& w) {
    char text[64];
    std::snprintf(text, sizeof text, "%g:%g", w.low, w.high);
    return std::string(text);
  };
  std::string model = s.method, network;
  if (s.method == "efcnet") {
    const Model chosen = resolve_model(s.model);
    model = chosen.name.empty() ? name(chosen.network) : "model " + chosen.name;  // Series Description: 64 characters
    network = ", " + (chosen.name.empty() ? "" : model + ", ") + "weights " + name(chosen.network) + ", SEEM weights " +
              name(chosen.seem) + ", precision " + s.precision;
  }
  const std::string colormap = s.colormap.empty() ? colormap_name(kDefaultFunctionalColormap) : s.colormap;
  const bool registered = !s.register_kind.empty() && s.register_kind != "none";
  DicomOutputOptions options;
  options.anatomical = job.anatomical;
  options.software_versions = kVersion;
  options.series_description = std::string(kVersion) + " fusion, " + model + ", " + colormap;
  options.derivation_description =
      std::string(kVersion) + " fuse: method " + s.method + network + "; anatomical " + name(job.anatomical) +
      ", window " + window(prepared.anatomical_window) + "; functional " + name(job.functional) + ", window " +
      window(prepared.functional_window) + ", colormap " + colormap + "; plane " +
      (s.plane.empty() ? "axial" : s.plane) + (s.frame.empty() ? "" : "; frame " + s.frame) +
      (registered ? "; registered " + s.register_kind : "") +
      (s.transform.empty() ? "" : "; transform " + name(s.transform)) +
      (s.allow_uneven_slices ? "; uneven slices allowed" : "");
  return options;
}

// The fused volume as NIfTI, or as a DICOM series (--output-format dicom).
void write_output(const VolumeJob& job, const FuseSettings& s, const VolumeResult& result) {
  if (s.output_format != "dicom") {
    write_volume_atomic(job.output, result.fused.fused, s.write_mode());
    return;
  }
  const DicomSeriesWritten written =
      write_volume_dicom_atomic(job.output, result.fused.fused, dicom_options(job, s, result.prepared), s.write_mode());
  if (!written.patient_from_anatomical) {
    std::fprintf(stderr, "%s: the anatomical volume is not DICOM: a new study (generated UIDs), patient fields empty\n",
                 job.output.c_str());
  }
}

VolumeResult fuse_one(const VolumeJob& job, const FuseSettings& s, VolumeFusionOptions options,
                      const std::optional<RegistrationOptions>& registration,
                      const std::function<const SliceFuser&()>& fuser) {
  const VolumeInfo a = read_volume_info(job.anatomical, options.read),
                   f = read_volume_info(job.functional, options.read);
  check_headers(job.anatomical, a, options);
  check_headers(job.functional, f, options);
  check_slice_size(a.geometry, options.plane, job.anatomical);
  const bool colour = options.colormap != Colormap::grey;
  if (const std::string shortfall = volume_memory_shortfall(a, f, options.plane, colour, s.device == "cpu");
      !shortfall.empty()) {
    throw VolumeError(job.anatomical + " + " + job.functional + ": " + shortfall);
  }
  const SliceFuser& slice_fuser = fuser();  // the networks are loaded once, on the first pair that gets here

  VolumeResult result;
  {
    const Volume anatomical = read_volume(job.anatomical, options.read);
    const Volume functional = read_volume(job.functional, options.read);
    if (registration) {
      options.functional_transform =
          register_pair(anatomical, functional, job.anatomical, job.functional, *registration);
    }
    result.transform = options.functional_transform;
    if (!s.qc.empty()) {
      result.qc = make_registration_qc(anatomical, functional, LinearTransform{}, *options.functional_transform);
    }
    result.prepared = prepare_volumes(anatomical, functional, options, job.anatomical, job.functional);
  }
  ProgressBar progress(static_cast<std::size_t>(result.prepared.layout.slices));
  try {
    result.fused = slice_fuser.fuse(result.prepared, &progress);
  } catch (const std::exception& e) {
    progress.finish();
    throw std::runtime_error(job.anatomical + " + " + job.functional + ": " + e.what());
  }
  progress.finish();
  write_output(job, s, result);
  return result;
}

void check_output_path(const std::string& output, bool overwrite, bool dicom) {
  std::error_code ec;
  if (dicom && has_volume_extension(output)) {
    throw std::runtime_error(output + ": --output-format dicom writes a directory; give a name without .nii/.nii.gz");
  }
  if (dicom && fs::exists(fs::symlink_status(output, ec)) && !fs::is_directory(fs::symlink_status(output, ec))) {
    throw std::runtime_error(output + ": exists and is not a directory; --output-format dicom writes a directory");
  }
  if (!dicom && !has_volume_extension(output)) {
    throw std::runtime_error(output + ": a fused volume is written as .nii or .nii.gz");
  }
  const fs::path dir = fs::path(output).has_parent_path() ? fs::path(output).parent_path() : ".";
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(output + ": directory " + dir.string() + " does not exist");
  if (!overwrite && fs::exists(fs::symlink_status(output, ec)))
    throw std::runtime_error(existing_output_message(output));
  if (dicom) check_dicom_output(output, overwrite ? WriteMode::replace : WriteMode::no_clobber);
}

// --montage and --slices-dir before any work: an existing montage, or a slices directory already
// holding <plane>_<k>.png slices (an earlier run's, whose count need not match), is refused
// without --overwrite.
void check_picture_paths(const FuseSettings& s) {
  if (!s.montage.empty() && fs::path(s.montage).extension() != ".png") {
    throw std::runtime_error(s.montage + ": --montage writes a .png picture");
  }
  if (!s.montage.empty()) refuse_existing_output(s.montage, s.overwrite);
  std::error_code ec;
  if (s.slices_dir.empty() || s.overwrite || !fs::is_directory(s.slices_dir, ec)) return;
  const std::regex slice_name(std::string(plane_name(s.plane.empty() ? Plane::axial : parse_plane(s.plane))) +
                              "_[0-9]+\\.png");
  std::vector<std::string> slices;
  for (const auto& entry : fs::directory_iterator(s.slices_dir, ec)) {
    if (std::regex_match(entry.path().filename().string(), slice_name)) slices.push_back(entry.path().string());
  }
  if (!slices.empty())
    throw std::runtime_error(existing_output_message(*std::min_element(slices.begin(), slices.end())));
}

void write_pictures(const FuseSettings& s, const VolumeResult& result) {
  if (!s.slices_dir.empty()) {
    std::error_code ec;
    fs::create_directories(s.slices_dir, ec);
    if (!fs::is_directory(s.slices_dir))
      throw std::runtime_error(s.slices_dir + ": cannot create the --slices-dir directory");
    const SliceLayout& layout = result.prepared.layout;
    const int digits = static_cast<int>(std::to_string(std::max(layout.slices - 1, 0)).size());
    for (int k = 0; k < layout.slices; ++k) {
      char name[64];
      std::snprintf(name, sizeof name, "%s_%0*d.png", plane_name(s.plane.empty() ? Plane::axial : parse_plane(s.plane)),
                    digits, k);
      write_image_atomic((fs::path(s.slices_dir) / name).string(), extract_slice(result.fused.fused, layout, k),
                         s.write_mode());
    }
  }
  if (!s.montage.empty()) {
    write_image_atomic(s.montage, make_montage(result.prepared, result.fused.fused), s.write_mode());
  }
  if (!s.save_transform.empty()) write_transform_atomic(s.save_transform, *result.transform, s.write_mode());
  if (!s.qc.empty()) write_image_atomic(s.qc, result.qc);
}

// --save-transform and --qc: refused before any work when they could not be written.
void check_registration_outputs(const FuseSettings& s) {
  std::error_code ec;
  if (!s.save_transform.empty()) {
    if (!has_transform_extension(s.save_transform))
      throw std::runtime_error(s.save_transform + ": --save-transform writes .tfm, .txt, .mat or .h5");
    if (!s.overwrite && fs::exists(fs::symlink_status(s.save_transform, ec)))
      throw std::runtime_error(existing_output_message(s.save_transform));
  }
  if (!s.qc.empty()) {
    if (fs::path(s.qc).extension() != ".png") throw std::runtime_error(s.qc + ": --qc writes a .png picture");
    if (!s.overwrite && fs::exists(fs::symlink_status(s.qc, ec)))
      throw std::runtime_error(existing_output_message(s.qc));
  }
}

}  // namespace

bool volume_mode(const FuseSettings& s) {
  if (s.single_mode()) {
    const bool a = !s.anatomical.empty() && is_volume_path(s.anatomical);
    const bool f = !s.functional.empty() && is_volume_path(s.functional);
    if (a != f && !s.anatomical.empty() && !s.functional.empty()) {
      const std::string& volume = a ? s.anatomical : s.functional;
      const std::string& image = a ? s.functional : s.anatomical;
      std::error_code ec;
      // A directory given with an image is an image pair gone wrong: the image mode names it.
      if (std::filesystem::is_directory(volume, ec)) return false;
      throw std::runtime_error("fuse: " + volume + " is a volume but " + image +
                               " is a 2D image; give two volumes or two images");
    }
    return a || f;
  }
  const bool a = !s.anatomical_dir.empty() && directory_holds_volumes(s.anatomical_dir);
  const bool f = !s.functional_dir.empty() && directory_holds_volumes(s.functional_dir);
  if (a != f && !s.anatomical_dir.empty() && !s.functional_dir.empty()) {
    const std::string& volumes = a ? s.anatomical_dir : s.functional_dir;
    const std::string& images = a ? s.functional_dir : s.anatomical_dir;
    throw std::runtime_error("fuse: " + volumes + " holds volumes but " + images +
                             " does not; give two directories of volumes or two of images");
  }
  return a || f;
}

void fuse_volume_single(const FuseSettings& s) {
  const auto start = Clock::now();
  if (s.anatomical.empty() || s.functional.empty() || s.output.empty()) {
    throw std::runtime_error("fuse: a single pair needs all of --anatomical, --functional and --output");
  }
  if (!s.format.empty()) throw std::runtime_error("fuse: --format is for --output-dir of 2D images");
  check_output_path(s.output, s.overwrite, s.output_format == "dicom");
  check_picture_paths(s);
  check_registration_outputs(s);
  const std::optional<RegistrationOptions> registration = registration_options(s);
  std::unique_ptr<SliceFuser> slot;
  const auto fuser = [&]() -> const SliceFuser& {
    if (!slot) slot = std::make_unique<SliceFuser>(s);
    return *slot;
  };
  try {
    const VolumeFusionOptions options = volume_options(s);
    const VolumeResult result = fuse_one({"", s.anatomical, s.functional, s.output}, s, options, registration, fuser);
    write_pictures(s, result);
    std::fprintf(stderr, "fused %s: %d %s slices (%d empty, not fused) on the grid of %s in %.1f s\n", s.output.c_str(),
                 result.fused.fused_slices, plane_name(options.plane), result.fused.empty_slices, s.anatomical.c_str(),
                 seconds_since(start));
  } catch (const Error& e) {
    throw std::runtime_error(with_flags(e.what()));
  }
}

void fuse_volume_batch(const FuseSettings& s) {
  const auto start = Clock::now();
  if (s.anatomical_dir.empty() || s.functional_dir.empty() || s.output_dir.empty()) {
    throw std::runtime_error("fuse: directory mode needs all of --anatomical-dir, --functional-dir and --output-dir");
  }
  if (!s.format.empty()) throw std::runtime_error("fuse: --format is for 2D images; volumes are written as .nii.gz");
  if (!s.slices_dir.empty() || !s.montage.empty() || !s.save_transform.empty() || !s.qc.empty()) {
    throw std::runtime_error("fuse: --slices-dir, --montage, --save-transform and --qc are for one pair of volumes");
  }
  const std::optional<RegistrationOptions> registration = registration_options(s);
  VolumeFusionOptions options;
  try {
    options = volume_options(s);
  } catch (const Error& e) {
    throw std::runtime_error(with_flags(e.what()));
  }
  const Pairing pairing = pair_volumes_by_name(s.anatomical_dir, s.functional_dir);
  prepare_output_dir(s);
  const std::size_t unpaired = report_unpaired(s, pairing, "volume", volume_stem);
  std::size_t fused = 0, failed = 0;

  std::unique_ptr<SliceFuser> slot;
  const auto fuser = [&]() -> const SliceFuser& {
    if (!slot) {
      try {
        slot = std::make_unique<SliceFuser>(s);
      } catch (const std::exception& e) {
        throw LoadError(e.what());
      }
    }
    return *slot;
  };
  for (std::size_t i = 0; i < pairing.pairs.size(); ++i) {
    const ImagePair& pair = pairing.pairs[i];
    const VolumeJob job{
        pair.name, pair.anatomical, pair.functional,
        (fs::path(s.output_dir) / (pair.name + (s.output_format == "dicom" ? "" : ".nii.gz"))).string()};
    std::error_code ec;
    if (!s.overwrite && fs::exists(fs::symlink_status(job.output, ec))) {
      std::fprintf(stderr, "failed: %s: %s\n", job.name.c_str(), existing_output_message(job.output).c_str());
      ++failed;
      continue;
    }
    std::fprintf(stderr, "volume %zu/%zu: %s\n", i + 1, pairing.pairs.size(), job.name.c_str());
    try {
      fuse_one(job, s, options, registration, fuser);
      ++fused;
    } catch (const LoadError&) {
      throw;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "failed: %s: %s\n", job.name.c_str(), with_flags(e.what()).c_str());
      ++failed;
    }
  }
  std::fprintf(stderr, "fused %zu, failed %zu, unpaired %zu in %.1f s\n", fused, failed, unpaired,
               seconds_since(start));
  if (failed > 0 || unpaired > 0) throw CLI::RuntimeError(1);
}

}  // namespace efcnet::cli
