// The training loops of `efcnet train` and `efcnet train-seem` (spec section 5): data checked up
// front, Adam as PyTorch computes it, deterministic randomness per step (so a resumed run equals
// an uninterrupted one), atomic checkpoints every epoch; data-parallel over c10d when the world
// has several ranks.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "efcnet/distributed.h"
#include "efcnet/image.h"
#include "efcnet/inference.h"
#include "efcnet/losses.h"
#include "efcnet/model.h"
#include "efcnet/pipeline.h"
#include "efcnet/progress.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"
#include "loss_log.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kStateFile = "training_state.pth";
constexpr int64_t kStateFormat = 1;
// Gradient buckets of this size split the network's 30 MB of gradients into a few all-reduces,
// the first of which start while backward is still computing the rest.
constexpr int64_t kBucketBytes = 4 << 20;

// ---- data ----

struct Sample {
  std::string name;
  cv::Mat functional;  // Y plane, CV_8UC1
  cv::Mat anatomical;  // CV_8UC1; empty for SEEM training
};

[[noreturn]] void refuse_data(const std::vector<std::string>& problems) {
  std::string message = "cannot start training, fix these first:";
  for (const auto& p : problems) message += "\n  " + p;
  throw TrainingError(message);
}

// Checks what every step will need, so that a bad file stops the run now, not in epoch 3.
void check_sizes(const std::vector<Sample>& samples, const TrainOptions& options, std::vector<std::string>& problems) {
  if (samples.empty()) return;
  const cv::Size first = samples.front().functional.size();
  for (const auto& s : samples) {
    const cv::Size size = s.functional.size();
    if (options.crop_height > 0) {
      if (size.height < options.crop_height || size.width < options.crop_width) {
        problems.push_back(s.name + ": " + std::to_string(size.width) + "x" + std::to_string(size.height) +
                           " is smaller than the crop " + std::to_string(options.crop_width) + "x" +
                           std::to_string(options.crop_height));
      }
    } else if (size != first) {
      problems.push_back(s.name + ": " + std::to_string(size.width) + "x" + std::to_string(size.height) + " differs from " +
                         samples.front().name + " (" + std::to_string(first.width) + "x" + std::to_string(first.height) +
                         "); full-image batches need one size, or pass --crop");
    }
  }
}

std::vector<Sample> load_pairs(const NetworkTrainOptions& options) {
  const auto pairing = pair_by_name(options.anatomical_dir, options.functional_dir);
  std::vector<std::string> problems;
  for (const auto& p : pairing.unpaired_anatomical) problems.push_back("unpaired: " + p);
  for (const auto& p : pairing.unpaired_functional) problems.push_back("unpaired: " + p);
  for (const auto& p : pairing.ambiguous) problems.push_back("ambiguous (same name, other extension): " + p);
  size_t count = pairing.pairs.size();
  if (options.limit > 0) count = std::min<size_t>(count, static_cast<size_t>(options.limit));
  std::vector<Sample> samples;
  for (size_t i = 0; i < count; ++i) {
    const auto& pair = pairing.pairs[i];
    try {
      Sample s{pair.name, functional_y_plane(read_functional(pair.functional)), read_anatomical(pair.anatomical)};
      if (s.functional.size() != s.anatomical.size()) {
        problems.push_back(pair.anatomical + " and " + pair.functional + ": image sizes differ");
        continue;
      }
      samples.push_back(std::move(s));
    } catch (const IoError& e) {
      problems.push_back(e.what());
    }
  }
  if (pairing.pairs.empty()) problems.push_back("no image pairs in " + options.anatomical_dir + " and " + options.functional_dir);
  check_sizes(samples, options, problems);
  if (!problems.empty()) refuse_data(problems);
  return samples;
}

std::vector<Sample> load_functional(const SeemTrainOptions& options) {
  if (!fs::is_directory(options.functional_dir)) throw TrainingError(options.functional_dir + ": not a directory");
  std::vector<std::string> paths;
  for (const auto& entry : fs::directory_iterator(options.functional_dir)) {
    const auto name = entry.path().filename().string();
    if (entry.is_regular_file() && name[0] != '.' && has_image_extension(name)) paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  if (options.limit > 0 && paths.size() > static_cast<size_t>(options.limit)) paths.resize(options.limit);
  std::vector<std::string> problems;
  if (paths.empty()) problems.push_back("no images in " + options.functional_dir);
  std::vector<Sample> samples;
  for (const auto& path : paths) {
    try {
      samples.push_back({path, functional_y_plane(read_functional(path)), cv::Mat()});
    } catch (const IoError& e) {
      problems.push_back(e.what());
    }
  }
  check_sizes(samples, options, problems);
  if (!problems.empty()) refuse_data(problems);
  return samples;
}

// ---- randomness: a pure function of (seed, epoch, step), so resuming replays it exactly ----

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL + (a << 6) + (a >> 2));
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ULL;
  return x ^ (x >> 29);
}

std::vector<size_t> epoch_order(size_t n, uint64_t seed, int epoch) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(mix(seed, static_cast<uint64_t>(epoch)));
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);  // Fisher-Yates
  return order;
}

// (B,1,h,w) float32 in [0,1] from the same random window of each sample's planes.
struct Batch {
  torch::Tensor functional, anatomical;
  std::vector<size_t> samples;    // which sample each row came from
  std::vector<cv::Rect> windows;  // and where in it
};

// uint8 samples as float32 in [0,1] on `device`.
torch::Tensor to_unit(const torch::Tensor& bytes, const torch::Device& device) {
  return bytes.to(device).to(torch::kFloat32) / 255.0f;
}

Batch make_batch(const std::vector<Sample>& samples, const std::vector<size_t>& indices, const TrainOptions& options,
                 std::mt19937_64& rng, const torch::Device& device) {
  const cv::Size full = samples[indices[0]].functional.size();
  const int h = options.crop_height > 0 ? options.crop_height : full.height;
  const int w = options.crop_width > 0 ? options.crop_width : full.width;
  const bool paired = !samples[indices[0]].anatomical.empty();
  auto functional = torch::empty({static_cast<int64_t>(indices.size()), 1, h, w}, torch::kUInt8);
  auto anatomical = paired ? torch::empty_like(functional) : torch::Tensor();
  std::vector<cv::Rect> windows;
  for (size_t b = 0; b < indices.size(); ++b) {
    const auto& s = samples[indices[b]];
    const int top = static_cast<int>(rng() % static_cast<uint64_t>(s.functional.rows - h + 1));
    const int left = static_cast<int>(rng() % static_cast<uint64_t>(s.functional.cols - w + 1));
    const cv::Rect window(left, top, w, h);
    windows.push_back(window);
    cv::Mat(s.functional(window)).copyTo(cv::Mat(h, w, CV_8UC1, functional[b].data_ptr<uint8_t>()));
    if (paired) cv::Mat(s.anatomical(window)).copyTo(cv::Mat(h, w, CV_8UC1, anatomical[b].data_ptr<uint8_t>()));
  }
  return {to_unit(functional, device), paired ? to_unit(anatomical, device) : torch::Tensor(), indices, std::move(windows)};
}

// ---- Adam, exactly as torch.optim.Adam (no weight decay, no amsgrad) ----

class Adam {
 public:
  Adam(std::vector<std::pair<std::string, torch::Tensor>> parameters) : parameters_(std::move(parameters)) {
    for (const auto& p : parameters_) {
      exp_avg_.push_back(torch::zeros_like(p.second));
      exp_avg_sq_.push_back(torch::zeros_like(p.second));
    }
  }

  void zero_grad() {
    for (auto& p : parameters_) p.second.mutable_grad() = torch::Tensor();
  }

  void step(double lr) {
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

  void save_into(StateDict& state) const {
    state.emplace_back("adam.steps", torch::tensor(steps_, torch::kInt64));
    for (size_t i = 0; i < parameters_.size(); ++i) {
      state.emplace_back("adam.exp_avg." + parameters_[i].first, exp_avg_[i]);
      state.emplace_back("adam.exp_avg_sq." + parameters_[i].first, exp_avg_sq_[i]);
    }
  }

  // Rank 0's moments and step count replace the other ranks' when a distributed run starts.
  std::vector<torch::Tensor> moments() const {
    auto all = exp_avg_;
    all.insert(all.end(), exp_avg_sq_.begin(), exp_avg_sq_.end());
    return all;
  }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }

  void load_from(const std::function<torch::Tensor(const std::string&)>& entry) {
    torch::NoGradGuard no_grad;
    steps_ = entry("adam.steps").item<int64_t>();
    for (size_t i = 0; i < parameters_.size(); ++i) {
      exp_avg_[i].copy_(entry("adam.exp_avg." + parameters_[i].first));
      exp_avg_sq_[i].copy_(entry("adam.exp_avg_sq." + parameters_[i].first));
    }
  }

 private:
  static constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
  std::vector<std::pair<std::string, torch::Tensor>> parameters_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  int64_t steps_ = 0;
};

// ---- the shared loop ----

struct TrainingTask {
  std::string checkpoint_prefix;  // "model" or "seem"
  int64_t kind;                   // recorded in the state, so one kind's state is not resumed as the other
  std::vector<std::string> term_names;
  torch::nn::Module* module;
  // Forward + backward for one batch; returns the logged terms (the last one is the total).
  std::function<std::vector<double>(const Batch&)> step;
  // Further options a resumed run must share: key, value, and the value that states written
  // before the key existed imply.
  struct Setting {
    std::string key;
    int64_t value, when_absent;
  };
  std::vector<Setting> settings;
};

// Entries of the training state that must agree for a resumed run to replay the same randomness.
std::vector<std::pair<std::string, int64_t>> run_identity(const TrainingTask& task, const TrainOptions& options, size_t samples) {
  return {{"meta.format", kStateFormat},       {"meta.kind", task.kind},
          {"meta.seed", static_cast<int64_t>(options.seed)}, {"meta.batch_size", options.batch_size},
          {"meta.samples", static_cast<int64_t>(samples)},  {"meta.crop_height", options.crop_height},
          {"meta.crop_width", options.crop_width}};
}

std::string checkpoint_path(const std::string& dir, const TrainingTask& task, int epoch) {
  return dir + "/" + task.checkpoint_prefix + "_" + std::to_string(epoch) + ".pth";
}

double learning_rate(const TrainOptions& options, int64_t step_index, int64_t total_steps) {
  if (options.lr_schedule == LrSchedule::constant || total_steps <= 1) return options.lr;
  const double progress = static_cast<double>(step_index) / static_cast<double>(total_steps - 1);
  return options.final_lr + 0.5 * (options.lr - options.final_lr) * (1.0 + std::cos(M_PI * progress));
}

// Refuses to overwrite another run, or restores the newest complete one; returns the last finished epoch.
int prepare_output(const TrainingTask& task, const TrainOptions& options, size_t samples, Adam& adam, int64_t& step) {
  const std::string& dir = options.out_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) throw TrainingError(dir + ": cannot create the output directory");
  const std::string state_path = dir + "/" + kStateFile;
  const std::regex checkpoint_name(task.checkpoint_prefix + "_[0-9]+\\.pth");
  bool has_checkpoints = false;
  for (const auto& entry : fs::directory_iterator(dir)) {
    has_checkpoints |= std::regex_match(entry.path().filename().string(), checkpoint_name);
  }
  if (!options.resume) {
    if (has_checkpoints || fs::exists(state_path)) {
      throw TrainingError(dir + " already holds a training run; pass --resume to continue it, or choose another --out-dir");
    }
    return 0;
  }
  if (!fs::exists(state_path)) {
    if (has_checkpoints) throw TrainingError(state_path + ": missing, so the run in " + dir + " cannot be resumed");
    return 0;  // nothing to resume yet: start from the beginning
  }

  StateDict state;
  try {
    state = read_state_dict(state_path);
  } catch (const WeightsError& e) {
    throw TrainingError(std::string("cannot resume: ") + e.what());
  }
  const auto entry = [&](const std::string& key) -> torch::Tensor {
    for (const auto& [k, v] : state) {
      if (k == key) return v;
    }
    throw TrainingError(state_path + ": not a training state of this kind (no entry '" + key + "')");
  };
  for (const auto& [key, expected] : run_identity(task, options, samples)) {
    const int64_t stored = entry(key).item<int64_t>();
    if (stored != expected) {
      throw TrainingError(state_path + ": the run was started with " + key.substr(5) + " = " + std::to_string(stored) +
                          ", now " + std::to_string(expected) + "; resume with the same data and options");
    }
  }
  // States written before distributed training lack these entries: one process, no --sync-bn.
  const auto entry_or = [&](const std::string& key, int64_t fallback) {
    for (const auto& [k, v] : state) {
      if (k == key) return v.item<int64_t>();
    }
    return fallback;
  };
  const int64_t trained_world = entry_or("meta.world_size", 1);
  if (trained_world != options.distributed.world_size) {
    throw TrainingError(state_path + ": the run was trained on " + std::to_string(trained_world) + " rank(s), now " +
                        std::to_string(options.distributed.world_size) +
                        "; another world size would train on other batches than the run so far. Resume it with a "
                        "world size of " + std::to_string(trained_world) + " (--nproc-per-node, --world-size or WORLD_SIZE)");
  }
  if (entry_or("meta.sync_bn", 0) != (options.distributed.sync_bn ? 1 : 0)) {
    throw TrainingError(state_path + ": the run was trained " + (options.distributed.sync_bn ? "without" : "with") +
                        " --sync-bn; resume it the same way");
  }
  for (const auto& setting : task.settings) {
    const int64_t stored = entry_or(setting.key, setting.when_absent);
    if (stored != setting.value) {
      throw TrainingError(state_path + ": the run was started with " + setting.key.substr(5) + " = " +
                          std::to_string(stored) + ", now " + std::to_string(setting.value) +
                          "; resume it with the same options");
    }
  }
  const int epoch = static_cast<int>(entry("meta.epoch").item<int64_t>());
  step = entry("meta.step").item<int64_t>();
  const std::string model_path = checkpoint_path(dir, task, epoch);
  try {
    load_weights(*task.module, model_path);
  } catch (const WeightsError& e) {
    throw TrainingError(std::string("cannot resume: ") + e.what());
  }
  try {
    adam.load_from(entry);
  } catch (const c10::Error&) {
    throw TrainingError(state_path + ": optimizer moments do not match the model's parameters");
  }
  return epoch;
}

void save_checkpoint(const TrainingTask& task, const TrainOptions& options, size_t samples, const Adam& adam, int epoch,
                     int64_t step) {
  // The weights first, then the state that points at them: a crash in between leaves the previous
  // state, which still names a complete checkpoint.
  save_state_dict(module_state_dict(*task.module), checkpoint_path(options.out_dir, task, epoch));
  StateDict state;
  for (const auto& [key, value] : run_identity(task, options, samples)) state.emplace_back(key, torch::tensor(value));
  state.emplace_back("meta.world_size", torch::tensor(static_cast<int64_t>(options.distributed.world_size)));
  state.emplace_back("meta.sync_bn", torch::tensor(static_cast<int64_t>(options.distributed.sync_bn)));
  for (const auto& setting : task.settings) state.emplace_back(setting.key, torch::tensor(setting.value));
  state.emplace_back("meta.epoch", torch::tensor(static_cast<int64_t>(epoch)));
  state.emplace_back("meta.step", torch::tensor(step));
  adam.save_into(state);
  save_state_dict(state, options.out_dir + "/" + kStateFile);
}

// Runs `setup` on every rank; when it fails on any rank, every rank stops with the reason instead
// of the others waiting for the failed one in their next collective until the timeout.
void agreed(DistributedGroup* group, const std::function<void()>& setup) {
  if (group == nullptr) return setup();
  std::string error;
  try {
    setup();
  } catch (const std::exception& e) {
    error = *e.what() ? e.what() : "unknown error";
  }
  group->agree(error);
}

// Names, sizes and pixels: every rank must shuffle and shard the same list.
uint64_t samples_digest(const std::vector<Sample>& samples) {
  std::vector<torch::Tensor> parts;
  const auto bytes_of = [](const cv::Mat& m) {
    const cv::Mat continuous = m.isContinuous() ? m : m.clone();
    return torch::from_blob(continuous.data, {static_cast<int64_t>(continuous.total() * continuous.elemSize())}, torch::kUInt8).clone();
  };
  for (const auto& s : samples) {
    parts.push_back(torch::from_blob(const_cast<char*>(s.name.data()), {static_cast<int64_t>(s.name.size())}, torch::kUInt8).clone());
    for (const cv::Mat* plane : {&s.functional, &s.anatomical}) {
      parts.push_back(torch::tensor({static_cast<int64_t>(plane->rows), static_cast<int64_t>(plane->cols)}));
      if (!plane->empty()) parts.push_back(bytes_of(*plane));
    }
  }
  return tensor_digest(parts);
}

std::vector<torch::Tensor> weight_tensors(const torch::nn::Module& module) {
  auto all = module.parameters();
  const auto buffers = module.buffers();
  all.insert(all.end(), buffers.begin(), buffers.end());
  return all;
}

// Every rank starts from rank 0's state (initial or resumed weights, optimizer moments, epoch and
// step), so the replicas are identical from the first step on.
void start_from_rank0(DistributedGroup& group, torch::nn::Module& module, Adam& adam, int& done_epochs, int64_t& step) {
  auto counters = torch::tensor({static_cast<int64_t>(done_epochs), step, adam.steps()});
  group.broadcast_from_rank0({counters});
  done_epochs = static_cast<int>(counters[0].item<int64_t>());
  step = counters[1].item<int64_t>();
  adam.set_steps(counters[2].item<int64_t>());
  auto state = weight_tensors(module);
  const auto moments = adam.moments();
  state.insert(state.end(), moments.begin(), moments.end());
  group.broadcast_from_rank0(state);
}

TrainingSummary run(const TrainingTask& task, const TrainOptions& options, const std::vector<Sample>& samples,
                    const torch::Device& device, DistributedGroup* group) {
  const int world = group ? group->world_size() : 1;
  const int rank = group ? group->rank() : 0;
  if (group) group->check_equal(samples_digest(samples), "training samples (names, sizes or pixels)");
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  for (const auto& p : task.module->named_parameters()) parameters.emplace_back(p.key(), p.value());
  Adam adam(parameters);
  int64_t step = 0;
  int done_epochs = 0;
  LossLog log(options.out_dir, task.term_names);
  agreed(group, [&] {
    if (options.epochs < 1) throw TrainingError("--epochs must be at least 1");
    if (options.batch_size < 1) throw TrainingError("--batch-size must be at least 1");
    if (options.lr <= 0) throw TrainingError("--lr must be positive");
    const size_t global_batch = static_cast<size_t>(options.batch_size) * world;
    if (samples.size() < global_batch) {
      throw TrainingError("only " + std::to_string(samples.size()) + " samples for a batch of " +
                          (world > 1 ? std::to_string(world) + " ranks x " : std::string()) +
                          std::to_string(options.batch_size) + " (the last partial batch is dropped)");
    }
    if (rank == 0) {
      done_epochs = prepare_output(task, options, samples.size(), adam, step);
      if (done_epochs > 0) log.restore(done_epochs);
    }
  });
  std::unique_ptr<GradientAverager> averager;
  if (group) {
    start_from_rank0(*group, *task.module, adam, done_epochs, step);
    averager = std::make_unique<GradientAverager>(*group, task.module->parameters(), kBucketBytes);
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
  std::optional<ProgressBar> progress;
  if (options.progress && rank == 0 && done_epochs < options.epochs) {
    progress.emplace(static_cast<size_t>((options.epochs - done_epochs) * steps_per_epoch));
  }
  try {
    for (int epoch = done_epochs + 1; epoch <= options.epochs; ++epoch) {
      const auto order = epoch_order(samples.size(), options.seed, epoch);
      for (int64_t i = 0; i < steps_per_epoch; ++i) {
        const auto step_start = Clock::now();
        const uint64_t step_seed = mix(mix(options.seed, static_cast<uint64_t>(epoch)), static_cast<uint64_t>(i));
        // Dropout and DropPath: rank 0 keeps the single-process stream, the others draw their own
        // (stream 1 is the crops').
        torch::manual_seed(rank == 0 ? step_seed : mix(step_seed, static_cast<uint64_t>(rank) + 1));
        std::mt19937_64 crop_rng(mix(step_seed, 1));
        // The crops one process would draw for the whole global batch: two draws per sample.
        crop_rng.discard(2ULL * static_cast<uint64_t>(options.batch_size) * static_cast<uint64_t>(rank));
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
                              "; lower --lr (the last checkpoint is kept)");
        }
        adam.step(learning_rate(options, step, total_steps));
        ++step;
        ++summary.steps;
        if (group && options.distributed.check_replicas) {
          group->check_equal(tensor_digest(task.module->parameters()), "parameters after step " + std::to_string(step));
        }
        if (rank == 0) {
          log.append({epoch, static_cast<int>(step), std::move(terms),
                      std::chrono::duration<double>(Clock::now() - step_start).count()});
          log.write_csv();
        }
        if (progress) progress->advance();
      }
      if (group) {
        // Without --sync-bn every rank's running statistics follow its own batches; the checkpoint
        // keeps rank 0's (as PyTorch's DDP does) and the other replicas continue from them.
        if (!options.distributed.sync_bn) group->broadcast_from_rank0(task.module->buffers());
        group->check_equal(tensor_digest(weight_tensors(*task.module)), "weights after epoch " + std::to_string(epoch));
      }
      summary.last_epoch = epoch;
      if (rank != 0) continue;
      save_checkpoint(task, options, samples.size(), adam, epoch, step);
      log.write_plot();
      summary.last_epoch_loss = log.epoch_mean_total(epoch);
      summary.last_checkpoint = checkpoint_path(options.out_dir, task, epoch);
      if (progress) {
        char line[256];
        std::snprintf(line, sizeof line, "epoch %d/%d: mean loss %.5f, saved %s", epoch, options.epochs,
                      summary.last_epoch_loss, summary.last_checkpoint.c_str());
        progress->message(line);
      }
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

// The distributed side of a run; none for a single process.
std::unique_ptr<DistributedGroup> join_group(const TrainOptions& options, const torch::Device& device) {
  if (options.distributed.world_size == 1 && options.distributed.rank == 0) return nullptr;
  return std::make_unique<DistributedGroup>(options.distributed, device);
}

// Each rank of a host takes its own GPU.
torch::Device training_device(const TrainOptions& options) {
  if (options.distributed.world_size > 1 && options.device == "cuda") {
    return parse_device("cuda:" + std::to_string(options.distributed.local_rank));
  }
  return parse_device(options.device);
}


}  // namespace

TrainingSummary train_network(const NetworkTrainOptions& options) {
  const torch::Device device = training_device(options);
  if (options.seem_weights.empty()) throw TrainingError("SEEM weights are required (--seem-weights)");
  const auto group = join_group(options, device);
  std::vector<Sample> samples;
  SmoothEdgeExtractor seem{nullptr};
  FusionNetwork network{nullptr};
  std::vector<torch::Tensor> edge_maps;  // SEEM of each whole functional image (SEEM is frozen)
  const bool whole_image_maps = options.seem_on_whole_images && options.crop_height > 0;
  agreed(group.get(), [&] {
    samples = load_pairs(options);
    seem = SmoothEdgeExtractor();
    seem->to(device);
    load_weights(*seem, options.seem_weights);
    seem->eval();  // frozen, as the reference trains
    if (whole_image_maps) {
      torch::NoGradGuard no_grad;
      for (const Sample& sample : samples) {
        const cv::Mat& plane = sample.functional;
        const auto bytes = torch::from_blob(plane.data, {1, 1, plane.rows, plane.cols}, torch::kUInt8);
        edge_maps.push_back(seem->forward(to_unit(bytes, device)));
      }
    }
    torch::manual_seed(options.seed);  // the network's initial weights
    network = FusionNetwork();
    network->to(device);
    if (!options.init_weights.empty()) load_weights(*network, options.init_weights);
    network->train();
  });
  std::optional<BatchNormOverride> synchronised_batch_norm;
  if (group && options.distributed.sync_bn) {
    synchronised_batch_norm.emplace([&group](torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
      return sync_batch_norm(*group, bn, x);
    });
  }

  TrainingTask task{"model", 1, {"ssim_functional", "ssim_anatomical", "edge_functional", "edge_anatomical", "total"},
                    network.get(), [&](const Batch& batch) {
                      torch::Tensor s;
                      {
                        torch::NoGradGuard no_grad;
                        if (whole_image_maps) {
                          std::vector<torch::Tensor> crops;
                          for (size_t b = 0; b < batch.samples.size(); ++b) {
                            const cv::Rect& r = batch.windows[b];
                            crops.push_back(edge_maps[batch.samples[b]].narrow(2, r.y, r.height).narrow(3, r.x, r.width));
                          }
                          s = torch::cat(crops);
                        } else {
                          s = seem->forward(batch.functional);
                        }
                      }
                      const auto loss = fusion_loss(network->forward(s, batch.anatomical).fused, s, batch.anatomical);
                      loss.total.backward();
                      return std::vector<double>{loss.ssim_functional.item<double>(), loss.ssim_anatomical.item<double>(),
                                                 loss.edge_functional.item<double>(), loss.edge_anatomical.item<double>(),
                                                 loss.total.item<double>()};
                    },
                    {}};
  // States written before this setting existed come from runs that ran SEEM on their crops.
  task.settings.push_back({"meta.seem_on_whole_images", whole_image_maps ? 1 : 0, 0});
  return run(task, options, samples, device, group.get());
}

TrainingSummary train_seem(const SeemTrainOptions& options) {
  const torch::Device device = training_device(options);
  if (options.distributed.sync_bn) {
    throw TrainingError("--sync-bn is for efcnet train: SEEM's BatchNorm layers have no synchronised variant");
  }
  const auto group = join_group(options, device);
  std::vector<Sample> samples;
  SmoothEdgeExtractor seem{nullptr};
  agreed(group.get(), [&] {
    samples = load_functional(options);
    torch::manual_seed(options.seed);
    seem = SmoothEdgeExtractor();
    seem->to(device);
    seem->train();
  });
  TrainingTask task{"seem", 2, {"mse"}, seem.get(), [&](const Batch& batch) {
                      const auto loss = torch::mse_loss(seem->forward(batch.functional), seem_edge_target(batch.functional));
                      loss.backward();
                      return std::vector<double>{loss.item<double>()};
                    },
                    {}};
  return run(task, options, samples, device, group.get());
}

}  // namespace efcnet
