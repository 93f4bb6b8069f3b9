// Checkpoints and resume: atomic writes each epoch, refusals that name what differs.
#include "checkpoint.h"

#include <filesystem>
#include <regex>
#include <utility>

#include "efcnet/model.h"
#include "efcnet/weights.h"

namespace efcnet::training {
namespace {

namespace fs = std::filesystem;

constexpr const char* kStateFile = "training_state.pth";
constexpr int64_t kStateFormat = 1;

// Entries of the training state that must agree for a resumed run to replay the same randomness.
std::vector<std::pair<std::string, int64_t>> run_identity(const CheckpointedRun& run, const TrainOptions& options,
                                                          size_t samples) {
  return {{"meta.format", kStateFormat},
          {"meta.kind", run.kind},
          {"meta.seed", static_cast<int64_t>(options.seed)},
          {"meta.batch_size", options.batch_size},
          {"meta.samples", static_cast<int64_t>(samples)},
          {"meta.crop_height", options.crop_height},
          {"meta.crop_width", options.crop_width}};
}

}  // namespace

std::string checkpoint_path(const std::string& dir, const CheckpointedRun& run, int epoch) {
  return dir + "/" + run.prefix + "_" + std::to_string(epoch) + ".pth";
}

void refuse_existing_run(const std::string& prefix, const TrainOptions& options) {
  if (options.resume) return;
  const std::regex run_file(prefix + "_[0-9]+\\.pth|" + kStateFile + "|loss\\.csv|loss\\.png");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options.out_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, run_file)) {
      throw TrainingError(options.out_dir + " already holds a training run (" + name + "); set " +
                          option_name(options.option_name, "resume") + " to continue it, or choose another " +
                          option_name(options.option_name, "out_dir"));
    }
  }
}

int prepare_output(const CheckpointedRun& run, const TrainOptions& options, size_t samples, Adam& adam, int64_t& step) {
  const std::string& dir = options.out_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) throw TrainingError(dir + ": cannot create the output directory");
  if (!options.resume) {
    refuse_existing_run(run.prefix, options);
    return 0;
  }
  const std::string state_path = dir + "/" + kStateFile;
  const std::regex checkpoint_name(run.prefix + "_[0-9]+\\.pth");
  bool has_checkpoints = false;
  for (const auto& entry : fs::directory_iterator(dir)) {
    has_checkpoints |= std::regex_match(entry.path().filename().string(), checkpoint_name);
  }
  if (!fs::exists(state_path)) {
    if (has_checkpoints) throw TrainingError(state_path + ": missing, so the run in " + dir + " cannot be resumed");
    return 0;  // nothing to resume yet: start from the beginning
  }

  StateDict state;
  try {
    state = read_state_dict(state_path);
  } catch (const WeightsError& e) {
    throw TrainingError(std::string("the run cannot be resumed: ") + e.what());
  }
  const auto entry = [&](const std::string& key) -> torch::Tensor {
    for (const auto& [k, v] : state) {
      if (k == key) return v;
    }
    throw TrainingError(state_path + ": not a training state of this kind (no entry '" + key + "')");
  };
  for (const auto& [key, expected] : run_identity(run, options, samples)) {
    const int64_t stored = entry(key).item<int64_t>();
    if (stored != expected) {
      throw TrainingError(state_path + ": the run was started with " + option_name(options.option_name, key.substr(5)) +
                          " = " + std::to_string(stored) + ", now " + std::to_string(expected) +
                          "; continue it with the same data and options");
    }
  }
  // States written before distributed training lack these entries: one process, no sync_bn.
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
                        "; another world size would train on other batches than the run so far. Continue it on " +
                        std::to_string(trained_world) + " rank(s) (" +
                        option_name(options.option_name, "distributed.world_size") + ")");
  }
  if (entry_or("meta.sync_bn", 0) != (options.distributed.sync_bn ? 1 : 0)) {
    throw TrainingError(state_path + ": the run was trained " + (options.distributed.sync_bn ? "without" : "with") +
                        " " + option_name(options.option_name, "distributed.sync_bn") + "; continue it the same way");
  }
  for (const auto& setting : run.settings) {
    const int64_t stored = entry_or(setting.key, setting.when_absent);
    if (stored != setting.value) {
      throw TrainingError(state_path + ": the run was started with " +
                          option_name(options.option_name, setting.key.substr(5)) + " = " + std::to_string(stored) +
                          ", now " + std::to_string(setting.value) + "; continue it with the same options");
    }
  }
  const int epoch = static_cast<int>(entry("meta.epoch").item<int64_t>());
  step = entry("meta.step").item<int64_t>();
  const std::string model_path = checkpoint_path(dir, run, epoch);
  try {
    load_weights(*run.module, model_path);
  } catch (const WeightsError& e) {
    throw TrainingError(std::string("the run cannot be resumed: ") + e.what());
  }
  try {
    adam.load_from(entry);
  } catch (const c10::Error&) {
    throw TrainingError(state_path + ": optimizer moments do not match the model's parameters");
  }
  return epoch;
}

void save_checkpoint(const CheckpointedRun& run, const TrainOptions& options, size_t samples, const Adam& adam,
                     int epoch, int64_t step) {
  // The weights first, then the state that points at them: a crash in between leaves the previous
  // state, which still names a complete checkpoint.
  save_state_dict(module_state_dict(*run.module), checkpoint_path(options.out_dir, run, epoch));
  StateDict state;
  for (const auto& [key, value] : run_identity(run, options, samples)) state.emplace_back(key, torch::tensor(value));
  state.emplace_back("meta.world_size", torch::tensor(static_cast<int64_t>(options.distributed.world_size)));
  state.emplace_back("meta.sync_bn", torch::tensor(static_cast<int64_t>(options.distributed.sync_bn)));
  for (const auto& setting : run.settings) state.emplace_back(setting.key, torch::tensor(setting.value));
  state.emplace_back("meta.epoch", torch::tensor(static_cast<int64_t>(epoch)));
  state.emplace_back("meta.step", torch::tensor(step));
  adam.save_into(state);
  save_state_dict(state, options.out_dir + "/" + kStateFile);
}

}  // namespace efcnet::training
