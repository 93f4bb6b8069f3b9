// One training step (SEEM forward, network forward, the four loss terms, backward, Adam update),
// 2 threads by default, float32 and, where the CPU has AVX-512 BF16 or AMX, bf16 (`efcnet train
// --precision bf16`: forward pass and loss under bfloat16 autocast).
//   train_step_bench --benchmark_format=json
// BM_TrainStep/<h>/<w>/<bf16>/<heap>: what `efcnet train` runs (lean training memory, single-token
// attention); heap 1 with the heap keeping every freed block, as `efcnet train` sets it (page faults
// spared, a larger footprint; docs/architecture.md, "Training memory"). BM_LeanAgainstEager/<h>/<w>/<bf16> runs that
// step and the eager baseline (the same modules and loss in plain LibTorch autograd, textbook attention:
// keep_everything) alternately in one process, and reports each one's seconds and peak RSS and their ratios (speedup =
// eager / lean seconds, memory_ratio = lean / eager peak). Each peak is the resident memory's
// high-water mark over that step alone (reset through /proc/self/clear_refs after returning freed
// heap to the system), so it includes the process's libraries and the models.
#include <malloc.h>

#include <chrono>
#include <fstream>
#include <string>

#include <benchmark/benchmark.h>

#include "efcnet/model.h"
#include "efcnet/runtime.h"
#include "efcnet/train.h"
#include "train/losses.h"
#include "train/precision.h"

namespace {

using Memory = efcnet::FusionNetworkImpl::TrainingMemory;

void reset_peak_rss() {
  malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
}

double peak_rss_gib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / (1024.0 * 1024.0);  // kB
  }
  return 0.0;
}

class TrainingStep {
 public:
  TrainingStep(int64_t h, int64_t w, Memory memory, efcnet::Precision precision) : precision_(precision) {
    torch::manual_seed(302);
    seem_->eval();
    network_->train();
    network_->set_training_memory(memory);
    network_->use_textbook_attention(memory == Memory::keep_everything);
    adam_ = std::make_unique<torch::optim::Adam>(network_->parameters(), torch::optim::AdamOptions(1e-4));
    functional_ = torch::rand({4, 1, h, w});
    anatomical_ = torch::rand({4, 1, h, w});
  }

  void run() {
    torch::Tensor s;
    {
      torch::NoGradGuard no_grad;
      s = seem_->forward(functional_);
    }
    adam_->zero_grad();
    const auto loss = efcnet::training::network_loss(*network_, s, anatomical_, precision_);
    loss.total.backward();
    adam_->step();
    benchmark::DoNotOptimize(loss.total.item<float>());
  }

 private:
  efcnet::Precision precision_;
  efcnet::SmoothEdgeExtractor seem_;
  efcnet::FusionNetwork network_;
  std::unique_ptr<torch::optim::Adam> adam_;
  torch::Tensor functional_, anatomical_;
};

efcnet::Precision precision_argument(benchmark::State& state, int index) {
  const auto precision = state.range(index) != 0 ? efcnet::Precision::bfloat16 : efcnet::Precision::float32;
  if (precision == efcnet::Precision::bfloat16 && !efcnet::bfloat16_training_supported()) {
    state.SkipWithError("this CPU has neither AVX-512 BF16 nor AMX");
  }
  return precision;
}

void BM_TrainStep(benchmark::State& state) {
  const auto precision = precision_argument(state, 2);
  if (state.error_occurred()) return;
  torch::set_num_threads(2);
  // The heap as `efcnet train` has it, for the rest of the process: these runs come last.
  if (state.range(3) != 0) efcnet::keep_freed_memory_for_reuse();
  TrainingStep step(state.range(0), state.range(1), Memory::lean, precision);
  reset_peak_rss();
  for (auto _ : state) step.run();
  state.counters["peak_rss_gib"] = peak_rss_gib();
}

void BM_LeanAgainstEager(benchmark::State& state) {
  const auto precision = precision_argument(state, 2);
  if (state.error_occurred()) return;
  torch::set_num_threads(2);
  TrainingStep lean(state.range(0), state.range(1), Memory::lean, precision);
  TrainingStep eager(state.range(0), state.range(1), Memory::keep_everything, precision);
  using Clock = std::chrono::steady_clock;
  double lean_seconds = 0.0, eager_seconds = 0.0, lean_peak = 0.0, eager_peak = 0.0;
  for (auto _ : state) {
    for (auto* step : {&lean, &eager}) {
      reset_peak_rss();
      const auto start = Clock::now();
      step->run();
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      (step == &lean ? lean_seconds : eager_seconds) += seconds;
      auto& peak = step == &lean ? lean_peak : eager_peak;
      peak = std::max(peak, peak_rss_gib());
    }
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["lean_seconds"] = lean_seconds / n;
  state.counters["eager_seconds"] = eager_seconds / n;
  state.counters["speedup"] = eager_seconds / lean_seconds;
  state.counters["lean_peak_rss_gib"] = lean_peak;
  state.counters["eager_peak_rss_gib"] = eager_peak;
  state.counters["memory_ratio"] = lean_peak / eager_peak;
}

BENCHMARK(BM_LeanAgainstEager)
    ->Args({64, 256, 0})
    ->Args({64, 256, 1})
    ->Unit(benchmark::kSecond)
    ->Iterations(2)
    ->UseRealTime();
BENCHMARK(BM_TrainStep)
    ->Args({64, 256, 0, 0})
    ->Args({64, 256, 1, 0})
    ->Args({256, 256, 0, 0})
    ->Args({256, 256, 1, 0})
    ->Args({64, 256, 0, 1})
    ->Args({64, 256, 1, 1})
    ->Args({256, 256, 0, 1})
    ->Args({256, 256, 1, 1})
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace
