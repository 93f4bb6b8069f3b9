// `efcnet evaluate`: the twelve objective fusion metrics for one triple, or for every triple of
// three directories matched by file name, scored in parallel.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <opencv2/core.hpp>

#include "commands.h"
#include "efcnet/evaluation.h"
#include "efcnet/image.h"
#include "efcnet/metrics.h"
#include "efcnet/progress.h"
#include "efcnet/runtime.h"
#include "efcnet/volume.h"

namespace efcnet::cli {
namespace {

using metrics::FusionMetrics;
using metrics::kMetricNames;

// Below this many triples a progress bar is only shown on a terminal.
constexpr std::size_t kLongRun = 100;

struct EvaluateSettings {
  std::string anatomical, functional, fused;
  std::string anatomical_dir, functional_dir, fused_dir;
  std::string format;
  int threads = 0;
  std::int64_t max_image_pixels = kDefaultMaxImagePixels;
  // Volumes: how the inputs were prepared for fusion (as `efcnet fuse` was told).
  VolumeOptionTexts volume;

  bool single_mode() const { return !anatomical.empty() || !functional.empty() || !fused.empty(); }
  bool batch_mode() const { return !anatomical_dir.empty() || !functional_dir.empty() || !fused_dir.empty(); }
};

ImageReadOptions read_options(const EvaluateSettings& s) {
  ImageReadOptions options;
  options.max_pixels = s.max_image_pixels;
  return options;
}

// ---- output ----

ScoreFormat resolved_format(const std::string& requested, const std::string& not_terminal_default) {
  const std::string name = !requested.empty()                ? requested
                           : ::isatty(::fileno(stdout)) == 1 ? "table"
                                                             : not_terminal_default;
  return name == "json" ? ScoreFormat::json : name == "csv" ? ScoreFormat::csv : ScoreFormat::table;
}

// ---- one triple ----

// A triple of volumes: the inputs prepared as `efcnet fuse` prepares them, each slice scored.
void evaluate_volumes(const EvaluateSettings& s) {
  const VolumeFusionOptions options = parse_volume_options(s.volume, flags_named());
  const VolumeEvaluation evaluation = evaluate_volume(s.anatomical, s.functional, s.fused, options);
  std::fputs(scores_text(evaluation.slices, evaluation.mean, resolved_format(s.format, "csv")).c_str(), stdout);
}

void evaluate_single(const EvaluateSettings& s) {
  if (s.anatomical.empty() || s.functional.empty() || s.fused.empty())
    throw std::runtime_error("evaluate: a single triple needs all of --anatomical, --functional and --fused");
  if (is_volume_path(s.anatomical) || is_volume_path(s.functional) || is_volume_path(s.fused)) {
    if (!is_volume_path(s.anatomical) || !is_volume_path(s.functional) || !has_volume_extension(s.fused)) {
      throw std::runtime_error("evaluate: give three volumes (the fused one a .nii/.nii.gz) or three images");
    }
    evaluate_volumes(s);
    return;
  }
  if (s.volume.any()) {
    throw std::runtime_error(
        "evaluate: --frame, the windows, --colormap, --plane and --allow-uneven-slices are for volumes");
  }
  if (s.format == "csv") throw std::runtime_error("evaluate: --format csv is for directory mode and volumes");
  std::fputs(metrics_text(evaluate_files(s.anatomical, s.functional, s.fused, read_options(s)),
                          resolved_format(s.format, "json"))
                 .c_str(),
             stdout);
}

// ---- three directories ----

void evaluate_batch(const EvaluateSettings& s) {
  if (s.anatomical_dir.empty() || s.functional_dir.empty() || s.fused_dir.empty())
    throw std::runtime_error(
        "evaluate: directory mode needs all of --anatomical-dir, --functional-dir and --fused-dir");
  const ScoreFormat format = resolved_format(s.format, "csv");
  DirectoryEvaluationOptions options;
  options.threads = s.threads;
  options.read = read_options(s);
  // The scoring threads are the parallelism; OpenCV's own threads would only compete with them.
  if (thread_count(s.threads) > 1) cv::setNumThreads(1);
  std::optional<ProgressBar> progress;
  const DirectoryEvaluation evaluation =
      evaluate_dirs(s.anatomical_dir, s.functional_dir, s.fused_dir, options, [&](std::size_t, std::size_t total) {
        if (!progress && (total >= kLongRun || ::isatty(::fileno(stderr)) == 1)) progress.emplace(total);
        if (progress) progress->advance();
      });
  if (progress) progress->finish();
  for (const auto& [path, why] : evaluation.left_out)
    std::fprintf(stderr, "unpaired: %s (%s)\n", path.c_str(), why.c_str());
  if (evaluation.scored.empty() && evaluation.failed.empty()) throw std::runtime_error("evaluate: no triples to score");
  for (const auto& [name, why] : evaluation.failed) std::fprintf(stderr, "failed: %s: %s\n", name.c_str(), why.c_str());
  if (!evaluation.scored.empty()) std::fputs(scores_text(evaluation.scored, evaluation.mean, format).c_str(), stdout);
  if (!evaluation.failed.empty() || !evaluation.left_out.empty()) {
    std::fprintf(stderr, "scored %zu, failed %zu, unpaired %zu\n", evaluation.scored.size(), evaluation.failed.size(),
                 evaluation.left_out.size());
    throw CLI::RuntimeError(1);
  }
}

constexpr const char* kFooter = R"(Modes:
  one triple   --anatomical A --functional B --fused F [--format json|table]
  directories  --anatomical-dir DA --functional-dir DB --fused-dir DF [--format csv|json|table]
               Files match by name stem across the three directories (DA/x.png, DB/x.png and
               DF/x.tif form the triple "x"); only .png .jpg .jpeg .tif .tiff .bmp files count.
               Triples are scored in parallel (--threads, default all cores). Files without a
               partner, and triples that cannot be read or differ in size, are named on stderr and
               make the exit status 1; the others are still scored. CSV: a header
               file,EN,...,MSE, one row per triple, and a final row "mean"; a name holding a
               comma, quote or line break is quoted (RFC 4180), one starting with = + - @ gets a
               leading ' so that no spreadsheet runs it. JSON: bytes of a name that are not
               UTF-8 become U+FFFD.
  volumes      --anatomical A.nii.gz --functional F.nii.gz --fused O.nii.gz [--format csv|json|table]
               [--frame N|mean] [--anatomical-window LO:HI] [--functional-window LO:HI]
               [--colormap NAME] [--plane axial|coronal|sagittal]
               The inputs are prepared as `efcnet fuse` prepared them (give it the same options):
               the functional volume resampled onto the anatomical grid, both windowed, the
               functional one coloured; O must be on the anatomical grid. Each slice with content
               in either input is scored as a triple of images (rows <plane>_<k>, then "mean");
               slices empty in both are skipped, as fuse skips them.
  The default format is table on a terminal, otherwise json (one triple) or csv (directories, volumes).

Metrics and conventions: those of the Python evaluator published with CDDFuse (CVPR 2023), which
the field's tables use. Every image is read as 8-bit BGR, converted to grey in float and rounded.
)";

// The metrics, one line each (metrics.h's table), then the limits.
constexpr const char* kFooterEnd =
    R"(  Images must be at least 17x17, and at most --max-image-pixels (default 2^26, 8192x8192): a
  larger image, or one too large to decode in the memory available, is refused before decoding.
  A constant image makes SCD and CC NaN, and F equal to both inputs makes PSNR infinite, as in the
  evaluator (null in JSON, nan / inf in CSV).)";

}  // namespace

void add_evaluate_command(CLI::App& app) {
  auto settings = std::make_shared<EvaluateSettings>();
  CLI::App* cmd = app.add_subcommand(
      "evaluate", "Score fused images with the field's twelve objective metrics (one triple or three directories)");
  std::string metrics;
  for (std::size_t i = 0; i < kMetricNames.size(); ++i) {
    const std::string name = kMetricNames[i];
    metrics += "  " + name + std::string(6 - name.size(), ' ') + metrics::kMetricMeanings[i] + " (" +
               (metrics::kMetricBetter[i] == metrics::Better::higher ? "higher" : "lower") + " is better)\n";
  }
  cmd->footer(std::string(kFooter) + metrics + kFooterEnd);
  cmd->add_option("--anatomical", settings->anatomical, "Anatomical image A (MRI, CT, ...)");
  cmd->add_option("--functional", settings->functional, "Functional image B (SPECT, PET, ...)");
  cmd->add_option("--fused", settings->fused, "Fused image F");
  cmd->add_option("--anatomical-dir", settings->anatomical_dir, "Directory of anatomical images");
  cmd->add_option("--functional-dir", settings->functional_dir, "Directory of functional images, same names");
  cmd->add_option("--fused-dir", settings->fused_dir, "Directory of fused images, same names");
  cmd->add_option("--format", settings->format, "csv (directories only), json or table")
      ->check(CLI::IsMember({"csv", "json", "table"}));
  cmd->add_option("--threads", settings->threads, "Triples scored at once (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  add_max_image_pixels_option(cmd, settings->max_image_pixels);
  cmd->add_option("--frame", settings->volume.frame, "Volumes: the frame of a 4D input that was fused (N or mean)");
  cmd->add_option("--anatomical-window", settings->volume.anatomical_window,
                  "Volumes: the anatomical window LO:HI fuse used");
  cmd->add_option("--functional-window", settings->volume.functional_window,
                  "Volumes: the functional window LO:HI fuse used");
  cmd->add_option("--colormap", settings->volume.colormap,
                  "Volumes: the functional colormap fuse used (default hot-iron)")
      ->check(CLI::IsMember({"hot-iron", "pet", "hot-metal-blue", "pet-20-step", "grey"}));
  cmd->add_flag("--allow-uneven-slices", settings->volume.allow_uneven_slices,
                "Volumes: an uneven DICOM series was fused with fuse's --allow-uneven-slices");
  cmd->add_option("--plane", settings->volume.plane, "Volumes: the slices to score (default axial)")
      ->check(CLI::IsMember({"axial", "coronal", "sagittal"}));

  cmd->callback([settings] {
    // The metrics allocate and free image-sized buffers all the time. By default glibc maps large
    // blocks afresh and hands freed memory back, and the page faults of refilling them cost a
    // quarter of a short run: keep large blocks on the heap and the heap's pages for reuse.
    keep_freed_memory_for_reuse(256 << 20);
    if (settings->single_mode() == settings->batch_mode()) {
      throw std::runtime_error(
          "evaluate: give either --anatomical/--functional/--fused or "
          "--anatomical-dir/--functional-dir/--fused-dir (see efcnet evaluate --help)");
    }
    if (settings->single_mode()) {
      evaluate_single(*settings);
    } else {
      evaluate_batch(*settings);
    }
  });
}

}  // namespace efcnet::cli
