// `efcnet bench-register`: parses the command line into RegistrationBenchmarkOptions, runs
// benchmark_registration (registration_bench.h), prints its cases as a table on stderr and writes
// its JSON report.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "commands.h"
#include "efcnet/files.h"
#include "efcnet/registration_bench.h"

namespace efcnet::cli {
namespace {

struct Settings {
  RegistrationBenchmarkOptions options;
  std::string output;
};

// A table cell: a method's error (mm) or seconds, "failed" or "-" (not run).
std::string cell(const std::optional<RegistrationCaseResult>& r, bool seconds) {
  if (!r) return "-";
  if (!r->error.empty()) return "failed";
  char text[32];
  std::snprintf(text, sizeof text, seconds ? "%.1f" : "%.2f", seconds ? r->seconds : r->tre_mm);
  return text;
}

void run(const Settings& s) {
  bool header = false;  // printed with the first case: a refusal before any case is one line
  const auto print_case = [&header](const RegistrationCaseReport& c) {
    if (!std::exchange(header, true))
      std::fprintf(stderr, "%-14s %7s | %9s %7s | %10s %7s\n", "case", "motion", "efcnet mm", "s", "elastix mm", "s");
    std::fprintf(stderr, "%-14s %6.1f  | %9s %7s | %10s %7s\n", c.name.c_str(), c.motion_mm,
                 cell(c.efcnet, false).c_str(), cell(c.efcnet, true).c_str(), cell(c.elastix, false).c_str(),
                 cell(c.elastix, true).c_str());
  };
  const std::string text = benchmark_registration(s.options, print_case) + "\n";
  if (s.output.empty()) {
    std::fputs(text.c_str(), stdout);
  } else {
    write_file_atomic(s.output, text);
  }
}

}  // namespace

void add_bench_register_command(CLI::App& app) {
  auto settings = std::make_shared<Settings>();
  CLI::App* cmd = app.add_subcommand(
      "bench-register",
      "Measure `efcnet fuse --register rigid` against elastix (rigid, Mattes MI) on volumes stacked from a 2D pair "
      "data set's slices, the functional content moved by known rigid motions: the error (mm, mean over the 8 "
      "corners of the head's box) and the time of each (JSON; a table on stderr)");
  cmd->add_option("--data", settings->options.data,
                  "The pair data set: folders such as SPECT-MRI/{MRI,SPECT} of <subject><3-digit slice>.png "
                  "(AANLIB's layout)")
      ->required();
  cmd->add_option("--pairs", settings->options.pairs,
                  "Its pair folders to take cases from (default: CT-MRI PET-MRI SPECT-MRI)");
  cmd->add_option("--cases-per-pair", settings->options.cases_per_pair,
                  "Subjects per pair folder, those with the longest runs of consecutive slices (default: 2)")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--slices", settings->options.max_slices, "Consecutive slices per volume at most (default: 24)")
      ->check(CLI::Range(2, 1000));
  cmd->add_option("--slice-mm", settings->options.slice_mm, "Slice spacing, mm (default: 4; the pixels are 1 mm)")
      ->check(CLI::Range(0.1, 50.0));
  cmd->add_option("--functional-downsample", settings->options.functional_downsample,
                  "The functional volume's pixels span this many anatomical ones per side (default: 2)")
      ->check(CLI::Range(1, 8));
  cmd->add_option("--max-degrees", settings->options.max_degrees,
                  "Rotations of the motions about each axis (default: 10)")
      ->check(CLI::Range(0.0, 45.0));
  cmd->add_option("--max-shift-mm", settings->options.max_shift_mm, "Shift of the motions at most, mm (default: 20)")
      ->check(CLI::Range(0.0, 200.0));
  cmd->add_option("--seed", settings->options.seed, "The first case's motion seed; case n uses seed + n (default: 1)");
  cmd->add_option("--threads", settings->options.threads, "Threads of both methods (default: 2)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--elastix", settings->options.elastix, "The elastix executable, or none (default: elastix on PATH)");
  cmd->add_option("--elastix-parameters", settings->options.elastix_parameters,
                  "elastix's parameter file (default: scripts/elastix-rigid.txt)");
  cmd->add_option("--qc-dir", settings->options.qc_dir,
                  "Write each case's registration picture (efcnet fuse --qc) here as <case>.png");
  cmd->add_option("--output", settings->output, "Write the JSON report here (default: stdout)");
  cmd->callback([settings] { run(*settings); });
}

}  // namespace efcnet::cli
