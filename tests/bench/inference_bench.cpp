// One 256x256 pair through SEEM + the fusion network: the prepared inference path (what
// `efcnet fuse` runs) against the eager modules with textbook attention (the reference's
// computation), same random weights, 2 threads by default.
//   inference_bench --benchmark_format=json
// BM_Interleaved runs both on every iteration and reports the ratio (counter speedup), so that
// load drifts on a shared machine hit both alike. Counters gflops_per_second count the
// convolution and linear FLOPs each path executes (inference.h: counted_flops).
#include <sys/resource.h>

#include <chrono>
#include <memory>

#include <benchmark/benchmark.h>

#include "efcnet/inference.h"
#include "efcnet/model.h"
#include "efcnet/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Models {
  efcnet::SmoothEdgeExtractor seem;
  efcnet::FusionNetwork network;
  std::unique_ptr<efcnet::InferenceModel> prepared;
  torch::Tensor functional, anatomical;

  explicit Models(int64_t side) {
    torch::set_num_threads(2);
    torch::manual_seed(302);
    seem->eval();
    network->eval();
    network->use_textbook_attention(true);
    prepared = std::make_unique<efcnet::InferenceModel>(*seem, *network);
    efcnet::keep_freed_memory_for_reuse();  // as the efcnet command does
    functional = torch::rand({1, 1, side, side});
    anatomical = torch::rand({1, 1, side, side});
  }
  torch::Tensor eager() {
    torch::InferenceMode inference;
    return network->forward(seem->forward(functional), anatomical).fused;
  }
  torch::Tensor fast() { return prepared->fuse(functional, anatomical); }
};

double peak_rss_gib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / (1024.0 * 1024.0);
}

void BM_Prepared(benchmark::State& state) {
  Models models(state.range(0));
  models.fast();  // oneDNN kernel generation
  for (auto _ : state) benchmark::DoNotOptimize(models.fast().data_ptr());
  state.counters["gflops_per_second"] =
      benchmark::Counter(efcnet::counted_flops(state.range(0), state.range(0), false).total() / 1e9,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_rss_gib"] = peak_rss_gib();
}

void BM_Eager(benchmark::State& state) {
  Models models(state.range(0));
  models.eager();
  for (auto _ : state) benchmark::DoNotOptimize(models.eager().data_ptr());
  state.counters["gflops_per_second"] =
      benchmark::Counter(efcnet::counted_flops(state.range(0), state.range(0), true).total() / 1e9,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_rss_gib"] = peak_rss_gib();
}

void BM_Interleaved(benchmark::State& state) {
  Models models(state.range(0));
  models.fast();
  models.eager();
  double fast_seconds = 0, eager_seconds = 0, max_difference = 0;
  for (auto _ : state) {
    auto start = Clock::now();
    const auto fast = models.fast();
    fast_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    start = Clock::now();
    const auto eager = models.eager();
    eager_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    max_difference = std::max(max_difference, (fast - eager).abs().max().item<double>());
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["prepared_seconds"] = fast_seconds / n;
  state.counters["eager_seconds"] = eager_seconds / n;
  state.counters["speedup"] = eager_seconds / fast_seconds;
  state.counters["max_abs_difference"] = max_difference;
}

BENCHMARK(BM_Prepared)->Arg(256)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();
BENCHMARK(BM_Eager)->Arg(256)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();
BENCHMARK(BM_Interleaved)->Arg(256)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();

}  // namespace
