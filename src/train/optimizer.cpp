// Adam as torch.optim.Adam computes it, and the learning-rate schedule.
#include "optimizer.h"

#include <cmath>

namespace efcnet::training {

Adam::Adam(std::vector<std::pair<std::string, torch::Tensor>> parameters) : parameters_(std::move(parameters)) {
  for (const auto& p : parameters_) {
    exp_avg_.push_back(torch::zeros_like(p.second));
    exp_avg_sq_.push_back(torch::zeros_like(p.second));
  }
}

void Adam::zero_grad() {
  for (auto& p : parameters_) p.second.mutable_grad() = torch::Tensor();
}

void Adam::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double bias_correction1 = 1.0 - std::pow(kBeta1, static_cast<double>(steps_));
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(kBeta2, static_cast<double>(steps_)));
  for (size_t i = 0; i < parameters_.size(); ++i) {
    auto& param = parameters_[i].second;
    const auto& grad = param.grad();
    if (!grad.defined()) continue;
    exp_avg_[i].mul_(kBeta1).add_(grad, 1.0 - kBeta1);
    exp_avg_sq_[i].mul_(kBeta2).addcmul_(grad, grad, 1.0 - kBeta2);
    const auto denom = (exp_avg_sq_[i].sqrt() / bias_correction2_sqrt).add_(kEps);
    param.addcdiv_(exp_avg_[i], denom, -lr / bias_correction1);
  }
}

void Adam::save_into(StateDict& state) const {
  state.emplace_back("adam.steps", torch::tensor(steps_, torch::kInt64));
  for (size_t i = 0; i < parameters_.size(); ++i) {
    state.emplace_back("adam.exp_avg." + parameters_[i].first, exp_avg_[i]);
    state.emplace_back("adam.exp_avg_sq." + parameters_[i].first, exp_avg_sq_[i]);
  }
}

void Adam::load_from(const std::function<torch::Tensor(const std::string&)>& entry) {
  torch::NoGradGuard no_grad;
  steps_ = entry("adam.steps").item<int64_t>();
  for (size_t i = 0; i < parameters_.size(); ++i) {
    exp_avg_[i].copy_(entry("adam.exp_avg." + parameters_[i].first));
    exp_avg_sq_[i].copy_(entry("adam.exp_avg_sq." + parameters_[i].first));
  }
}

std::vector<torch::Tensor> Adam::moments() const {
  auto all = exp_avg_;
  all.insert(all.end(), exp_avg_sq_.begin(), exp_avg_sq_.end());
  return all;
}

double learning_rate(const TrainOptions& options, int64_t step_index, int64_t total_steps) {
  if (options.lr_schedule == LrSchedule::constant || total_steps <= 1) return options.lr;
  const double progress = static_cast<double>(step_index) / static_cast<double>(total_steps - 1);
  return options.final_lr + 0.5 * (options.lr - options.final_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace efcnet::training
