// fuse_volume_files and fuse_volume_dirs (volume_fusion.h): `efcnet fuse` on volumes, as a library
// call. Every refusal that needs no voxel comes before any voxel is read or a network loaded.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "efcnet/registration.h"
#include "efcnet/version.h"
#include "efcnet/volume.h"
#include "efcnet/volume_dicom.h"
#include "efcnet/volume_fusion.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string option(const FuseVolumeOptions& options, std::string_view field) {
  return option_name(options.option_name, field);
}

void notify(const VolumeFusionCallback& callback, const VolumeFusionEvent& event) {
  if (callback) callback(event);
}

VolumeFusionEvent event_of(VolumeFusionEvent::Kind kind, const std::string& pair) {
  VolumeFusionEvent event;
  event.kind = kind;
  event.pair = pair;
  return event;
}

void refuse_existing(const std::string& path, bool overwrite) {
  std::error_code ec;
  if (!overwrite && fs::exists(fs::symlink_status(path, ec))) throw OutputExistsError(path);
}

// The header checks that can refuse a pair before anything is read or loaded.
void check_header(const std::string& path, const VolumeInfo& info, const FuseVolumeOptions& options) {
  const FrameChoice& frame = options.volume.read.frame;
  if (info.components != 1) {
    throw VolumeError(path + ": holds " + std::to_string(info.components) +
                      " values per voxel (colour?); a volume of intensities is needed");
  }
  if (info.dimensions == 4 && info.frames > 1 && frame.kind == FrameChoice::Kind::none) {
    const std::string name = option(options, "frame");
    throw VolumeError(path + ": is 4D with " + std::to_string(info.frames) + " frames; choose one with " + name +
                      " N (0.." + std::to_string(info.frames - 1) + ") or their mean with " + name + " mean");
  }
  if (info.dimensions == 4 && info.frames > 1 && frame.kind == FrameChoice::Kind::index && frame.index >= info.frames) {
    throw VolumeError(path + ": has " + std::to_string(info.frames) + " frames, so no frame " +
                      std::to_string(frame.index) + " (" + option(options, "frame") + " counts from 0)");
  }
}

// One 2D fusion per slice: the network (loaded on first use, once per call), or a baseline.
class SliceFuser {
 public:
  explicit SliceFuser(const FuseVolumeOptions& options) : options_(options) {}
  FusedVolume fuse(const PreparedVolumes& volumes, const SliceProgress& progress) {
    if (const auto method = baseline_method_named(options_.method)) {
      return fuse_prepared(
          volumes, [method](const cv::Mat& a, const cv::Mat& f) { return fuse_baseline(a, f, *method); }, progress);
    }
    load();
    return fuse_volume(*fuser_, volumes, progress);
  }
  // The networks, loaded now (a batch stops when they cannot be).
  void load() {
    if (fuser_ || baseline_method_named(options_.method)) return;
    try {
      fuser_ = std::make_unique<const Fuser>(options_.fuser);
    } catch (...) {
      load_failed_ = true;
      throw;
    }
  }
  bool load_failed() const { return load_failed_; }

 private:
  const FuseVolumeOptions& options_;
  std::unique_ptr<const Fuser> fuser_;
  bool load_failed_ = false;
};

std::string precision_text(Precision precision) { return precision == Precision::bfloat16 ? "bf16" : "float32"; }

std::string frame_text(const FrameChoice& frame) {
  if (frame.kind == FrameChoice::Kind::mean) return "mean";
  return frame.kind == FrameChoice::Kind::index ? std::to_string(frame.index) : "";
}

// What a DICOM series says of its making: software, model and options (file names, not paths).
DicomOutputOptions dicom_options(const std::string& anatomical, const std::string& functional,
                                 const FuseVolumeOptions& options, const PreparedVolumes& prepared) {
  const auto name = [](const std::string& path) { return fs::path(path).filename().string(); };
  const auto window = [](const Window& w) {
    char text[64];
    std::snprintf(text, sizeof text, "%g:%g", w.low, w.high);
    return std::string(text);
  };
  std::string model = options.method, network;
  if (!baseline_method_named(options.method)) {
    const std::string& named = options.model_name;
    model = named.empty() ? name(options.fuser.weights) : "model " + named;  // Series Description: 64 characters
    network = ", " + (named.empty() ? "" : model + ", ") + "weights " + name(options.fuser.weights) +
              ", SEEM weights " + name(options.fuser.seem_weights) + ", precision " +
              precision_text(options.fuser.inference.precision);
  }
  const std::string colormap = colormap_name(options.volume.colormap);
  const std::string frame = frame_text(options.volume.read.frame);
  const bool registered = options.registration != RegistrationKind::none;
  DicomOutputOptions dicom;
  dicom.anatomical = anatomical;
  dicom.software_versions = kVersionText;
  dicom.series_description = std::string(kVersionText) + " fusion, " + model + ", " + colormap;
  dicom.derivation_description =
      std::string(kVersionText) + " fuse: method " + options.method + network + "; anatomical " + name(anatomical) +
      ", window " + window(prepared.anatomical_window) + "; functional " + name(functional) + ", window " +
      window(prepared.functional_window) + ", colormap " + colormap + "; plane " + plane_name(options.volume.plane) +
      (frame.empty() ? "" : "; frame " + frame) +
      (registered ? std::string("; registered ") + registration_kind_name(options.registration) : "") +
      (options.transform_file.empty() ? "" : "; transform " + name(options.transform_file)) +
      (options.volume.read.allow_uneven_slices ? "; uneven slices allowed" : "");
  return dicom;
}

RegistrationOptions registration_options(const FuseVolumeOptions& options) {
  RegistrationOptions registration;
  registration.kind = options.registration;
  // Smoothing and shrinking threads; the metric runs on one, so the transform does not depend on them.
  registration.threads =
      options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return registration;
}

// The options that do not go together, and the transform file read once before any pair.
VolumeFusionOptions checked_volume_options(const FuseVolumeOptions& options) {
  const bool registering = options.registration != RegistrationKind::none;
  if (!options.save_transform.empty() && !registering) {
    throw OptionError(option(options, "save_transform") + " saves what " + option(options, "registration") +
                      " estimates");
  }
  if (!options.qc.empty() && !registering && options.transform_file.empty()) {
    throw OptionError(option(options, "qc") + " shows the alignment of " + option(options, "registration") + " or " +
                      option(options, "transform"));
  }
  if (registering && !options.transform_file.empty()) {
    throw OptionError("give " + option(options, "registration") + " or " + option(options, "transform") + ", not both");
  }
  if (!options.method.empty() && options.method != "efcnet" && !baseline_method_named(options.method)) {
    throw OptionError("no fusion method \"" + options.method + "\"");
  }
  VolumeFusionOptions volume = options.volume;
  if (!volume.read.option_name) volume.read.option_name = options.option_name;
  if (!options.transform_file.empty()) volume.functional_transform = read_transform(options.transform_file);
  return volume;
}

void check_output_path(const std::string& output, const FuseVolumeOptions& options) {
  const bool dicom = options.output_format == VolumeOutputFormat::dicom;
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(output, ec);
  if (dicom && has_volume_extension(output)) {
    throw OptionError(output + ": " + option(options, "output_format") +
                      " dicom writes a directory; give a name without .nii/.nii.gz");
  }
  if (dicom && fs::exists(status) && !fs::is_directory(status)) {
    throw OptionError(output + ": exists and is not a directory; " + option(options, "output_format") +
                      " dicom writes a directory");
  }
  if (!dicom && !has_volume_extension(output)) {
    throw OptionError(output + ": a fused volume is written as .nii or .nii.gz");
  }
  const fs::path dir = fs::path(output).has_parent_path() ? fs::path(output).parent_path() : ".";
  if (!fs::is_directory(dir, ec)) throw IoError(output + ": directory " + dir.string() + " does not exist");
  refuse_existing(output, options.overwrite);
  if (dicom) check_dicom_output(output, options.overwrite ? WriteMode::replace : WriteMode::no_clobber);
}

// slices_dir's file for slice k.
std::string slice_file(const FuseVolumeOptions& options, const SliceLayout& layout, int k) {
  const int digits = static_cast<int>(std::to_string(std::max(layout.slices - 1, 0)).size());
  char name[64];
  std::snprintf(name, sizeof name, "%s_%0*d.png", plane_name(options.volume.plane), digits, k);
  return (fs::path(options.slices_dir) / name).string();
}

// The pictures and the transform file, before any work: an existing montage, or a slices directory
// already holding <plane>_<k>.png slices (an earlier run's, whose count need not match), is
// refused without overwrite.
void check_extra_outputs(const FuseVolumeOptions& options) {
  if (!options.montage.empty()) {
    if (fs::path(options.montage).extension() != ".png")
      throw OptionError(options.montage + ": " + option(options, "montage") + " writes a .png picture");
    refuse_existing(options.montage, options.overwrite);
  }
  if (!options.save_transform.empty()) {
    if (!has_transform_extension(options.save_transform)) {
      throw OptionError(options.save_transform + ": " + option(options, "save_transform") +
                        " writes .tfm, .txt, .mat or .h5");
    }
    refuse_existing(options.save_transform, options.overwrite);
  }
  if (!options.qc.empty()) {
    if (fs::path(options.qc).extension() != ".png")
      throw OptionError(options.qc + ": " + option(options, "qc") + " writes a .png picture");
    refuse_existing(options.qc, options.overwrite);
  }
  std::error_code ec;
  if (options.slices_dir.empty() || options.overwrite || !fs::is_directory(options.slices_dir, ec)) return;
  const std::regex slice_name(std::string(plane_name(options.volume.plane)) + "_[0-9]+\\.png");
  std::vector<std::string> slices;
  for (const auto& entry : fs::directory_iterator(options.slices_dir, ec)) {
    if (std::regex_match(entry.path().filename().string(), slice_name)) slices.push_back(entry.path().string());
  }
  if (!slices.empty()) throw OutputExistsError(*std::min_element(slices.begin(), slices.end()));
}

struct PairResult {
  PreparedVolumes prepared;
  FusedVolume fused;
  std::optional<LinearTransform> transform;
  cv::Mat qc;
};

// Registers (when asked), prepares and fuses two volumes read; names are for messages.
PairResult fuse_read_volumes(Volume anatomical, Volume functional, const std::string& anatomical_name,
                             const std::string& functional_name, const FuseVolumeOptions& options,
                             VolumeFusionOptions volume_options, SliceFuser& slice_fuser, const std::string& pair,
                             const VolumeFusionCallback& callback) {
  PairResult result;
  if (options.registration != RegistrationKind::none) {
    const auto start = Clock::now();
    int level = -1;
    const RegistrationResult registered =
        estimate_transform(anatomical, functional, registration_options(options), anatomical_name, functional_name,
                           [&](const RegistrationProgress& p) {
                             if (p.level == level) return;
                             level = p.level;
                             VolumeFusionEvent event = event_of(VolumeFusionEvent::Kind::registering, pair);
                             event.registration = p;
                             notify(callback, event);
                           });
    VolumeFusionEvent event = event_of(VolumeFusionEvent::Kind::registered, pair);
    event.registration_result = registered;
    event.message = functional_name + " to " + anatomical_name;
    event.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    notify(callback, event);
    volume_options.functional_transform = registered.transform;
  }
  result.transform = volume_options.functional_transform;
  if (!options.qc.empty()) {
    result.qc = make_registration_qc(anatomical, functional, LinearTransform{}, *volume_options.functional_transform);
  }
  result.prepared = prepare_volumes(anatomical, functional, volume_options, anatomical_name, functional_name);
  anatomical = Volume{};  // only the prepared forms are needed from here on
  functional = Volume{};
  try {
    result.fused = slice_fuser.fuse(result.prepared, [&](int done, int total) {
      VolumeFusionEvent event = event_of(VolumeFusionEvent::Kind::slice_done, pair);
      event.index = static_cast<std::size_t>(done);
      event.count = static_cast<std::size_t>(total);
      notify(callback, event);
    });
  } catch (const std::exception& e) {
    throw FusionError(anatomical_name + " + " + functional_name + ": " + e.what());
  }
  return result;
}

// Reads, prepares, fuses and writes one pair. Every refusal happens before the output is written.
PairResult fuse_pair_files(const std::string& anatomical_path, const std::string& functional_path,
                           const std::string& output, const FuseVolumeOptions& options,
                           VolumeFusionOptions volume_options, SliceFuser& slice_fuser, const std::string& pair,
                           const VolumeFusionCallback& callback) {
  const VolumeInfo a = read_volume_info(anatomical_path, volume_options.read),
                   f = read_volume_info(functional_path, volume_options.read);
  check_header(anatomical_path, a, options);
  check_header(functional_path, f, options);
  check_slice_size(a.geometry, volume_options.plane, anatomical_path, options.option_name);
  const bool colour = volume_options.colormap != Colormap::grey;
  const bool cpu = options.fuser.device == "cpu";
  if (const std::string shortfall = volume_memory_shortfall(a, f, volume_options.plane, colour, cpu);
      !shortfall.empty()) {
    throw VolumeError(anatomical_path + " + " + functional_path + ": " + shortfall);
  }
  slice_fuser.load();
  PairResult result = fuse_read_volumes(
      read_volume(anatomical_path, volume_options.read), read_volume(functional_path, volume_options.read),
      anatomical_path, functional_path, options, std::move(volume_options), slice_fuser, pair, callback);

  const WriteMode mode = options.overwrite ? WriteMode::replace : WriteMode::no_clobber;
  if (options.output_format == VolumeOutputFormat::nifti) {
    write_volume_atomic(output, result.fused.fused, mode);
  } else {
    const DicomSeriesWritten written = write_volume_dicom_atomic(
        output, result.fused.fused, dicom_options(anatomical_path, functional_path, options, result.prepared), mode);
    if (!written.patient_from_anatomical) {
      VolumeFusionEvent event = event_of(VolumeFusionEvent::Kind::note, pair);
      event.message =
          output + ": the anatomical volume is not DICOM: a new study (generated UIDs), patient fields empty";
      notify(callback, event);
    }
  }
  return result;
}

void write_extra_outputs(const FuseVolumeOptions& options, const PairResult& result) {
  const WriteMode mode = options.overwrite ? WriteMode::replace : WriteMode::no_clobber;
  if (!options.slices_dir.empty()) {
    std::error_code ec;
    fs::create_directories(options.slices_dir, ec);
    if (!fs::is_directory(options.slices_dir, ec)) {
      throw IoError(options.slices_dir + ": cannot create the " + option(options, "slices_dir") + " directory");
    }
    const SliceLayout& layout = result.prepared.layout;
    for (int k = 0; k < layout.slices; ++k) {
      write_image_atomic(slice_file(options, layout, k), extract_slice(result.fused.fused, layout, k), mode);
    }
  }
  if (!options.montage.empty()) {
    write_image_atomic(options.montage, make_montage(result.prepared, result.fused.fused), mode);
  }
  if (!options.save_transform.empty()) write_transform_atomic(options.save_transform, *result.transform, mode);
  if (!options.qc.empty()) write_image_atomic(options.qc, result.qc, mode);
}

}  // namespace

FusedVolume fuse_volumes(const Volume& anatomical, const Volume& functional, const FuseVolumeOptions& options,
                         const VolumeFusionCallback& callback) {
  if (!options.slices_dir.empty() || !options.montage.empty() || !options.save_transform.empty() ||
      !options.qc.empty()) {
    throw OptionError(option(options, "slices_dir") + ", " + option(options, "montage") + ", " +
                      option(options, "save_transform") + " and " + option(options, "qc") + " are written by " +
                      "fuse_volume_files");
  }
  for (const auto* volume : {&anatomical, &functional}) {
    const std::string name = volume == &anatomical ? "anatomical" : "functional";
    if (const std::string problem = geometry_problem(volume->geometry); !problem.empty())
      throw VolumeError(name + " volume: " + problem);
    if (static_cast<int64_t>(volume->voxels.size()) != volume->geometry.voxel_count()) {
      throw VolumeError(name + " volume: " + std::to_string(volume->voxels.size()) + " voxels for a " +
                        volume->geometry.text() + " grid");
    }
  }
  const VolumeFusionOptions volume_options = checked_volume_options(options);
  check_slice_size(anatomical.geometry, volume_options.plane, "anatomical volume", options.option_name);
  SliceFuser slice_fuser(options);
  return fuse_read_volumes(anatomical, functional, "anatomical volume", "functional volume", options, volume_options,
                           slice_fuser, "", callback)
      .fused;
}

VolumeFusionSummary fuse_volume_files(const std::string& anatomical, const std::string& functional,
                                      const std::string& output, const FuseVolumeOptions& options,
                                      const VolumeFusionCallback& callback) {
  check_output_path(output, options);
  check_extra_outputs(options);
  const VolumeFusionOptions volume_options = checked_volume_options(options);
  SliceFuser slice_fuser(options);
  const PairResult result =
      fuse_pair_files(anatomical, functional, output, options, volume_options, slice_fuser, "", callback);
  write_extra_outputs(options, result);
  VolumeFusionSummary summary;
  summary.fused_slices = result.fused.fused_slices;
  summary.empty_slices = result.fused.empty_slices;
  summary.transform = result.transform;
  return summary;
}

VolumeBatchSummary fuse_volume_dirs(const std::string& anatomical_dir, const std::string& functional_dir,
                                    const std::string& output_dir, const FuseVolumeOptions& options,
                                    const VolumeFusionCallback& callback) {
  if (!options.slices_dir.empty() || !options.montage.empty() || !options.save_transform.empty() ||
      !options.qc.empty()) {
    throw OptionError(option(options, "slices_dir") + ", " + option(options, "montage") + ", " +
                      option(options, "save_transform") + " and " + option(options, "qc") +
                      " are for one pair of volumes");
  }
  const VolumeFusionOptions volume_options = checked_volume_options(options);
  VolumeBatchSummary summary;
  summary.pairing = pair_volumes_by_name(anatomical_dir, functional_dir);
  prepare_output_dir(output_dir, {anatomical_dir, functional_dir}, option(options, "output_dir"));
  std::error_code ec;

  SliceFuser slice_fuser(options);
  const std::vector<ImagePair>& pairs = summary.pairing.pairs;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const ImagePair& pair = pairs[i];
    const std::string output =
        (fs::path(output_dir) / (pair.name + (options.output_format == VolumeOutputFormat::dicom ? "" : ".nii.gz")))
            .string();
    VolumeFusionEvent failed = event_of(VolumeFusionEvent::Kind::pair_failed, pair.name);
    failed.index = i;
    failed.count = pairs.size();
    if (!options.overwrite && fs::exists(fs::symlink_status(output, ec))) {
      failed.message = OutputExistsError(output).what();
      failed.existing_output = output;
      notify(callback, failed);
      ++summary.failed;
      continue;
    }
    VolumeFusionEvent started = event_of(VolumeFusionEvent::Kind::pair_started, pair.name);
    started.index = i;
    started.count = pairs.size();
    notify(callback, started);
    try {
      fuse_pair_files(pair.anatomical, pair.functional, output, options, volume_options, slice_fuser, pair.name,
                      callback);
      ++summary.fused;
    } catch (const OutputExistsError& e) {
      failed.message = e.what();
      failed.existing_output = e.path();
      notify(callback, failed);
      ++summary.failed;
    } catch (const std::exception& e) {
      if (slice_fuser.load_failed()) throw;  // no pair would fuse
      failed.message = e.what();
      notify(callback, failed);
      ++summary.failed;
    }
  }
  return summary;
}

}  // namespace efcnet
