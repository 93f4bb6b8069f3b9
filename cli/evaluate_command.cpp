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

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "commands.h"
#include "efcnet/evaluation.h"
#include "efcnet/image.h"
#include "efcnet/metrics.h"
#include "efcnet/progress.h"
#include "efcnet/runtime.h"
#include "efcnet/volume.h"
#include "io/output_text.h"
#include "metrics/metrics_output.h"

namespace efcnet::cli {
namespace {

using metrics::FusionMetrics;
using metrics::kMetricNames;
using Json = nlohmann::ordered_json;

// Below this many triples a progress bar is only shown on a terminal.
constexpr std::size_t kLongRun = 100;

struct EvaluateSettings {
  std::string anatomical, functional, fused;
  std::string anatomical_dir, functional_dir, fused_dir;
  std::string format;
  int threads = 0;
  std::int64_t max_image_pixels = kDefaultMaxImagePixels;
  // Volumes: how the inputs were prepared for fusion (as `efcnet fuse` was told).
  std::string frame, anatomical_window, functional_window, colormap, plane;
  bool allow_uneven_slices = false;

  bool single_mode() const { return !anatomical.empty() || !functional.empty() || !fused.empty(); }
  bool batch_mode() const { return !anatomical_dir.empty() || !functional_dir.empty() || !fused_dir.empty(); }
};

ImageReadOptions read_options(const EvaluateSettings& s) {
  ImageReadOptions options;
  options.max_pixels = s.max_image_pixels;
  return options;
}

// ---- output ----

void print_single(const FusionMetrics& m, const std::string& format) {
  if (format == "json") {
    std::printf("%s\n", json_text(metrics_json(m)).c_str());
    return;
  }
  for (std::size_t i = 0; i < kMetricNames.size(); ++i)
    std::printf("%-5s %14s\n", kMetricNames[i], table_cell(m[i]).c_str());
}

void print_batch(const std::vector<ScoredItem>& rows, const FusionMetrics& mean, const std::string& format) {
  if (format == "json") {
    Json files = Json::array();
    for (const ScoredItem& row : rows) files.push_back(metrics_json(row.metrics, row.name));
    Json document = Json::object();
    document["files"] = std::move(files);
    document["mean"] = metrics_json(mean);
    std::printf("%s\n", json_text(document).c_str());
    return;
  }
  if (format == "csv") {
    std::string header = "file";
    for (const char* name : kMetricNames) header += std::string(",") + name;
    std::printf("%s\n", header.c_str());
    auto print_row = [](const std::string& name, const FusionMetrics& m) {
      std::string line = csv_text_field(name);
      for (std::size_t i = 0; i < kMetricNames.size(); ++i) line += "," + number_text(m[i]);
      std::printf("%s\n", line.c_str());
    };
    for (const ScoredItem& row : rows) print_row(row.name, row.metrics);
    print_row("mean", mean);
    return;
  }
  std::size_t name_width = 4;  // "mean"
  for (const ScoredItem& row : rows) name_width = std::max(name_width, row.name.size());
  auto print_row = [&](const std::string& name, auto cell) {
    std::string line = name + std::string(name_width - name.size(), ' ');
    for (std::size_t i = 0; i < kMetricNames.size(); ++i) {
      const std::string text = cell(i);
      line += std::string(text.size() < 11 ? 11 - text.size() : 1, ' ') + text;
    }
    std::printf("%s\n", line.c_str());
  };
  print_row("file", [](std::size_t i) { return std::string(kMetricNames[i]); });
  for (const ScoredItem& row : rows) print_row(row.name, [&](std::size_t i) { return table_cell(row.metrics[i]); });
  print_row("mean", [&](std::size_t i) { return table_cell(mean[i]); });
}

std::string resolved_format(const std::string& requested, const char* not_terminal_default) {
  if (!requested.empty()) return requested;
  return ::isatty(::fileno(stdout)) == 1 ? "table" : not_terminal_default;
}

// ---- one triple ----

// A triple of volumes: the inputs prepared as `efcnet fuse` prepares them, each slice scored.
void evaluate_volumes(const EvaluateSettings& s) {
  VolumeFusionOptions options;
  try {
    if (!s.frame.empty()) options.read.frame = parse_frame(s.frame);
    if (!s.anatomical_window.empty()) options.anatomical_window = parse_window(s.anatomical_window);
    if (!s.functional_window.empty()) options.functional_window = parse_window(s.functional_window);
  } catch (const OptionError& e) {
    throw std::runtime_error(std::string("evaluate: ") + e.what());
  }
  if (!s.colormap.empty()) options.colormap = parse_colormap(s.colormap);
  if (!s.plane.empty()) options.plane = parse_plane(s.plane);
  options.read.allow_uneven_slices = s.allow_uneven_slices;
  options.read.option_name = [](std::string_view field) {
    return field == "allow_uneven_slices" ? std::string("--allow-uneven-slices") : "--" + std::string(field);
  };
  const VolumeEvaluation evaluation = evaluate_volume(s.anatomical, s.functional, s.fused, options);
  print_batch(evaluation.slices, evaluation.mean, resolved_format(s.format, "csv"));
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
  if (!s.frame.empty() || !s.anatomical_window.empty() || !s.functional_window.empty() || !s.colormap.empty() ||
      !s.plane.empty() || s.allow_uneven_slices) {
    throw std::runtime_error(
        "evaluate: --frame, the windows, --colormap, --plane and --allow-uneven-slices are for volumes");
  }
  if (s.format == "csv") throw std::runtime_error("evaluate: --format csv is for directory mode and volumes");
  print_single(evaluate_files(s.anatomical, s.functional, s.fused, read_options(s)), resolved_format(s.format, "json"));
}

// ---- three directories ----

void evaluate_batch(const EvaluateSettings& s) {
  if (s.anatomical_dir.empty() || s.functional_dir.empty() || s.fused_dir.empty())
    throw std::runtime_error(
        "evaluate: directory mode needs all of --anatomical-dir, --functional-dir and --fused-dir");
  const std::string format = resolved_format(s.format, "csv");
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
  if (!evaluation.scored.empty()) print_batch(evaluation.scored, evaluation.mean, format);
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
  cmd->add_option("--frame", settings->frame, "Volumes: the frame of a 4D input that was fused (N or mean)");
  cmd->add_option("--anatomical-window", settings->anatomical_window, "Volumes: the anatomical window LO:HI fuse used");
  cmd->add_option("--functional-window", settings->functional_window, "Volumes: the functional window LO:HI fuse used");
  cmd->add_option("--colormap", settings->colormap, "Volumes: the functional colormap fuse used (default hot-iron)")
      ->check(CLI::IsMember({"hot-iron", "pet", "hot-metal-blue", "pet-20-step", "grey"}));
  cmd->add_flag("--allow-uneven-slices", settings->allow_uneven_slices,
                "Volumes: an uneven DICOM series was fused with fuse's --allow-uneven-slices");
  cmd->add_option("--plane", settings->plane, "Volumes: the slices to score (default axial)")
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
