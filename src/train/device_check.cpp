// check_training_device (train.h): one eval-mode loss and its gradients on the training device
// against the CPU, so that a GPU build is known to compute what the CPU build (whose parity with
// the reference the test suite checks on the golden case) computes, before hours are spent on it.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <ATen/Context.h>

#include "efcnet/model.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"
#include "model/torch_error.h"
#include "precision.h"
#include "replicas.h"
#include "training_data.h"

namespace efcnet {
namespace {

using namespace training;

// TF32 is LibTorch's default for cuDNN convolutions on Ampere and later: ten-bit mantissas would
// fail a float32 comparison. Process-wide, so restored on the way out.
class Float32Arithmetic {
 public:
  Float32Arithmetic() : cudnn_(at::globalContext().allowTF32CuDNN()), cublas_(at::globalContext().allowTF32CuBLAS()) {
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
  }
  ~Float32Arithmetic() {
    at::globalContext().setAllowTF32CuDNN(cudnn_);
    at::globalContext().setAllowTF32CuBLAS(cublas_);
  }
  Float32Arithmetic(const Float32Arithmetic&) = delete;
  Float32Arithmetic& operator=(const Float32Arithmetic&) = delete;

 private:
  bool cudnn_, cublas_;
};

struct Evaluation {
  std::vector<double> terms;                       // the loss terms, the total last
  std::map<std::string, torch::Tensor> gradients;  // on the CPU
};

Evaluation evaluate_on(const torch::Device& device, const StateDict& network_state, const StateDict& seem_state,
                       const Batch& batch, const NetworkTrainOptions& options) {
  SmoothEdgeExtractor seem;
  seem->to(device);
  load_state_dict(*seem, seem_state, "the SEEM weights");
  seem->eval();
  FusionNetwork network;
  network->to(device);
  load_state_dict(*network, network_state, "the network weights");
  network->eval();  // no dropout: both devices see the same network
  const auto functional = batch.functional.to(device);
  torch::Tensor s;
  {
    torch::NoGradGuard no_grad;
    s = seem->forward(functional);
  }
  const auto loss = network_loss(*network, s, batch.anatomical.to(device), Precision::float32,
                                 {functional, options.intensity_weight, options.texture_weight});
  loss.total.backward();
  Evaluation result;
  for (const auto& term : {loss.ssim_functional, loss.ssim_anatomical, loss.edge_functional, loss.edge_anatomical,
                           loss.intensity, loss.texture, loss.total}) {
    if (term.defined()) result.terms.push_back(term.item<double>());
  }
  for (const auto& p : network->named_parameters()) {
    if (p.value().grad().defined()) result.gradients[p.key()] = p.value().grad().to(torch::kCPU);
  }
  return result;
}

// The largest so far, where NaN (a NaN or a missing gradient on one side) stays once seen.
bool keep_largest(double difference, double& largest) {
  if (std::isnan(largest) || difference <= largest) return false;
  largest = difference;
  return true;
}

DeviceCheck compare(const Evaluation& reference, const Evaluation& other) {
  DeviceCheck check;
  for (size_t i = 0; i < reference.terms.size(); ++i) {
    const double scale = std::max(std::abs(reference.terms[i]), 1e-12);
    keep_largest(std::abs(other.terms[i] - reference.terms[i]) / scale, check.largest_term_difference);
  }
  for (const auto& [name, gradient] : reference.gradients) {
    const double scale = std::max(gradient.abs().max().item<double>(), 1e-30);
    const auto found = other.gradients.find(name);
    const double difference =
        found == other.gradients.end() ? NAN : (found->second - gradient).abs().max().item<double>() / scale;
    if (keep_largest(difference, check.largest_gradient_difference)) check.worst_gradient = name;
  }
  check.passed = check.largest_term_difference <= DeviceCheck::kTermTolerance &&
                 check.largest_gradient_difference <= DeviceCheck::kGradientTolerance;
  return check;
}

DeviceCheck run_check(const NetworkTrainOptions& options) {
  check_loss_options(options);
  const torch::Device device = training_device(options);
  const auto samples = load_pairs(options);
  check_one_batch(samples.size(), options.batch_size, 1);
  std::vector<size_t> first(static_cast<size_t>(options.batch_size));
  for (size_t i = 0; i < first.size(); ++i) first[i] = i;
  std::mt19937_64 rng(options.seed);
  const Batch batch = make_batch(samples, first, options, rng, torch::kCPU);

  torch::manual_seed(options.seed);  // the weights the run would start from
  FusionNetwork network;
  if (!options.init_weights.empty()) load_weights(*network, options.init_weights);
  const StateDict network_state = module_state_dict(*network);
  const StateDict seem_state = read_state_dict(options.seem_weights);

  Float32Arithmetic float32;
  const Evaluation on_cpu = evaluate_on(torch::kCPU, network_state, seem_state, batch, options);
  const Evaluation on_device = evaluate_on(device, network_state, seem_state, batch, options);
  DeviceCheck check = compare(on_cpu, on_device);
  check.device = device.str();
  check.total_loss = on_device.terms.back();
  return check;
}

}  // namespace

DeviceCheck check_training_device(const NetworkTrainOptions& options) {
  try {
    return run_check(options);
  } catch (const c10::Error& e) {
    throw TrainingError(torch_message(e));
  }
}

}  // namespace efcnet
