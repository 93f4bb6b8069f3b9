// efcnet/benchmark.h's fusion benchmark: seconds per pair by stage of what `efcnet fuse` runs, on
// synthetic pairs, next to the plain eager forward pass (textbook attention, the reference's
// computation) of the same weights measured in the same process, interleaved pair by pair.
#include <dlfcn.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "bench/bench_support.h"
#include "efcnet/benchmark.h"
#include "efcnet/image.h"
#include "efcnet/inference.h"
#include "efcnet/model.h"
#include "efcnet/pipeline.h"
#include "efcnet/runtime.h"
#include "efcnet/weights.h"
#include "io/output_text.h"
#include "pipeline/tensor_image.h"

namespace efcnet {
namespace {

using nlohmann::json;

// Peak resident memory the eager textbook forward pass adds per pixel of one pair (VmHWM at 256²
// and 512² with LibTorch 1.13 on the CPU: 51 and 49 KiB), about 4x the prepared model's. Used
// only to skip the baseline where it would not fit.
constexpr int64_t kEagerBytesPerPixel = 56 * 1024;
constexpr uint64_t kRandomWeightsSeed = 302;

// A field of /proc/self/status in bytes (VmHWM: peak resident set), -1 if unreadable.
int64_t proc_status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  }
  return -1;
}

// The weights to time: the given files, or seeded random ones written to `dir` (BatchNorm
// statistics made non-trivial by one training-mode pass, so folding is not a no-op).
std::pair<std::string, std::string> weight_files(const FusionBenchmarkOptions& s, const ScratchDir& dir) {
  if (!s.weights.empty()) return {s.weights, s.seem_weights};
  torch::manual_seed(kRandomWeightsSeed);
  SmoothEdgeExtractor seem;
  FusionNetwork network;
  {
    torch::NoGradGuard no_grad;
    const auto images = torch::rand({2, 1, 32, 32});
    seem->forward(images);
    network->forward(images, images.flip(3));
  }
  const std::pair<std::string, std::string> files{dir / "network.pth", dir / "seem.pth"};
  save_state_dict(module_state_dict(*network), files.first);
  save_state_dict(module_state_dict(*seem), files.second);
  return files;
}

// The reference pipeline with the eager modules: the baseline.
class EagerFuser {
 public:
  EagerFuser(const std::string& weights, const std::string& seem_weights, const torch::Device& device)
      : device_(device) {
    seem_->to(device);
    network_->to(device);
    load_weights(*seem_, seem_weights);
    load_weights(*network_, weights);
    seem_->eval();
    network_->eval();
    network_->use_textbook_attention(true);
  }

  // Adds the seconds of SEEM + network to *network_seconds.
  cv::Mat fuse_pair(const cv::Mat& anatomical, const cv::Mat& functional, double* network_seconds) {
    check_fusion_inputs(anatomical, functional);
    torch::InferenceMode inference;
    const auto f = unit_tensor(functional_y_plane(functional), device_);
    const auto a = unit_tensor(anatomical, device_);
    const auto start = BenchClock::now();
    const auto fused = network_->forward(seem_->forward(f), a).fused;
    *network_seconds += seconds_since(start);
    return replace_y_plane(functional, byte_plane(fused));
  }

 private:
  torch::Device device_;
  SmoothEdgeExtractor seem_;
  FusionNetwork network_;
};

// Summed over pairs, then divided into means.
struct PairSeconds {
  double read = 0, fuse = 0, write = 0;              // fuse: the whole fuse_pair call
  double networks = 0;                               // SEEM + network within it
  StageSeconds stages;                               // the optimised path's networks by stage
  double colour() const { return fuse - networks; }  // YUV split/merge, tensors, bytes
  double total() const { return read + fuse + write; }
};

json stage_table(const PairSeconds& mean, const StageFlops& flops) {
  const auto row = [](double seconds, double flop) {
    json r{{"seconds", seconds}, {"gflop", flop / 1e9}};
    r["gflops_per_second"] = seconds > 0 && flop > 0 ? json(flop / seconds / 1e9) : json(nullptr);
    return r;
  };
  json table{{"read", row(mean.read, 0)}, {"colour", row(mean.colour(), 0)}};
  for (const NetworkStage& stage : kNetworkStages)
    table[stage.name] = row(mean.stages.*stage.value, flops.*stage.value);
  table["write"] = row(mean.write, 0);
  table["networks"] = row(mean.networks, flops.total());
  table["total"] = row(mean.total(), flops.total());
  return table;
}

// The rows of the table, in the order a pair goes through them.
std::vector<std::string> stage_rows() {
  std::vector<std::string> rows{"read", "colour"};
  for (const NetworkStage& stage : kNetworkStages) rows.push_back(stage.name);
  rows.insert(rows.end(), {"write", "total"});
  return rows;
}

// One size in this process.
json bench_size(const FusionBenchmarkOptions& s, int size) {
  ScratchDir dir("efcnet-bench");
  const auto [weights, seem_weights] = weight_files(s, dir);
  FuserOptions options;
  options.weights = weights;
  options.seem_weights = seem_weights;
  options.device = s.device;
  options.inference = s.inference;
  const Fuser fuser(options);
  const int64_t rss_after_load = proc_status_bytes("VmHWM");

  const Phantom phantom = make_phantom(size, PhantomKind::spect);
  const std::string anatomical_path = dir / "anatomical.png", functional_path = dir / "functional.png";
  write_image_atomic(anatomical_path, phantom.anatomical);
  write_image_atomic(functional_path, phantom.functional);

  // One pair through a pipeline: read both files, fuse, write the result.
  const auto run = [&](const auto& fuse, PairSeconds& seconds) {
    auto start = BenchClock::now();
    const cv::Mat anatomical = read_anatomical(anatomical_path);
    const cv::Mat functional = read_functional(functional_path);
    seconds.read += seconds_since(start);
    start = BenchClock::now();
    cv::Mat fused = fuse(anatomical, functional, seconds);
    seconds.fuse += seconds_since(start);
    start = BenchClock::now();
    write_image_atomic(dir / "fused.png", fused);
    seconds.write += seconds_since(start);
    return fused;
  };
  const auto optimised = [&](const cv::Mat& a, const cv::Mat& f, PairSeconds& seconds) {
    StageSeconds stages;
    cv::Mat fused = fuser.fuse_pair(a, f, &stages);
    seconds.networks += stages.total();
    for (const NetworkStage& stage : kNetworkStages) seconds.stages.*stage.value += stages.*stage.value;
    return fused;
  };

  // Warm-up (oneDNN kernel generation, first-touch of memory), then the optimised path's peak
  // memory before the baseline has run.
  for (int i = 0; i < s.warmup; ++i) {
    PairSeconds ignored;
    run(optimised, ignored);
  }
  const int64_t rss_optimised = proc_status_bytes("VmHWM");

  const torch::Device device = parse_device(s.device);
  std::optional<EagerFuser> eager;
  std::string eager_skipped;
  const int64_t eager_bytes = static_cast<int64_t>(size) * size * kEagerBytesPerPixel;
  if (!s.eager) {
    eager_skipped = "not asked for";
  } else if (device.is_cpu() && available_memory_bytes() >= 0 && eager_bytes > available_memory_bytes()) {
    eager_skipped = "the eager forward pass needs about " + gibibytes(eager_bytes) + ", more than MemAvailable";
  } else {
    eager.emplace(weights, seem_weights, device);
  }
  const auto baseline = [&](const cv::Mat& a, const cv::Mat& f, PairSeconds& seconds) {
    return eager->fuse_pair(a, f, &seconds.networks);
  };
  if (eager) {
    for (int i = 0; i < s.warmup; ++i) {
      PairSeconds ignored;
      run(baseline, ignored);
    }
  }

  // Interleaved, alternating which path goes first, so that load drifts hit both alike.
  PairSeconds fast, slow;
  int max_level_difference = 0;
  int64_t differing_samples = 0;  // in the worst pair: channel samples of the output image
  for (int i = 0; i < s.pairs; ++i) {
    cv::Mat mine, reference;
    if (eager && i % 2 == 1) reference = run(baseline, slow);
    mine = run(optimised, fast);
    if (eager && i % 2 == 0) reference = run(baseline, slow);
    if (eager) {
      cv::Mat difference;
      cv::absdiff(mine, reference, difference);
      double max_value = 0;
      cv::minMaxLoc(difference.reshape(1), nullptr, &max_value);
      max_level_difference = std::max(max_level_difference, static_cast<int>(max_value));
      differing_samples = std::max<int64_t>(differing_samples, cv::countNonZero(difference.reshape(1)));
    }
  }
  const auto mean = [&](PairSeconds p) {
    const double n = s.pairs;
    p.read /= n, p.fuse /= n, p.write /= n, p.networks /= n;
    for (const NetworkStage& stage : kNetworkStages) p.stages.*stage.value /= n;
    return p;
  };
  const PairSeconds fast_mean = mean(fast);
  const StageFlops executed = counted_flops(size, size, false);
  const StageFlops reference_flops = counted_flops(size, size, true);

  json result{{"size", size},
              {"pairs", s.pairs},
              {"warmup_pairs", s.warmup},
              {"seconds_per_pair", fast_mean.total()},
              {"stages", stage_table(fast_mean, executed)},
              {"gflop_executed", executed.total() / 1e9},
              {"gflop_reference", reference_flops.total() / 1e9},
              {"gflops_per_second_reference_equivalent", reference_flops.total() / fast_mean.networks / 1e9},
              {"estimated_working_bytes", estimated_working_bytes(size, size)},
              {"winograd_layers", fuser.winograd_layers()},
              {"dnnl_linear_layers", fuser.dnnl_linear_layers()},
              {"peak_rss_bytes", {{"after_loading", rss_after_load}, {"optimised", rss_optimised}}}};
  if (eager) {
    const PairSeconds slow_mean = mean(slow);
    result["eager"] = {{"seconds_per_pair", slow_mean.total()},
                       {"networks_seconds", slow_mean.networks},
                       {"speedup_networks", slow_mean.networks / fast_mean.networks},
                       {"speedup_end_to_end", slow_mean.total() / fast_mean.total()},
                       {"max_level_difference", max_level_difference},
                       {"differing_samples", differing_samples}};
    result["peak_rss_bytes"]["with_eager"] = proc_status_bytes("VmHWM");
  } else {
    result["eager"] = nullptr;
    result["eager_skipped"] = eager_skipped;
  }
  return result;
}

// printf into `text`.
void appendf(std::string& text, const char* format, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string& text, const char* format, ...) {
  char line[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  text += line;
}

std::string table_text(const json& report) {
  std::string text;
  appendf(text, "efcnet bench: %s, %d threads, %s%s%s, %s, BLAS kernels %s; load average before %s, after %s\n",
          report["device"].get<std::string>().c_str(), report["threads"].get<int>(),
          report["precision"].get<std::string>().c_str(), report["winograd"].get<bool>() ? "" : " (no Winograd)",
          report["dnnl_linear"].get<bool>() ? "" : " (no oneDNN linear)", report["cpu"].get<std::string>().c_str(),
          report["blas_kernels"].is_null() ? "(not OpenBLAS)" : report["blas_kernels"].get<std::string>().c_str(),
          json_text(report["load_average_before"], -1).c_str(), json_text(report["load_average_after"], -1).c_str());
  for (const auto& run : report["runs"]) {
    if (run.contains("error")) {
      appendf(text, "\n%dx%d: %s\n", run["size"].get<int>(), run["size"].get<int>(),
              run["error"].get<std::string>().c_str());
      continue;
    }
    appendf(text, "\n%dx%d, mean of %d pairs\n%-10s %10s %10s %10s\n", run["size"].get<int>(), run["size"].get<int>(),
            run["pairs"].get<int>(), "stage", "seconds", "GFLOP", "GFLOP/s");
    for (const std::string& stage : stage_rows()) {
      const auto& row = run["stages"][stage];
      char rate[32] = "-";
      if (!row["gflops_per_second"].is_null())
        std::snprintf(rate, sizeof rate, "%.1f", row["gflops_per_second"].get<double>());
      appendf(text, "%-10s %10.4f %10.2f %10s\n", stage.c_str(), row["seconds"].get<double>(),
              row["gflop"].get<double>(), rate);
    }
    appendf(text, "peak RSS %s (optimised)\n", gibibytes(run["peak_rss_bytes"]["optimised"].get<int64_t>()).c_str());
    if (run["eager"].is_null()) {
      appendf(text, "eager baseline skipped: %s\n", run["eager_skipped"].get<std::string>().c_str());
    } else {
      const auto& e = run["eager"];
      appendf(text,
              "eager (textbook attention) %.4f s per pair: %.2fx end to end, %.2fx the networks; max level "
              "difference %d (%lld samples of a pair differ)\n",
              e["seconds_per_pair"].get<double>(), e["speedup_end_to_end"].get<double>(),
              e["speedup_networks"].get<double>(), e["max_level_difference"].get<int>(),
              static_cast<long long>(e["differing_samples"].get<int64_t>()));
    }
  }
  return text;
}

// The kernels OpenBLAS runs Linear layers with ("Prescott" is its slow generic fallback; see
// efcnet/runtime.h), or null when the system BLAS is not OpenBLAS.
json blas_kernels() {
  using CoreNameFn = char* (*)();
  auto* core_name = reinterpret_cast<CoreNameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return core_name != nullptr ? json(core_name()) : json(nullptr);
}

std::string precision_name(Precision precision) { return precision == Precision::bfloat16 ? "bf16" : "float32"; }

// Both weights files or neither.
void check_weights(const FusionBenchmarkOptions& s) {
  if (s.weights.empty() != s.seem_weights.empty()) {
    throw OptionError("give both " + option_name(s.option_name, "weights") + " and " +
                      option_name(s.option_name, "seem_weights") + ", or neither");
  }
}

}  // namespace

std::string benchmark_fusion_size(const FusionBenchmarkOptions& options, int size) {
  check_weights(options);
  return json_text(bench_size(options, size));
}

BenchmarkReport benchmark_fusion(const FusionBenchmarkOptions& s, const BenchmarkSizeRunner& run_size) {
  check_weights(s);
  const InferenceOptions& inference = s.inference;
  json report{
      {"device", s.device},
      {"threads", thread_count(s.threads)},
      {"precision", precision_name(inference.precision)},
      {"winograd", inference.winograd},
      {"dnnl_linear", inference.dnnl_linear},
      {"omp_wait_policy", std::getenv("OMP_WAIT_POLICY") ? json(std::getenv("OMP_WAIT_POLICY")) : json(nullptr)},
      {"cpu", cpu_model()},
      {"blas_kernels", blas_kernels()},
      {"weights", s.weights.empty() ? "random (seed " + std::to_string(kRandomWeightsSeed) + ")" : s.weights},
      {"load_average_before", load_average<json>()}};
  BenchmarkReport result;
  json runs = json::array();
  for (const int size : s.sizes) {
    std::string error = parse_device(s.device).is_cpu() ? working_memory_shortfall(size, size) : "";
    if (error.empty()) {
      try {
        runs.push_back(run_size ? json::parse(run_size(size)) : bench_size(s, size));
      } catch (const std::exception& e) {  // Error, or a child's output that is not JSON
        error = e.what();
      }
    }
    if (!error.empty()) {
      runs.push_back({{"size", size}, {"error", error}});
      result.errors.push_back(std::to_string(size) + ": " + error);
    }
  }
  report["runs"] = runs;
  report["load_average_after"] = load_average<json>();
  result.json = json_text(report);
  return result;
}

std::string fusion_benchmark_table(const std::string& report_json) { return table_text(json::parse(report_json)); }

}  // namespace efcnet
