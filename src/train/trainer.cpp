// The training loops of `efcnet train` and `efcnet train-seem` (spec section 5): data checked up
// front, Adam as PyTorch computes it, deterministic randomness per step (so a resumed run equals
// an uninterrupted one), atomic checkpoints every epoch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "efcnet/image.h"
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
};

Batch make_batch(const std::vector<Sample>& samples, const std::vector<size_t>& indices, const TrainOptions& options,
                 std::mt19937_64& rng, const torch::Device& device) {
  const cv::Size full = samples[indices[0]].functional.size();
  const int h = options.crop_height > 0 ? options.crop_height : full.height;
  const int w = options.crop_width > 0 ? options.crop_width : full.width;
  const bool paired = !samples[indices[0]].anatomical.empty();
  auto functional = torch::empty({static_cast<int64_t>(indices.size()), 1, h, w}, torch::kUInt8);
  auto anatomical = paired ? torch::empty_like(functional) : torch::Tensor();
  for (size_t b = 0; b < indices.size(); ++b) {
    const auto& s = samples[indices[b]];
    const int top = static_cast<int>(rng() % static_cast<uint64_t>(s.functional.rows - h + 1));
    const int left = static_cast<int>(rng() % static_cast<uint64_t>(s.functional.cols - w + 1));
    const cv::Rect window(left, top, w, h);
    cv::Mat(s.functional(window)).copyTo(cv::Mat(h, w, CV_8UC1, functional[b].data_ptr<uint8_t>()));
    if (paired) cv::Mat(s.anatomical(window)).copyTo(cv::Mat(h, w, CV_8UC1, anatomical[b].data_ptr<uint8_t>()));
  }
  const auto to_unit = [&](const torch::Tensor& t) { return t.to(device).to(torch::kFloat32) / 255.0f; };
  return {to_unit(functional), paired ? to_unit(anatomical) : torch::Tensor()};
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
  state.emplace_back("meta.epoch", torch::tensor(static_cast<int64_t>(epoch)));
  state.emplace_back("meta.step", torch::tensor(step));
  adam.save_into(state);
  save_state_dict(state, options.out_dir + "/" + kStateFile);
}

TrainingSummary run(const TrainingTask& task, const TrainOptions& options, const std::vector<Sample>& samples,
                    const torch::Device& device) {
  if (options.epochs < 1) throw TrainingError("--epochs must be at least 1");
  if (options.batch_size < 1) throw TrainingError("--batch-size must be at least 1");
  if (options.lr <= 0) throw TrainingError("--lr must be positive");
  if (samples.size() < static_cast<size_t>(options.batch_size)) {
    throw TrainingError("only " + std::to_string(samples.size()) + " samples for a batch of " +
                        std::to_string(options.batch_size) + " (the last partial batch is dropped)");
  }
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  for (const auto& p : task.module->named_parameters()) parameters.emplace_back(p.key(), p.value());
  Adam adam(parameters);
  int64_t step = 0;
  const int done_epochs = prepare_output(task, options, samples.size(), adam, step);

  const int64_t steps_per_epoch = static_cast<int64_t>(samples.size()) / options.batch_size;
  const int64_t total_steps = steps_per_epoch * options.epochs;
  LossLog log(options.out_dir, task.term_names);
  if (done_epochs > 0) log.restore(done_epochs);

  TrainingSummary summary;
  summary.first_epoch = done_epochs + 1;
  summary.last_epoch = done_epochs;
  const auto start = Clock::now();
  std::optional<ProgressBar> progress;
  if (options.progress && done_epochs < options.epochs) {
    progress.emplace(static_cast<size_t>((options.epochs - done_epochs) * steps_per_epoch));
  }
  for (int epoch = done_epochs + 1; epoch <= options.epochs; ++epoch) {
    const auto order = epoch_order(samples.size(), options.seed, epoch);
    for (int64_t i = 0; i < steps_per_epoch; ++i) {
      const auto step_start = Clock::now();
      const uint64_t step_seed = mix(mix(options.seed, static_cast<uint64_t>(epoch)), static_cast<uint64_t>(i));
      torch::manual_seed(step_seed);  // dropout, DropPath
      std::mt19937_64 crop_rng(mix(step_seed, 1));
      const std::vector<size_t> indices(order.begin() + i * options.batch_size, order.begin() + (i + 1) * options.batch_size);
      const Batch batch = make_batch(samples, indices, options, crop_rng, device);
      adam.zero_grad();
      auto terms = task.step(batch);
      if (!std::isfinite(terms.back())) {
        throw TrainingError("the loss became " + std::to_string(terms.back()) + " at epoch " + std::to_string(epoch) +
                            "; lower --lr (the last checkpoint is kept)");
      }
      adam.step(learning_rate(options, step, total_steps));
      ++step;
      ++summary.steps;
      log.append({epoch, static_cast<int>(step), std::move(terms),
                  std::chrono::duration<double>(Clock::now() - step_start).count()});
      log.write_csv();
      if (progress) progress->advance();
    }
    save_checkpoint(task, options, samples.size(), adam, epoch, step);
    log.write_plot();
    summary.last_epoch = epoch;
    summary.last_epoch_loss = log.epoch_mean_total(epoch);
    summary.last_checkpoint = checkpoint_path(options.out_dir, task, epoch);
    if (progress) {
      char line[256];
      std::snprintf(line, sizeof line, "epoch %d/%d: mean loss %.5f, saved %s", epoch, options.epochs,
                    summary.last_epoch_loss, summary.last_checkpoint.c_str());
      progress->message(line);
    }
  }
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

void set_threads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

}  // namespace

TrainingSummary train_network(const NetworkTrainOptions& options) {
  set_threads(options.threads);
  const torch::Device device = parse_device(options.device);
  if (options.seem_weights.empty()) throw TrainingError("SEEM weights are required (--seem-weights)");
  const auto samples = load_pairs(options);

  SmoothEdgeExtractor seem;
  seem->to(device);
  load_weights(*seem, options.seem_weights);
  seem->eval();  // frozen, as the reference trains
  torch::manual_seed(options.seed);  // the network's initial weights
  FusionNetwork network;
  network->to(device);
  if (!options.init_weights.empty()) load_weights(*network, options.init_weights);
  network->train();

  TrainingTask task{"model", 1, {"ssim_functional", "ssim_anatomical", "edge_functional", "edge_anatomical", "total"},
                    network.get(), [&](const Batch& batch) {
                      torch::Tensor s;
                      {
                        torch::NoGradGuard no_grad;
                        s = seem->forward(batch.functional);
                      }
                      const auto loss = fusion_loss(network->forward(s, batch.anatomical).fused, s, batch.anatomical);
                      loss.total.backward();
                      return std::vector<double>{loss.ssim_functional.item<double>(), loss.ssim_anatomical.item<double>(),
                                                 loss.edge_functional.item<double>(), loss.edge_anatomical.item<double>(),
                                                 loss.total.item<double>()};
                    }};
  return run(task, options, samples, device);
}

TrainingSummary train_seem(const SeemTrainOptions& options) {
  set_threads(options.threads);
  const torch::Device device = parse_device(options.device);
  const auto samples = load_functional(options);
  torch::manual_seed(options.seed);
  SmoothEdgeExtractor seem;
  seem->to(device);
  seem->train();
  TrainingTask task{"seem", 2, {"mse"}, seem.get(), [&](const Batch& batch) {
                      const auto loss = torch::mse_loss(seem->forward(batch.functional), seem_edge_target(batch.functional));
                      loss.backward();
                      return std::vector<double>{loss.item<double>()};
                    }};
  return run(task, options, samples, device);
}

}  // namespace efcnet
