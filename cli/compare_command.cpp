// `efcnet compare`: efcnet, the classical baselines and other methods' results scored on one
// dataset, reported as a web page: the flags into CompareOptions, compare_methods (compare.h),
// its problems and progress printed.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "efcnet/compare.h"
#include "efcnet/files.h"
#include "efcnet/models.h"
#include "efcnet/progress.h"
#include "efcnet/runtime.h"

namespace efcnet::cli {
namespace {

struct CompareSettings {
  std::string anatomical_dir, functional_dir, output_dir;
  std::vector<std::string> methods;  // NAME=DIR
  ModelChoice model;
  bool no_efcnet = false, no_baselines = false, overwrite = false;
  int threads = 0;
  std::int64_t max_image_pixels = kDefaultMaxImagePixels;
};

CompareOptions compare_options(const CompareSettings& s) {
  CompareOptions options;
  options.efcnet = !s.no_efcnet;
  options.baselines = !s.no_baselines;
  for (const std::string& argument : s.methods) {
    const auto equals = argument.find('=');
    if (equals == std::string::npos) throw std::runtime_error("--method " + argument + ": expected NAME=DIR");
    options.results.emplace_back(argument.substr(0, equals), argument.substr(equals + 1));
  }
  if (s.no_efcnet && (!s.model.model.empty() || !s.model.weights.empty() || !s.model.seem_weights.empty())) {
    throw std::runtime_error(
        "compare: --model, --weights and --seem-weights are for efcnet, which --no-efcnet leaves out");
  }
  options.overwrite = s.overwrite;
  options.read.max_pixels = s.max_image_pixels;
  options.threads = s.threads;
  options.option_name = flags_named();
  return options;
}

void compare(const CompareSettings& s) {
  CompareOptions options = compare_options(s);
  std::optional<ProgressBar> progress;
  const auto print = [&progress](const CompareEvent& event) {
    if (event.kind == CompareEvent::Kind::problem) {
      progress ? progress->message(event.message) : (void)std::fprintf(stderr, "%s\n", event.message.c_str());
      return;
    }
    if (!progress) progress.emplace(event.total);
    progress->advance();
  };
  ComparisonReport report;
  try {
    if (options.efcnet) {
      // Everything the options can get wrong is refused before the weights are loaded.
      check_compare_options(s.anatomical_dir, s.functional_dir, s.output_dir, options);
      const Model model = resolve_model(s.model);
      options.fuser.weights = model.network;
      options.fuser.seem_weights = model.seem;
      use_fusion_runtime(s.threads, options.fuser.device);
    }
    report = compare_methods(s.anatomical_dir, s.functional_dir, s.output_dir, options, print);
  } catch (const OutputExistsError& e) {
    throw std::runtime_error(e.path() + ": already exists (pass --overwrite to replace the report)");
  }
  if (progress) progress->finish();
  const Comparison& comparison = report.comparison;
  const std::size_t problems = comparison.problem_count();
  const std::string page = (std::filesystem::path(s.output_dir) / "report.html").string();
  std::fprintf(stderr, "compared %zu methods on %zu pairs (%.2f s per pair), %zu problems: %s\n",
               comparison.methods.size(), comparison.pairs.size(),
               report.context.seconds / static_cast<double>(comparison.pairs.size()), problems, page.c_str());
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
