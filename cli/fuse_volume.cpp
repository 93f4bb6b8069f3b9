// `efcnet fuse` on volumes: parses the command line into FuseVolumeOptions, calls
// fuse_volume_files / fuse_volume_dirs (volume_fusion.h) and prints what they report.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "bench/bench_support.h"
#include "commands.h"
#include "efcnet/files.h"
#include "efcnet/models.h"
#include "efcnet/progress.h"
#include "efcnet/registration.h"
#include "efcnet/volume.h"
#include "efcnet/volume_fusion.h"
#include "fuse_settings.h"

namespace efcnet::cli {
namespace {

FuseVolumeOptions volume_options(const FuseSettings& s) {
  FuseVolumeOptions options;
  options.method = s.method;
  if (s.method == "efcnet") {
    options.fuser = fuser_options(s);
    options.model_name = resolve_model(s.model).name;
  }
  options.fuser.device = s.device;
  options.volume = parse_volume_options(s.volume, flags_named());
  options.transform_file = s.transform;
  if (!s.register_kind.empty()) options.registration = parse_registration_kind(s.register_kind);
  options.threads = s.threads;
  options.output_format = s.output_format == "dicom" ? VolumeOutputFormat::dicom : VolumeOutputFormat::nifti;
  options.overwrite = s.overwrite;
  options.slices_dir = s.slices_dir;
  options.montage = s.montage;
  options.save_transform = s.save_transform;
  options.qc = s.qc;
  options.option_name = flags_named({{"registration", "--register"}});
  return options;
}

// Prints the library's events: registration levels and results, a progress bar over each pair's
// slices, notes and failures.
class EventPrinter {
 public:
  explicit EventPrinter(const FuseVolumeOptions& options) : options_(options) {}
  void operator()(const VolumeFusionEvent& event) {
    using Kind = VolumeFusionEvent::Kind;
    switch (event.kind) {
      case Kind::pair_started:
        std::fprintf(stderr, "volume %zu/%zu: %s\n", event.index + 1, event.count, event.pair.c_str());
        break;
      case Kind::registering:
        std::fprintf(stderr, "registering: level %d/%d (Mattes MI %.4f)\n", event.registration.level + 1,
                     event.registration.levels, event.registration.metric);
        break;
      case Kind::registered: {
        const RegistrationResult& r = event.registration_result;
        std::fprintf(stderr, "registered %s (%s): Mattes MI %.4f before, %.4f after, %d iterations, %.1f s\n",
                     event.message.c_str(), registration_kind_name(options_.registration), r.metric_before,
                     r.metric_after, r.iterations, event.seconds);
        break;
      }
      case Kind::slice_done:
        if (!bar_) bar_.emplace(event.count);
        bar_->advance();
        if (event.index == event.count) bar_.reset();
        break;
      case Kind::note: std::fprintf(stderr, "%s\n", event.message.c_str()); break;
      case Kind::pair_failed:
        bar_.reset();
        std::fprintf(stderr, "failed: %s: %s\n", event.pair.c_str(),
                     event.existing_output.empty() ? event.message.c_str()
                                                   : existing_output_message(event.existing_output).c_str());
        break;
    }
  }

 private:
  const FuseVolumeOptions& options_;
  std::optional<ProgressBar> bar_;
};

}  // namespace

bool volume_mode(const FuseSettings& s) {
  try {
    return s.single_mode() ? paths_name_volumes(s.anatomical, s.functional)
                           : directories_hold_volumes(s.anatomical_dir, s.functional_dir);
  } catch (const VolumeError& e) {
    throw std::runtime_error(std::string("fuse: ") + e.what());
  }
}

void fuse_volume_single(const FuseSettings& s) {
  const auto start = BenchClock::now();
  if (s.anatomical.empty() || s.functional.empty() || s.output.empty()) {
    throw std::runtime_error("fuse: a single pair needs all of --anatomical, --functional and --output");
  }
  if (!s.format.empty()) throw std::runtime_error("fuse: --format is for --output-dir of 2D images");
  try {
    const FuseVolumeOptions options = volume_options(s);
    EventPrinter printer(options);
    const VolumeFusionSummary summary =
        fuse_volume_files(s.anatomical, s.functional, s.output, options, std::ref(printer));
    std::fprintf(stderr, "fused %s: %d %s slices (%d empty, not fused) on the grid of %s in %.1f s\n", s.output.c_str(),
                 summary.fused_slices, plane_name(options.volume.plane), summary.empty_slices, s.anatomical.c_str(),
                 seconds_since(start));
  } catch (const Error& e) {
    throw std::runtime_error(error_line(e));
  }
}

void fuse_volume_batch(const FuseSettings& s) {
  const auto start = BenchClock::now();
  if (s.anatomical_dir.empty() || s.functional_dir.empty() || s.output_dir.empty()) {
    throw std::runtime_error("fuse: directory mode needs all of --anatomical-dir, --functional-dir and --output-dir");
  }
  if (!s.format.empty()) throw std::runtime_error("fuse: --format is for 2D images; volumes are written as .nii.gz");
  VolumeBatchSummary summary;
  try {
    const FuseVolumeOptions options = volume_options(s);
    EventPrinter printer(options);
    summary = fuse_volume_dirs(s.anatomical_dir, s.functional_dir, s.output_dir, options, std::ref(printer));
  } catch (const Error& e) {
    throw std::runtime_error(error_line(e));
  }
  const std::size_t unpaired = report_unpaired(s, summary.pairing, "volume", volume_stem);
  std::fprintf(stderr, "fused %zu, failed %zu, unpaired %zu in %.1f s\n", summary.fused, summary.failed, unpaired,
               seconds_since(start));
  if (summary.failed > 0 || unpaired > 0) throw CLI::RuntimeError(1);
}

}  // namespace efcnet::cli
