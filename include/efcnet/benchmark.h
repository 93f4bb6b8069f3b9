// The benchmarks of what `efcnet fuse` runs (libefcnet; `efcnet bench` and `efcnet bench-volume`
// parse into these options and print what they return). Each measures the optimised path against
// a baseline in the same process, interleaved, so that the ratios compare like with like, and
// returns its report as JSON text.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "efcnet/error.h"
#include "efcnet/inference_options.h"
#include "efcnet/models.h"
#include "efcnet/volume.h"

namespace efcnet {

// ---- fusion of 2D pairs by stage, against the eager forward pass ----

struct FusionBenchmarkOptions {
  std::vector<int> sizes{256};  // sides of the square phantom pairs
  int pairs = 3;                // timed pairs per size
  int warmup = 1;               // untimed pairs per path first
  int threads = 0;              // as the report states them; the caller sets the runtime (runtime.h)
  std::string device = "cpu";
  std::string weights, seem_weights;  // both, or neither: seeded random weights
  InferenceOptions inference;         // the optimised path's precision and CPU kernels
  bool eager = true;                  // also time the eager modules with textbook attention (float32)
  OptionNamer option_name{};          // error.h
};

// One size in this process: the stages' seconds and GFLOP/s, the peak resident memory, and the
// eager baseline's seconds and largest difference from the optimised path's output. JSON text.
std::string benchmark_fusion_size(const FusionBenchmarkOptions& options, int size);

// Runs one size and returns benchmark_fusion_size's JSON text; a caller may run each size in a
// process of its own, so that each size's peak memory is its own. Throws Error for a failed size.
using BenchmarkSizeRunner = std::function<std::string(int size)>;

struct BenchmarkReport {
  std::string json;                 // the settings, the machine, each size's run
  std::vector<std::string> errors;  // "SIZE: why" for each size that could not be measured
};

// Every size of `options` through `run_size` (default: benchmark_fusion_size in this process); a
// size whose working memory would not fit is not run. The machine (CPU, BLAS kernels, load
// average before and after) is in the report.
BenchmarkReport benchmark_fusion(const FusionBenchmarkOptions& options, const BenchmarkSizeRunner& run_size = {});

// benchmark_fusion's report as a text table per size (`efcnet bench --format table`).
std::string fusion_benchmark_table(const std::string& report_json);

// ---- a volume through `efcnet fuse`'s volume path, against the same slices as 2D pairs ----

struct VolumeBenchmarkOptions {
  int size = 256;   // the phantom's anatomical slices' side
  int slices = 64;  // its anatomical slices
  int threads = 0;  // as the report states them; the caller sets the runtime (runtime.h)
  Model model;      // resolve_model's (models.h)
};

// A phantom volume fused stage by stage as `efcnet fuse` runs it (read, resample + window +
// colour, slicing, network, write), each fused slice followed by the same slice fused as a 2D pair
// from PNG files, as fuse's image mode runs it. `progress` counts the volume's slices. JSON text.
std::string benchmark_volume_fusion(const VolumeBenchmarkOptions& options, const SliceProgress& progress = {});

}  // namespace efcnet
