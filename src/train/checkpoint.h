// The trainer's checkpoints: <out_dir>/<prefix>_<epoch>.pth each epoch and training_state.pth
// (Adam's moments, epoch, step, and what a resumed run must share with the run so far), written
// atomically; and the refusal to overwrite a run, or the restore of its newest complete epoch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "efcnet/train.h"
#include "optimizer.h"

namespace efcnet::training {

// What a run's checkpoints hold, and what a resumed run must share with it.
struct CheckpointedRun {
  std::string prefix;  // "model" or "seem"
  int64_t kind;        // recorded in the state, so one kind's state is not resumed as the other
  torch::nn::Module* module;
  // Further options a resumed run must share: key, value, and the value that states written
  // before the key existed imply.
  struct Setting {
    std::string key;
    int64_t value, when_absent;
  };
  std::vector<Setting> settings;
};

std::string checkpoint_path(const std::string& dir, const CheckpointedRun& run, int epoch);

// Without options.resume, refuses an out_dir holding any file a run writes there: a
// <prefix>_<epoch>.pth checkpoint, the training state, loss.csv or loss.png (a run interrupted in
// its first epoch leaves only the log). Rank 0 calls it before reading the data, and again just
// before the first write. A missing out_dir holds nothing.
void refuse_existing_run(const std::string& prefix, const TrainOptions& options);

// Creates options.out_dir. Without options.resume, refuses a directory that holds a run; with
// it, restores the newest complete epoch's weights, Adam and `step` (after checking that data and
// options agree with the run so far). Returns the last finished epoch (0: start from the beginning).
int prepare_output(const CheckpointedRun& run, const TrainOptions& options, size_t samples, Adam& adam, int64_t& step);

// The weights of `epoch`, then the state that points at them.
void save_checkpoint(const CheckpointedRun& run, const TrainOptions& options, size_t samples, const Adam& adam,
                     int epoch, int64_t step);

}  // namespace efcnet::training
