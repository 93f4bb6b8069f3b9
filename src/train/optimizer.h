// The trainer's optimizer: Adam exactly as torch.optim.Adam computes it (no weight decay, no
// amsgrad), its moments saved and restored by name, and the learning-rate schedule.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "efcnet/train.h"
#include "efcnet/weights.h"

namespace efcnet::training {

class Adam {
 public:
  explicit Adam(std::vector<std::pair<std::string, torch::Tensor>> parameters);

  void zero_grad();
  void step(double lr);

  // "adam.steps", "adam.exp_avg.<parameter>", "adam.exp_avg_sq.<parameter>".
  void save_into(StateDict& state) const;
  // The entries save_into wrote, looked up by `entry`; c10::Error where a shape differs.
  void load_from(const std::function<torch::Tensor(const std::string&)>& entry);

  // Rank 0's moments and step count replace the other ranks' when a distributed run starts.
  std::vector<torch::Tensor> moments() const;
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }

 private:
  static constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
  std::vector<std::pair<std::string, torch::Tensor>> parameters_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  int64_t steps_ = 0;
};

// The learning rate of global step `step_index` (0-based) of `total_steps`.
double learning_rate(const TrainOptions& options, int64_t step_index, int64_t total_steps);

}  // namespace efcnet::training
