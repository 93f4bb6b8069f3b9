// One training step (SEEM forward, network forward, the four loss terms, backward, Adam update)
// at batch 4 x 64x256 and 4 x 256x256, 2 threads by default.
//   train_step_bench --benchmark_format=json
// BM_TrainStep/<h>/<w>/<textbook>/<bf16>: textbook 0 is the exact single-token attention (what
// `efcnet train` runs), 1 the textbook attention (q, k, softmax), i.e. the reference's computation,
// as the baseline of the same run; bf16 1 is `efcnet train --precision bf16` (forward pass and
// loss under bfloat16 autocast, skipped on a CPU without AVX-512 BF16 or AMX) beside its float32
// step. Counter peak_rss_gib is the process's peak resident memory so far.
#include <sys/resource.h>

#include <benchmark/benchmark.h>

#include "efcnet/losses.h"
#include "efcnet/model.h"
#include "efcnet/train.h"
#include "train/precision.h"

namespace {

double peak_rss_gib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / (1024.0 * 1024.0);
}

void BM_TrainStep(benchmark::State& state) {
  const int64_t h = state.range(0), w = state.range(1);
  const bool textbook = state.range(2) != 0;
  const auto precision = state.range(3) != 0 ? efcnet::Precision::bfloat16 : efcnet::Precision::float32;
  if (precision == efcnet::Precision::bfloat16 && !efcnet::bfloat16_training_supported()) {
    state.SkipWithError("this CPU has neither AVX-512 BF16 nor AMX");
    return;
  }
  torch::set_num_threads(2);
  torch::manual_seed(302);
  efcnet::SmoothEdgeExtractor seem;
  efcnet::FusionNetwork network;
  seem->eval();
  network->train();
  network->use_textbook_attention(textbook);
  torch::optim::Adam adam(network->parameters(), torch::optim::AdamOptions(1e-4));
  const auto functional = torch::rand({4, 1, h, w});
  const auto anatomical = torch::rand({4, 1, h, w});
  for (auto _ : state) {
    torch::Tensor s;
    {
      torch::NoGradGuard no_grad;
      s = seem->forward(functional);
    }
    adam.zero_grad();
    const auto loss = efcnet::training::network_loss(*network, s, anatomical, precision);
    loss.total.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.total.item<float>());
  }
  state.counters["peak_rss_gib"] = peak_rss_gib();
}

BENCHMARK(BM_TrainStep)
    ->Args({64, 256, 0, 0})
    ->Args({64, 256, 1, 0})
    ->Args({64, 256, 0, 1})
    ->Args({256, 256, 0, 0})
    ->Args({256, 256, 0, 1})
    ->Unit(benchmark::kSecond)
    ->Iterations(2)
    ->UseRealTime();

}  // namespace
