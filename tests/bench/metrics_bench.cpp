// Fusion metrics: each metric on its own and all twelve per triple, at 256x256 and 1024x1024.
//   metrics_bench --benchmark_format=json
// BM_Triple's counter x_vs_reference is the reference Python evaluator's 0.55 s per 256x256 triple
// (golden/metrics/README.md, measured on this machine) divided by the measured time, scaled by
// pixel count for other sizes. BM_AllSingles runs the twelve single-metric functions one after the
// other: BM_Triple's gain over it is what evaluate_fusion's shared passes buy.
#include <array>
#include <chrono>
#include <cmath>
#include <string>

#include <benchmark/benchmark.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "efcnet/metrics.h"

namespace {

namespace m = efcnet::metrics;

constexpr double kReferenceSecondsPer256Triple = 0.55;

struct Triple {
  cv::Mat a, b, f;
};

// A deterministic MRI-like / SPECT-like pair and their mean as the fused image: textured anatomy,
// smooth blobs with a dark background for the functional image.
Triple make_triple(int side) {
  cv::RNG rng(20240601);
  cv::Mat anatomy(side, side, CV_32F), function(side, side, CV_32F);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) {
      const double u = static_cast<double>(x) / side, v = static_cast<double>(y) / side;
      const double r = std::hypot(u - 0.5, v - 0.5);
      anatomy.at<float>(y, x) = static_cast<float>(
          r < 0.45 ? 90 + 60 * std::sin(40 * u) * std::cos(33 * v) + rng.gaussian(12) : rng.gaussian(2));
      function.at<float>(y, x) = static_cast<float>(220 * std::exp(-40 * std::pow(r - 0.2, 2)) * (r < 0.45));
    }
  Triple t;
  anatomy.convertTo(t.a, CV_8U);
  function.convertTo(t.b, CV_8U);
  cv::addWeighted(t.a, 0.5, t.b, 0.5, 0, t.f);
  return t;
}

const Triple& triple(int side) {
  static const Triple small = make_triple(256), large = make_triple(1024);
  return side == 256 ? small : large;
}

using SingleImageMetric = double (*)(const cv::Mat&);
using TripleMetric = double (*)(const cv::Mat&, const cv::Mat&, const cv::Mat&);

const std::array<SingleImageMetric, 4> kSingleImage = {m::entropy, m::standard_deviation, m::spatial_frequency,
                                                       m::average_gradient};
const std::array<TripleMetric, 8> kTriple = {
    m::mutual_information, m::scd, m::vif, m::qabf, m::ssim, m::psnr, m::cc, m::mse};

void BM_Metric(benchmark::State& state) {
  const std::size_t index = static_cast<std::size_t>(state.range(0));
  const Triple& t = triple(static_cast<int>(state.range(1)));
  for (auto _ : state) {
    const double value =
        index < kSingleImage.size() ? kSingleImage[index](t.f) : kTriple[index - kSingleImage.size()](t.a, t.b, t.f);
    benchmark::DoNotOptimize(value);
  }
  state.SetLabel(m::kMetricNames[index]);
}

void BM_Triple(benchmark::State& state) {
  const int side = static_cast<int>(state.range(0));
  const Triple& t = triple(side);
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(m::evaluate_fusion(t.a, t.b, t.f));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double reference_seconds = kReferenceSecondsPer256Triple * side * side / (256.0 * 256.0);
  state.counters["x_vs_reference"] = reference_seconds * static_cast<double>(state.iterations()) / seconds;
}

void BM_AllSingles(benchmark::State& state) {
  const Triple& t = triple(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    double total = 0;
    for (const auto metric : kSingleImage) total += metric(t.f);
    for (const auto metric : kTriple) total += metric(t.a, t.b, t.f);
    benchmark::DoNotOptimize(total);
  }
}

void metric_args(benchmark::internal::Benchmark* b) {
  for (int side : {256, 1024})
    for (int i = 0; i < static_cast<int>(m::kMetricNames.size()); ++i) b->Args({i, side});
}

BENCHMARK(BM_Metric)->Apply(metric_args)->ArgNames({"metric", "side"})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Triple)->Arg(256)->Arg(1024)->ArgName("side")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AllSingles)->Arg(256)->Arg(1024)->ArgName("side")->Unit(benchmark::kMillisecond);

}  // namespace
