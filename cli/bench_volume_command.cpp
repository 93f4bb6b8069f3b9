// `efcnet bench-volume`: parses the command line into VolumeBenchmarkOptions, runs
// benchmark_volume_fusion (efcnet/benchmark.h) with a progress bar and writes its report.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "efcnet/benchmark.h"
#include "efcnet/files.h"
#include "efcnet/progress.h"

namespace efcnet::cli {
namespace {

struct Settings {
  VolumeBenchmarkOptions options;
  ModelChoice model;
  std::string output;
};

void run(Settings& s) {
  use_fusion_runtime(s.options.threads, "cpu");
  s.options.model = resolve_model(s.model);
  std::fprintf(stderr, "bench-volume: a %dx%dx%d phantom volume, slice by slice with the same slices as 2D pairs\n",
               s.options.size, s.options.size, s.options.slices);
  std::optional<ProgressBar> bar;
  const std::string text = benchmark_volume_fusion(s.options,
                                                   [&bar](int, int total) {
                                                     if (!bar) bar.emplace(static_cast<std::size_t>(total));
                                                     bar->advance();
                                                   }) +
                           "\n";
  bar.reset();
  if (s.output.empty()) {
    std::fputs(text.c_str(), stdout);
  } else {
    write_file_atomic(s.output, text);
  }
}

}  // namespace

void add_bench_volume_command(CLI::App& app) {
  auto settings = std::make_shared<Settings>();
  CLI::App* cmd = add_torch_subcommand(app, "bench-volume");
  cmd->add_option("--size", settings->options.size, "Side of the phantom's anatomical slices (default: 256)")
      ->check(CLI::Range(16, 2048));
  cmd->add_option("--slices", settings->options.slices, "Anatomical slices (default: 64)")->check(CLI::Range(2, 4096));
  cmd->add_option("--threads", settings->options.threads, "LibTorch intra-op threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  add_model_options(cmd, settings->model);
  cmd->add_option("--output", settings->output, "Write the JSON report here (default: stdout)");
  cmd->callback([settings] { run(*settings); });
}

}  // namespace efcnet::cli
