// `efcnet bench`: parses the command line into FusionBenchmarkOptions, runs benchmark_fusion
// (efcnet/benchmark.h), each of several sizes in a child process of this executable, and prints
// the report.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "efcnet/benchmark.h"
#include "efcnet/runtime.h"

namespace efcnet::cli {
namespace {

struct BenchSettings {
  FusionBenchmarkOptions options;
  std::string precision = "float32";
  std::string format = "json";
};

// Runs `efcnet bench` for one size in a child process and returns its run's JSON text.
std::string bench_size_in_child(const BenchSettings& s, int size) {
  const FusionBenchmarkOptions& o = s.options;
  std::vector<std::string> args{"efcnet",      "bench",
                                "--size",      std::to_string(size),
                                "--pairs",     std::to_string(o.pairs),
                                "--warmup",    std::to_string(o.warmup),
                                "--threads",   std::to_string(o.threads),
                                "--device",    o.device,
                                "--precision", s.precision,
                                "--format",    "json"};
  if (!o.weights.empty()) args.insert(args.end(), {"--weights", o.weights, "--seem-weights", o.seem_weights});
  if (!o.eager) args.emplace_back("--no-eager");
  if (!o.inference.winograd) args.emplace_back("--no-winograd");
  if (!o.inference.dnnl_linear) args.emplace_back("--no-dnnl-linear");
  const std::string text = run_capturing_stdout("/proc/self/exe", args);
  return nlohmann::json::parse(text)["runs"].at(0).dump();
}

void run_bench(const BenchSettings& s) {
  const BenchmarkReport report = benchmark_fusion(
      s.options,
      s.options.sizes.size() == 1 ? BenchmarkSizeRunner{} : [&s](int size) { return bench_size_in_child(s, size); });
  for (const std::string& error : report.errors) std::fprintf(stderr, "efcnet bench: %s\n", error.c_str());
  std::printf("%s\n", (s.format == "json" ? report.json : fusion_benchmark_table(report.json)).c_str());
  if (!report.errors.empty()) throw std::runtime_error("bench: not every size could be measured");
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto settings = std::make_shared<BenchSettings>();
  FusionBenchmarkOptions& options = settings->options;
  CLI::App* cmd = add_torch_subcommand(app, "bench");
  cmd->footer(R"(
Stages: read (decode both files), colour (YUV split/merge, tensors, bytes), seem, encoder
(conv3_3/5_5/7_7 on both inputs, coordinate attention, conv1..conv3), su1, su2, su3, su4 (with
conv4), decoder, write (encode + atomic write). GFLOP/s counts convolution and linear FLOPs as
executed (folded single-token attention); gflop_reference counts the reference's q, k, v, proj.
The eager baseline runs the same weights through the eager modules with textbook attention, in
the same process, interleaved with the optimised path pair by pair. Several sizes run in one
child process each, so that each size's peak RSS is its own. Weights are random unless given.)");
  cmd->add_option("--size", options.sizes,
                  "Side of the square phantom pair; a comma-separated list or repeated (default: 256)")
      ->delimiter(',')
      ->check(CLI::Range(32, 65536));
  cmd->add_option("--pairs", options.pairs, "Timed pairs per size (default: 3)")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", options.warmup, "Untimed pairs per path first (default: 1)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", options.threads,
                  "LibTorch intra-op threads (default: all cores, " + std::to_string(core_count()) + " here)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", options.device, "cpu, cuda or cuda:N (default: cpu)");
  cmd->add_option("--format", settings->format, "json (default) or table")->check(CLI::IsMember({"json", "table"}));
  cmd->add_option("--weights", options.weights, "Fusion network weights (default: random)");
  cmd->add_option("--seem-weights", options.seem_weights, "SEEM weights (default: random)");
  cmd->add_option("--precision", settings->precision,
                  "float32 (default, exact) or bf16: the network's convolutions and linear layers in bfloat16 "
                  "(CPU); compare max_level_difference")
      ->check(CLI::IsMember({"float32", "bf16"}));
  cmd->add_flag("!--no-eager", options.eager, "Skip the eager baseline (always float32)");
  cmd->add_flag("!--no-winograd", options.inference.winograd,
                "Optimised path with direct 3x3 convolutions (LibTorch's) instead of oneDNN's Winograd kernels "
                "(float32 on AVX-512 CPUs)");
  cmd->add_flag("!--no-dnnl-linear", options.inference.dnnl_linear,
                "Optimised path with the token mixers' linear layers through LibTorch (the system BLAS) and "
                "separate GELU and residual passes, instead of oneDNN's matmul with those fused (float32, CPU)");
  cmd->callback([settings] {
    settings->options.inference.precision = settings->precision == "bf16" ? Precision::bfloat16 : Precision::float32;
    settings->options.option_name = flags_named();
    use_fusion_runtime(settings->options.threads, settings->options.device);
    run_bench(*settings);
  });
}

}  // namespace efcnet::cli
