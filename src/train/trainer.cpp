// The training loops of `efcnet train` and `efcnet train-seem` (spec section 5): the shared loop
// over epochs and steps, and the two tasks it runs. Its parts are beside it: training_data (samples
// checked up front, batches), randomness (a pure function of seed, epoch and step, so a resumed run
// equals an uninterrupted one), optimizer (Adam as PyTorch computes it), checkpoint (atomic
// checkpoints every epoch, resume), replicas (data-parallel glue when the world has several ranks)
// and precision (the forward pass under bfloat16 autocast).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "efcnet/model.h"
#include "efcnet/runtime.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"
#include "loss_log.h"
#include "model/torch_error.h"
#include "optimizer.h"
#include "precision.h"
#include "randomness.h"
#include "replicas.h"
#include "train/distributed.h"
#include "train/losses.h"
#include "training_data.h"

namespace efcnet {

using namespace training;

namespace {

using Clock = std::chrono::steady_clock;

// Gradient buckets of this size split the network's 30 MB of gradients into a few all-reduces,
// the first of which start while backward is still computing the rest.
constexpr int64_t kBucketBytes = 4 << 20;

struct TrainingTask {
  CheckpointedRun checkpoints;
  std::vector<std::string> term_names;
  // Forward + backward for one batch; returns the logged terms (the last one is the total).
  std::function<std::vector<double>(const Batch&)> step;
};

// What a resumed run must share with the run so far besides its data: a precision switched midway
// would not replay the same steps. States written before the setting existed are float32 runs.
CheckpointedRun::Setting precision_setting(const TrainOptions& options) {
  return {"meta.bfloat16", options.precision == Precision::bfloat16 ? 1 : 0, 0};
}

// Every weight finite after a step, checked before it is logged or saved: a step that overflows
// (too high an lr) is named instead of checkpointed, so the last good checkpoint stays. One
// reduction per tensor and one read back per step.
void check_finite_weights(const torch::nn::Module& module, int epoch, int64_t step, const std::string& lr_name) {
  torch::NoGradGuard no_grad;
  std::vector<std::pair<std::string, torch::Tensor>> weights;
  for (const auto& p : module.named_parameters()) weights.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers()) {
    if (b.value().is_floating_point()) weights.emplace_back(b.key(), b.value());
  }
  std::vector<torch::Tensor> finite;
  for (const auto& w : weights) finite.push_back(torch::isfinite(w.second).all());
  if (torch::stack(finite).all().item<bool>()) return;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!finite[i].item<bool>()) {
      throw TrainingError("'" + weights[i].first + "' holds NaN or infinite values after step " + std::to_string(step) +
                          " (epoch " + std::to_string(epoch) + "); lower " + lr_name +
                          " (the last checkpoint is kept)");
    }
  }
}

TrainingSummary run(const TrainingTask& task, const TrainOptions& options, const std::vector<Sample>& samples,
                    const torch::Device& device, DistributedGroup* group) {
  const int world = group ? group->world_size() : 1;
  const int rank = group ? group->rank() : 0;
  torch::nn::Module& module = *task.checkpoints.module;
  if (group) group->check_equal(samples_digest(samples), "training samples (names, sizes or pixels)");
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  for (const auto& p : module.named_parameters()) parameters.emplace_back(p.key(), p.value());
  Adam adam(parameters);
  int64_t step = 0;
  int done_epochs = 0;
  LossLog log(options.out_dir, task.term_names);
  agreed(group, [&] {
    const auto name = [&options](std::string_view field) { return option_name(options.option_name, field); };
    if (options.epochs < 1) throw TrainingError(name("epochs") + " must be at least 1");
    if (options.batch_size < 1) throw TrainingError(name("batch_size") + " must be at least 1");
    if (options.lr <= 0) throw TrainingError(name("lr") + " must be positive");
    check_one_batch(samples.size(), options.batch_size, world);
    if (rank == 0) {
      done_epochs = prepare_output(task.checkpoints, options, samples.size(), adam, step);
      log.open(done_epochs);
    }
  });
  std::unique_ptr<GradientAverager> averager;
  if (group) {
    start_from_rank0(*group, module, adam, done_epochs, step);
    averager = std::make_unique<GradientAverager>(*group, module.parameters(), kBucketBytes);
  }

  // Sharding: step i of an epoch trains on the global batch order[i*W*B, (i+1)*W*B) of the epoch's
  // shuffled order (the same on every rank); rank r takes the contiguous slice of B starting at
  // (i*W + r)*B. One rank is the single-process run.
  const int64_t steps_per_epoch = static_cast<int64_t>(samples.size()) / (options.batch_size * world);
  const int64_t total_steps = steps_per_epoch * options.epochs;

  TrainingSummary summary;
  summary.first_epoch = done_epochs + 1;
  summary.last_epoch = done_epochs;
  const auto start = Clock::now();
  const auto report = [&options, rank](TrainingProgress progress) {
    if (options.progress && rank == 0) options.progress(progress);
  };
  const int64_t run_steps = (options.epochs - done_epochs) * steps_per_epoch;
  try {
    for (int epoch = done_epochs + 1; epoch <= options.epochs; ++epoch) {
      const auto order = epoch_order(samples.size(), options.seed, epoch);
      for (int64_t i = 0; i < steps_per_epoch; ++i) {
        const auto step_start = Clock::now();
        std::mt19937_64 crop_rng = seed_step(options.seed, epoch, i, rank, options.batch_size);
        const auto first = order.begin() + (i * world + rank) * options.batch_size;
        const std::vector<size_t> indices(first, first + options.batch_size);
        const Batch batch = make_batch(samples, indices, options, crop_rng, device);
        adam.zero_grad();
        if (averager) averager->begin_step();
        auto terms = task.step(batch);
        if (group) {
          averager->finish_step();
          auto total = torch::tensor(terms, torch::kDouble).to(device);
          group->all_reduce_sum(total);
          total = total.cpu() / world;
          terms.assign(total.data_ptr<double>(), total.data_ptr<double>() + total.numel());
        }
        if (!std::isfinite(terms.back())) {
          throw TrainingError("the loss became " + std::to_string(terms.back()) + " at epoch " + std::to_string(epoch) +
                              "; lower " + option_name(options.option_name, "lr") + " (the last checkpoint is kept)");
        }
        adam.step(learning_rate(options, step, total_steps));
        ++step;
        ++summary.steps;
        check_finite_weights(module, epoch, step, option_name(options.option_name, "lr"));
        if (group && options.distributed.check_replicas) {
          group->check_equal(tensor_digest(module.parameters()), "parameters after step " + std::to_string(step));
        }
        if (rank == 0) {
          log.append({epoch, static_cast<int>(step), std::move(terms),
                      std::chrono::duration<double>(Clock::now() - step_start).count()});
        }
        TrainingProgress done;
        done.steps_done = summary.steps;
        done.steps_total = run_steps;
        report(done);
      }
      if (group) {
        // Without sync_bn every rank's running statistics follow its own batches; the checkpoint
        // keeps rank 0's (as PyTorch's DDP does) and the other replicas continue from them.
        if (!options.distributed.sync_bn) group->broadcast_from_rank0(module.buffers());
        group->check_equal(tensor_digest(weight_tensors(module)), "weights after epoch " + std::to_string(epoch));
      }
      summary.last_epoch = epoch;
      if (rank != 0) continue;
      log.sync();
      save_checkpoint(task.checkpoints, options, samples.size(), adam, epoch, step);
      log.write_plot();
      summary.last_epoch_loss = log.epoch_mean_total(epoch);
      summary.last_checkpoint = checkpoint_path(options.out_dir, task.checkpoints, epoch);
      TrainingProgress saved;
      saved.kind = TrainingProgress::Kind::epoch_done;
      saved.steps_done = summary.steps;
      saved.steps_total = run_steps;
      saved.epoch = epoch;
      saved.epochs = options.epochs;
      saved.mean_loss = summary.last_epoch_loss;
      saved.checkpoint = summary.last_checkpoint;
      report(saved);
    }
    // Nobody reports success before rank 0 has written the last checkpoint.
    if (group) group->barrier();
  } catch (const DistributedFault&) {
    throw;
  } catch (const std::exception& e) {
    if (group) group->post_error(e.what());
    throw;
  }
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (group) summary.bytes_all_reduced = group->bytes_all_reduced();
  return summary;
}

// Before any work: a step that would need more than MemAvailable (estimated_training_step_bytes).
void refuse_step_beyond_memory(const NetworkTrainOptions& options, const Sample& first) {
  const auto [height, width] = step_image_size(first, options);
  const int64_t available = available_memory_bytes();
  if (available < 0) return;  // no /proc/meminfo
  const TrainingStepShape step{options.batch_size, height, width, options.precision, heap_keeps_every_freed_block()};
  const auto shortfall = training_memory_shortfall(step, available);
  if (!shortfall.empty()) throw TrainingError(shortfall + " (MemAvailable)");
}

TrainingSummary network_training(const NetworkTrainOptions& options) {
  const torch::Device device = training_device(options);
  check_precision(options, device);
  check_loss_options(options);
  if (options.freeze_batchnorm_statistics && options.init_weights.empty()) {
    throw TrainingError(option_name(options.option_name, "freeze_batchnorm_statistics") + " needs " +
                        option_name(options.option_name, "init_weights") +
                        ": a new network's running statistics are those of no data");
  }
  if (options.freeze_batchnorm_statistics && options.distributed.sync_bn) {
    throw TrainingError(option_name(options.option_name, "freeze_batchnorm_statistics") + " and " +
                        option_name(options.option_name, "distributed.sync_bn") +
                        " exclude each other: frozen BatchNorm "
                        "layers take no batch statistics to synchronise");
  }
  const auto group = join_group(options, device);
  std::vector<Sample> samples;
  SmoothEdgeExtractor seem{nullptr};
  FusionNetwork network{nullptr};
  std::vector<torch::Tensor> edge_maps;  // SEEM of each whole functional image (SEEM is frozen)
  const bool whole_image_maps = options.seem_on_whole_images && options.crop_height > 0;
  agreed(group.get(), [&] {
    if (!group || group->rank() == 0) refuse_existing_run("model", options);
    samples = load_pairs(options);
    if (device.is_cpu()) refuse_step_beyond_memory(options, samples.front());
    seem = SmoothEdgeExtractor();
    seem->to(device);
    load_weights(*seem, options.seem_weights);
    seem->eval();  // frozen, as the reference trains
    if (whole_image_maps) {
      torch::NoGradGuard no_grad;
      for (const Sample& sample : samples) {
        edge_maps.push_back(seem->forward(to_unit(sample.functional.unsqueeze(0).unsqueeze(0), device)));
      }
    }
    torch::manual_seed(options.seed);  // the network's initial weights
    network = FusionNetwork();
    network->to(device);
    if (!options.init_weights.empty()) load_weights(*network, options.init_weights);
    network->train();
    if (options.freeze_batchnorm_statistics) {
      for (const auto& module : network->modules(/*include_self=*/false)) {
        if (module->as<torch::nn::BatchNorm2dImpl>() != nullptr) module->eval();
      }
    }
  });
  std::optional<BatchNormOverride> synchronised_batch_norm;
  if (group && options.distributed.sync_bn) {
    synchronised_batch_norm.emplace(
        [&group](torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) { return sync_batch_norm(*group, bn, x); });
  }

  TrainingTask task;
  // States written before seem_on_whole_images existed come from runs that ran SEEM on their crops.
  task.checkpoints = {"model",
                      1,
                      network.get(),
                      {{"meta.seem_on_whole_images", whole_image_maps ? 1 : 0, 0},
                       precision_setting(options),
                       {"meta.intensity_weight_millionths", std::llround(options.intensity_weight * 1e6), 0},
                       {"meta.texture_weight_millionths", std::llround(options.texture_weight * 1e6), 0},
                       {"meta.freeze_batchnorm_statistics", options.freeze_batchnorm_statistics ? 1 : 0, 0}}};
  const bool intensity_term = options.intensity_weight > 0.0, texture_term = options.texture_weight > 0.0;
  task.term_names = {"ssim_functional", "ssim_anatomical", "edge_functional", "edge_anatomical"};
  if (intensity_term) task.term_names.push_back("intensity");
  if (texture_term) task.term_names.push_back("texture");
  task.term_names.push_back("total");
  task.step = [&](const Batch& batch) {
    torch::Tensor s;
    {
      torch::NoGradGuard no_grad;
      if (whole_image_maps) {
        std::vector<torch::Tensor> crops;
        for (size_t b = 0; b < batch.samples.size(); ++b) {
          const Window& r = batch.windows[b];
          crops.push_back(edge_maps[batch.samples[b]].narrow(2, r.top, r.height).narrow(3, r.left, r.width));
        }
        s = torch::cat(crops);
      } else {
        s = seem->forward(batch.functional);
      }
    }
    const auto loss = network_loss(*network, s, batch.anatomical, options.precision,
                                   {batch.functional, options.intensity_weight, options.texture_weight});
    loss.total.backward();
    std::vector<double> terms{loss.ssim_functional.item<double>(), loss.ssim_anatomical.item<double>(),
                              loss.edge_functional.item<double>(), loss.edge_anatomical.item<double>()};
    if (intensity_term) terms.push_back(loss.intensity.item<double>());
    if (texture_term) terms.push_back(loss.texture.item<double>());
    terms.push_back(loss.total.item<double>());
    return terms;
  };
  return run(task, options, samples, device, group.get());
}

TrainingSummary seem_training(const SeemTrainOptions& options) {
  const torch::Device device = training_device(options);
  check_precision(options, device);
  if (options.distributed.sync_bn) {
    throw TrainingError(option_name(options.option_name, "distributed.sync_bn") +
                        " is for the network's training: SEEM's BatchNorm layers have no synchronised variant");
  }
  const auto group = join_group(options, device);
  std::vector<Sample> samples;
  SmoothEdgeExtractor seem{nullptr};
  agreed(group.get(), [&] {
    if (!group || group->rank() == 0) refuse_existing_run("seem", options);
    samples = load_functional(options);
    torch::manual_seed(options.seed);
    seem = SmoothEdgeExtractor();
    seem->to(device);
    seem->train();
  });
  TrainingTask task;
  task.checkpoints = {"seem", 2, seem.get(), {precision_setting(options)}};
  task.term_names = {"mse"};
  task.step = [&](const Batch& batch) {
    const auto loss = seem_loss(*seem, batch.functional, options.precision);
    loss.backward();
    return std::vector<double>{loss.item<double>()};
  };
  return run(task, options, samples, device, group.get());
}

// LibTorch's errors (a kernel missing for a dtype or device, say) leave the library as one line.
TrainingSummary with_one_line_torch_errors(const std::function<TrainingSummary()>& train) {
  try {
    return train();
  } catch (const c10::Error& e) {
    throw TrainingError(torch_message(e));
  }
}

}  // namespace

TrainingSummary train_network(const NetworkTrainOptions& options) {
  return with_one_line_torch_errors([&] { return network_training(options); });
}

TrainingSummary train_seem(const SeemTrainOptions& options) {
  return with_one_line_torch_errors([&] { return seem_training(options); });
}

}  // namespace efcnet
