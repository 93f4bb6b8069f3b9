// `efcnet compare`: efcnet, the classical baselines and other methods' results scored on one
// dataset, reported as a web page (compare.h runs the comparison, compare_report.h writes it).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.h"
#include "compare.h"
#include "compare_report.h"
#include "efcnet/models.h"
#include "efcnet/pipeline.h"
#include "efcnet/runtime.h"

namespace efcnet::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct CompareSettings {
  std::string anatomical_dir, functional_dir, output_dir;
  std::vector<std::string> methods;  // NAME=DIR
  ModelChoice model;
  bool no_efcnet = false, no_baselines = false, overwrite = false;
  int threads = 0;
  std::int64_t max_image_pixels = kDefaultMaxImagePixels;
};

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &utc);
  return text;
}

MethodSpec results_method(const std::string& argument) {
  const auto equals = argument.find('=');
  if (equals == std::string::npos) throw std::runtime_error("--method " + argument + ": expected NAME=DIR");
  const std::string name = argument.substr(0, equals), dir = argument.substr(equals + 1);
  if (const std::string problem = method_name_problem(name); !problem.empty()) {
    throw std::runtime_error("--method " + argument + ": " + problem);
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": not a directory (given by --method " + name + ")");
  return {name, "results in " + dir, nullptr, dir};
}

// Whether `inner` is `outer` or lies below it, links and ".." resolved (`outer` need not exist).
bool is_within(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  auto resolved = [&ec](const fs::path& path) {
    const fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
    return p.has_filename() ? p : p.parent_path();  // "dir/" as "dir"
  };
  const fs::path in = resolved(inner), out = resolved(outer);
  return std::mismatch(out.begin(), out.end(), in.begin(), in.end()).first == out.end();
}

// The output directory is written into before the inputs are all read: none may lie inside it.
void refuse_output_among_inputs(const CompareSettings& s, const std::vector<MethodSpec>& methods) {
  std::vector<std::string> inputs{s.anatomical_dir, s.functional_dir};
  for (const MethodSpec& method : methods) {
    if (!method.results_dir.empty()) inputs.push_back(method.results_dir);
  }
  std::error_code ec;
  for (const std::string& input : inputs) {
    if (fs::equivalent(s.output_dir, input, ec)) {
      throw std::runtime_error(s.output_dir + ": is an input directory; choose another --output-dir");
    }
    if (is_within(input, s.output_dir)) {
      throw std::runtime_error(input + ": is inside --output-dir " + s.output_dir +
                               ", which compare writes into; choose another --output-dir");
    }
  }
}

void compare(const CompareSettings& s) {
  const auto start = Clock::now();
  ReportContext context;
  context.date = utc_now();
  context.machine = cpu_model();
  context.threads = thread_count(s.threads);

  // Everything the command line can get wrong is refused before the weights are loaded.
  std::vector<std::string> names;
  if (!s.no_efcnet) names.push_back("efcnet");
  if (!s.no_baselines) names.insert(names.end(), {"y-average", "y-max"});
  std::vector<MethodSpec> results;
  for (const std::string& argument : s.methods) {
    MethodSpec method = results_method(argument);
    if (std::find(names.begin(), names.end(), method.name) != names.end()) {
      throw std::runtime_error("--method " + argument + ": " + method.name + " is already a method of this comparison");
    }
    names.push_back(method.name);
    results.push_back(std::move(method));
  }
  if (names.empty()) throw std::runtime_error("compare: no methods (--no-efcnet and --no-baselines, and no --method)");
  if (s.no_efcnet && (!s.model.model.empty() || !s.model.weights.empty() || !s.model.seem_weights.empty())) {
    throw std::runtime_error(
        "compare: --model, --weights and --seem-weights are for efcnet, which --no-efcnet leaves out");
  }
  refuse_output_among_inputs(s, results);
  const fs::path report = fs::path(s.output_dir) / "report.html";
  for (const char* file : {"report.html", "scores.csv", "scores.json"}) {
    const fs::path path = fs::path(s.output_dir) / file;
    std::error_code ec;
    if (!s.overwrite && fs::exists(fs::symlink_status(path, ec))) {
      throw std::runtime_error(path.string() + ": already exists (pass --overwrite to replace the report)");
    }
  }

  std::vector<MethodSpec> methods;
  if (!s.no_efcnet) {
    FuserOptions options;
    const Model model = resolve_model(s.model);
    options.weights = context.weights = model.network;
    options.seem_weights = context.seem_weights = model.seem;
    use_fusion_runtime(s.threads, options.device);
    auto fuser = std::make_shared<const Fuser>(options);
    methods.push_back({"efcnet", "the EFCNet network, fused here",
                       [fuser](const cv::Mat& a, const cv::Mat& f) { return fuser->fuse_pair(a, f); }, ""});
  }
  if (!s.no_baselines) {
    methods.push_back(
        {"y-average", "(Y + anatomical) / 2, rounded: a classical baseline, fused here",
         [](const cv::Mat& a, const cv::Mat& f) { return fuse_baseline(a, f, BaselineMethod::y_average); }, ""});
    methods.push_back({"y-max", "max(Y, anatomical): a classical baseline, fused here",
                       [](const cv::Mat& a, const cv::Mat& f) { return fuse_baseline(a, f, BaselineMethod::y_max); },
                       ""});
  }
  methods.insert(methods.end(), results.begin(), results.end());

  ImageReadOptions read_options;
  read_options.max_pixels = s.max_image_pixels;
  const Comparison comparison = run_comparison(s.anatomical_dir, s.functional_dir, methods, s.output_dir, read_options);
  if (comparison.pairs.empty()) {
    throw std::runtime_error("compare: no pairs in " + s.anatomical_dir + " and " + s.functional_dir);
  }
  context.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  write_report(s.output_dir, comparison, context);

  const std::size_t problems = comparison.problem_count();
  std::fprintf(stderr, "compared %zu methods on %zu pairs (%.2f s per pair), %zu problems: %s\n", methods.size(),
               comparison.pairs.size(), context.seconds / static_cast<double>(comparison.pairs.size()), problems,
               report.c_str());
  if (problems > 0) throw CLI::RuntimeError(1);
}

constexpr const char* kFooter = R"(Methods, in the report's order:
  efcnet      the network, fused here (--model, or --weights with --seem-weights; --no-efcnet leaves it out)
  y-average   (Y + anatomical) / 2 and
  y-max       max(Y, anatomical), the classical baselines, fused here (--no-baselines leaves them out)
  NAME=DIR    any number of --method options: another method's existing results, DIR/<stem>.<ext>
              for each pair. NAME: letters, digits, '.', '_', '-' (not "anatomical"/"functional").
  Pairs: the stems shared by --anatomical-dir and --functional-dir, the rule of `efcnet fuse`: the
  stem must match exactly, letter case included, extensions may differ; only .png .jpg .jpeg .tif
  .tiff .bmp files count; hidden files and subdirectories are ignored. A results directory pairs
  the same way; its images that belong to no pair are named ("ignored: ...") and left out.

Scoring: every result is scored with the twelve metrics of `efcnet evaluate` (see its --help), read
from the file as written, so the report's means equal what `efcnet evaluate --fused-dir` gives for
the same files. A method's means are over the pairs it has a score for ("pairs scored").

Written into --output-dir (created if missing), every file atomically (temp file + rename):
  report.html   one self-contained page (no network access): the dataset, the weights, the machine
                (CPU model), the date and the seconds per pair of the whole run; the means of
                each method with each metric's direction (higher or lower is better), the best
                marked and what each metric favours; a bar chart per metric; and every pair:
                anatomical, functional and each method's fusion at one size (click for the full
                size) with the pair's scores. Open it in a browser; keep it beside its folders.
  scores.csv    method,file,EN,...,MSE: a row per method and pair (empty cells where a result is
                missing or failed) and a row "mean" per method
  scores.json   the same, with the run's details and the reason for each missing or failed result
  efcnet/, y-average/, y-max/   the fused images of the methods run here, <stem>.png
  pictures/     PNG copies of the inputs and of each results directory's images, for the page
The three report files are replaced together: all are written in full before any replaces an old
one. An existing report is not replaced without --overwrite (the other files are then replaced too);
an input or results directory inside --output-dir is refused, --overwrite or not.
File names are data: scores.csv quotes a field holding a comma, quote or line break (RFC 4180) and
puts ' before one starting with = + - @, so that no spreadsheet runs it; scores.json writes bytes
of a name that are not UTF-8 as U+FFFD.

Problems: an input file without a partner ("unpaired: ..."), a pair whose images cannot be read or
differ in size, a results directory without a pair's image ("missing: ..."; the pair stays in the
report, shown as missing for that method only), or an unreadable or wrongly sized result
("failed: ..."): each is named on stderr with the file, the rest is still compared and reported,
and the exit status is 1. A progress bar runs over the pairs on stderr. An image whose header
declares more than --max-image-pixels pixels, or more than memory can hold decoded, counts as
unreadable: it is refused before it is decoded.

)";

}  // namespace

void add_compare_command(CLI::App& app) {
  auto settings = std::make_shared<CompareSettings>();
  CLI::App* cmd = add_torch_subcommand(app, "compare");
  cmd->footer(std::string(kFooter) + "\n\n" + kModelLookupHelp);
  cmd->add_option("--anatomical-dir", settings->anatomical_dir, "Directory of anatomical images (MRI, CT, ...)")
      ->required();
  cmd->add_option("--functional-dir", settings->functional_dir, "Directory of functional images, same names")
      ->required();
  cmd->add_option("--output-dir", settings->output_dir,
                  "Directory for report.html, scores.csv, scores.json and the fused images (created if missing)")
      ->required();
  cmd->add_option("--method", settings->methods,
                  "NAME=DIR: another method's fused images, DIR/<stem>.<ext> per pair (repeat for more methods)");
  cmd->add_flag("--no-efcnet", settings->no_efcnet, "Leave the network out (no weights needed)");
  cmd->add_flag("--no-baselines", settings->no_baselines, "Leave the y-average and y-max baselines out");
  add_model_options(cmd, settings->model);
  cmd->add_option(
         "--threads", settings->threads,
         "LibTorch intra-op threads for efcnet (default: all cores, " + std::to_string(core_count()) + " here)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--overwrite", settings->overwrite, "Replace an existing report in --output-dir");
  add_max_image_pixels_option(cmd, settings->max_image_pixels);
  cmd->callback([settings] { compare(*settings); });
}

}  // namespace efcnet::cli
