// The memory estimate of a CPU training step, and the refusal of one that will not fit.
#include <algorithm>
#include <string>

#include "efcnet/runtime.h"
#include "efcnet/train.h"

namespace efcnet {
namespace {

struct StepMemory {
  int64_t fixed_bytes;      // the process, LibTorch, both models, Adam's moments
  int64_t bytes_per_pixel;  // per pixel of the batch (batch x height x width)
};

// Lines through train_step_bench's BM_TrainStep peaks at 4 x 64x256 and 4 x 256x256 (two threads),
// rounded up by about a tenth; docs/architecture.md ("Training memory") lists the measurements.
StepMemory step_memory(const TrainingStepShape& step) {
  constexpr int64_t kMiB = int64_t{1} << 20;
  const bool bfloat16 = step.precision == Precision::bfloat16;
  if (step.heap_keeps_every_freed_block) {
    return bfloat16 ? StepMemory{1659 * kMiB, 38400} : StepMemory{1382 * kMiB, 75600};
  }
  return bfloat16 ? StepMemory{1126 * kMiB, 23700} : StepMemory{1229 * kMiB, 39400};
}

std::string size_text(int64_t batch, int64_t height, int64_t width) {
  return std::to_string(batch) + " x " + std::to_string(width) + "x" + std::to_string(height);
}

}  // namespace

int64_t estimated_training_step_bytes(const TrainingStepShape& step) {
  const StepMemory memory = step_memory(step);
  return memory.fixed_bytes + step.batch * step.height * step.width * memory.bytes_per_pixel;
}

std::string training_memory_shortfall(const TrainingStepShape& step, int64_t available_bytes) {
  const int64_t needed = estimated_training_step_bytes(step);
  if (needed <= available_bytes) return {};
  const StepMemory memory = step_memory(step);
  const int64_t pixels_that_fit = std::max<int64_t>(0, available_bytes - memory.fixed_bytes) / memory.bytes_per_pixel;
  const int64_t batch_that_fits = pixels_that_fit / (step.height * step.width);
  const int64_t rows_that_fit = std::min(step.height, pixels_that_fit / (step.batch * step.width));
  std::string message = "a training step on " + size_text(step.batch, step.height, step.width) + " needs about " +
                        gibibytes(needed) + ", but only " + gibibytes(available_bytes) + " is available";
  std::string alternatives;
  if (batch_that_fits >= 1) alternatives = "batch size " + std::to_string(batch_that_fits);
  if (rows_that_fit >= 1) {
    alternatives += (alternatives.empty() ? "" : ", or ") + std::string("crops of ") + std::to_string(step.width) +
                    "x" + std::to_string(rows_that_fit);
  }
  return message +
         (alternatives.empty() ? "; not even one row of this width would fit" : "; " + alternatives + " would fit");
}

}  // namespace efcnet
