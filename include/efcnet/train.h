// Training on CPU or GPU: the network (`efcnet train`) and SEEM (`efcnet train-seem`).
// LibTorch-free on purpose: the CLI only fills these options.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace efcnet {

class TrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class LrSchedule {
  constant,  // lr throughout (the reference)
  cosine,    // lr decays to final_lr over the planned epochs
};

struct TrainOptions {
  std::string out_dir;          // checkpoints, training state, loss.csv, loss.png
  int epochs = 100;
  int batch_size = 4;           // the last partial batch of an epoch is dropped, as the reference does
  double lr = 1e-4;             // Adam, betas 0.9/0.999, eps 1e-8, no weight decay
  LrSchedule lr_schedule = LrSchedule::constant;
  double final_lr = 1e-6;       // for LrSchedule::cosine
  int crop_height = 0;          // random crops of this size; 0 = the full image
  int crop_width = 0;
  uint64_t seed = 302;          // shuffling, crops and dropout all derive from it
  int threads = 0;              // LibTorch intra-op threads; 0 = all cores
  int limit = 0;                // use only the first N samples (sorted by name); 0 = all
  bool resume = false;          // continue from the newest complete checkpoint in out_dir
  std::string device = "cpu";
  bool progress = true;         // progress bar on stderr
};

// `efcnet train`: the fusion network, SEEM frozen in eval mode (spec section 5).
struct NetworkTrainOptions : TrainOptions {
  std::string anatomical_dir;
  std::string functional_dir;  // colour images contribute their Y plane, as in fusion
  std::string seem_weights;
  std::string init_weights;    // optional network weights to start from instead of random init
};

// `efcnet train-seem`: SEEM against the clipped Sobel magnitude of the functional image.
struct SeemTrainOptions : TrainOptions {
  std::string functional_dir;
  SeemTrainOptions() { batch_size = 32; }
};

struct TrainingSummary {
  int first_epoch = 0;          // 1 for a new run, N+1 when resumed after epoch N
  int last_epoch = 0;
  int64_t steps = 0;            // optimizer steps taken by this invocation
  double seconds = 0.0;
  double last_epoch_loss = 0.0; // mean total loss of the last epoch
  std::string last_checkpoint;
};

// Each epoch writes <out_dir>/model_<epoch>.pth (or seem_<epoch>.pth): a plain state dict with the
// reference's keys, readable by torch.load(weights_only=True), plus training_state.pth (Adam
// moments, epoch, step, options that must not change on resume). All writes are atomic.
TrainingSummary train_network(const NetworkTrainOptions& options);
TrainingSummary train_seem(const SeemTrainOptions& options);

enum class WeightsKind { network, seem };

// Reads a network or SEEM state dict (which one is told by its keys), checks it against the model
// (keys, shapes) and writes it again as a plain torch.save archive, optionally with float16
// storage (for shipping), or float32 (e.g. to turn a CUDA-saved file into a plain CPU one).
WeightsKind export_weights(const std::string& input, const std::string& output, bool half);

}  // namespace efcnet
