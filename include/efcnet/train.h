// Training on CPU or GPU: the network (`efcnet train`) and SEEM (`efcnet train-seem`).
// LibTorch-free on purpose: the CLI only fills these options.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "efcnet/error.h"
#include "efcnet/inference_options.h"

namespace efcnet {

class TrainingError : public Error {
 public:
  using Error::Error;
};

enum class LrSchedule {
  constant,  // lr throughout (the reference)
  cosine,    // lr decays to final_lr over the planned epochs
};

// Data-parallel training: one process per rank, each training on its own shard of every epoch's
// shuffled order, gradients averaged over the ranks after every step (c10d: Gloo on CPU, NCCL on
// CUDA where LibTorch has it). World size 1 is the plain single-process run.
struct DistributedOptions {
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;                     // this host's rank index: picks cuda:<local_rank>
  std::string master_addr = "127.0.0.1";  // rank 0 hosts the rendezvous (a TCPStore) here
  int master_port = 29500;
  double timeout_seconds = 300;  // a peer silent this long ends every rank, naming it
  // torchrun's agent may host the TCPStore at the master address itself (it then sets
  // TORCHELASTIC_USE_AGENT_STORE=True): every rank only connects, with keys apart per restart.
  bool launcher_hosts_store = false;
  int restart_count = 0;
  bool sync_bn = false;         // BatchNorm statistics over every rank's batch
  bool check_replicas = false;  // verify bit-identical parameters after every step
};

// The ranks of this host, started as torchrun starts them (launch_local_ranks).
struct LocalLaunch {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr;  // empty: 127.0.0.1 on a free port (one host only)
  int master_port = 0;
  OptionNamer option_name{};  // error.h
};

// Runs `executable` with `args` (its argv, argv[0] included) once per local rank, with the
// torchrun variables set (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR,
// MASTER_PORT), and waits for them. When one fails, `on_message` says which and the others are
// stopped (SIGTERM, then SIGKILL after a grace period); SIGINT, SIGTERM and SIGHUP that this
// process receives meanwhile are passed on to the ranks. Returns the first failure's exit code
// (128 + signal for a rank killed by a signal), or 0. Throws OptionError for a launch that cannot
// work. A rank never outlives this process.
int launch_local_ranks(const LocalLaunch& launch, const std::string& executable, const std::vector<std::string>& args,
                       const std::function<void(const std::string&)>& on_message = {});

// HOST:PORT (an IPv6 host in brackets) as rank 0's address and port. Throws OptionError naming
// `option`.
std::pair<std::string, int> parse_master_address(const std::string& text, const std::string& option);

// The DistributedOptions fields a caller set itself; read_torchrun_environment leaves them.
struct GivenDistributedFields {
  bool world_size = false, rank = false, master = false;
};

// torchrun's variables (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
// TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT) into `options`, but for the fields
// `given`: how a rank that torchrun or launch_local_ranks started learns its place. Returns
// LOCAL_WORLD_SIZE (1 when unset): the ranks sharing this host. Throws OptionError naming a
// variable that is not a non-negative integer.
int read_torchrun_environment(DistributedOptions& options, const GivenDistributedFields& given);

// Whether this build can train on several ranks (it needs c10d's Gloo headers at build time).
bool distributed_training_available();

// Whether this CPU trains in Precision::bfloat16: it needs AVX-512 BF16 or AMX (a cuda device
// needs neither).
bool bfloat16_training_supported();

// Upper estimate of the resident memory of a process taking CPU training steps of the fusion
// network on `batch` samples of height x width (the lean training memory of model.h; LibTorch,
// the models and Adam's moments included), from train_step_bench's peaks (docs/architecture.md,
// "Training memory"). A heap that keeps every freed block (runtime.h, as `efcnet train` has it)
// spares the page faults of each step's fresh tensors, about 3x the speed at 256x256, but grows
// to about twice the step's live memory.
struct TrainingStepShape {
  int64_t batch = 4;
  int64_t height = 0;
  int64_t width = 0;
  Precision precision = Precision::float32;
  bool heap_keeps_every_freed_block = false;
};
int64_t estimated_training_step_bytes(const TrainingStepShape& step);

// Empty when that estimate fits in `available_bytes`; otherwise one line saying what the step
// needs, what is available, and the largest batch and the largest crop height at this width that
// would fit (train_network refuses such a run before it starts, with MemAvailable).
std::string training_memory_shortfall(const TrainingStepShape& step, int64_t available_bytes);

// What a training run reports as it goes (rank 0 only).
struct TrainingProgress {
  enum class Kind {
    step_done,   // `steps_done` of this run's `steps_total` (a resumed run counts from where it resumed)
    epoch_done,  // `epoch` of `epochs` checkpointed: `mean_loss` (the epoch's mean total loss), `checkpoint`
  } kind = Kind::step_done;
  int64_t steps_done = 0, steps_total = 0;
  int epoch = 0, epochs = 0;
  double mean_loss = 0;
  std::string checkpoint;
};

struct TrainOptions {
  std::string out_dir;  // checkpoints, training state, loss.csv, loss.png
  int epochs = 100;
  int batch_size = 4;  // the last partial batch of an epoch is dropped, as the reference does
  double lr = 1e-4;    // Adam, betas 0.9/0.999, eps 1e-8, no weight decay
  LrSchedule lr_schedule = LrSchedule::constant;
  double final_lr = 1e-6;  // for LrSchedule::cosine
  int crop_height = 0;     // random crops of this size; 0 = the full image
  int crop_width = 0;
  uint64_t seed = 302;  // shuffling, crops and dropout all derive from it
  int limit = 0;        // use only the first N samples (sorted by name); 0 = all
  bool resume = false;  // continue from the newest complete checkpoint in out_dir
  std::string device = "cpu";
  // bfloat16: the forward pass under LibTorch's autocast (convolutions and matmuls in bfloat16 on
  // bfloat16 copies of the weights), the loss in float32; weights, gradients, Adam's moments and
  // the checkpoints stay float32. An OptionError on a CPU without bfloat16_training_supported().
  Precision precision = Precision::float32;
  // Called on rank 0 after each step and each epoch's checkpoint; empty: nothing is reported (the
  // library prints nothing itself).
  std::function<void(const TrainingProgress&)> progress;
  // How the caller's user names these fields (error.h); messages about an option name it so.
  OptionNamer option_name{};
  // batch_size is per rank: a step trains on world_size x batch_size samples. Only rank 0 writes
  // out_dir (checkpoints, loss.csv with losses averaged over the ranks, loss.png, progress bar).
  DistributedOptions distributed;
};

// `efcnet train`: the fusion network, SEEM frozen in eval mode (spec section 5).
struct NetworkTrainOptions : TrainOptions {
  std::string anatomical_dir;
  std::string functional_dir;  // colour images contribute their Y plane, as in fusion
  // Instead of the two directories: the pairs packed by pack_training_pairs, the same samples in
  // the same order (so the same run), read without OpenCV (what a build with EFCNET_IMAGE_IO=OFF,
  // e.g. on a GPU host that has LibTorch alone, trains from).
  std::string packed_pairs;
  std::string seem_weights;
  std::string init_weights;  // optional network weights to start from instead of random init
  // With crops, SEEM runs on each crop alone, so the crop's zero-padded borders show as edges in
  // the map the network is fed and scored against. This runs SEEM once on each whole image and
  // cuts the crop from its map instead, what the network sees when fusing whole images (once per
  // sample, not per step). On the default weights it raised background speckle: see docs/model-history.md.
  bool seem_on_whole_images = false;
  // Weights of the optional source terms of the loss (losses.h SourceTerms: mean |out - max(f, a)|
  // and mean |S(out) - max(S(f), S(a))| against the functional image itself); 0, the default, trains
  // with the authors' loss alone.
  double intensity_weight = 0.0;
  double texture_weight = 0.0;
  // BatchNorm layers normalise with their running statistics, as fusion does, and leave them as
  // they are (their scales and shifts still train): the loss then scores the network that will
  // fuse, whose brightness otherwise follows the running averages of the last few batches. For
  // fine-tuning trained weights (init_weights is required).
  bool freeze_batchnorm_statistics = false;
};

// `efcnet train-seem`: SEEM against the clipped Sobel magnitude of the functional image.
struct SeemTrainOptions : TrainOptions {
  std::string functional_dir;
  SeemTrainOptions() { batch_size = 32; }
};

struct TrainingSummary {
  int first_epoch = 0;  // 1 for a new run, N+1 when resumed after epoch N
  int last_epoch = 0;
  int64_t steps = 0;  // optimizer steps taken by this invocation
  double seconds = 0.0;
  double last_epoch_loss = 0.0;  // mean total loss of the last epoch
  std::string last_checkpoint;
  int64_t bytes_all_reduced = 0;  // by this rank, in all (0 in a single-process run)
};

// Each epoch writes <out_dir>/model_<epoch>.pth (or seem_<epoch>.pth): a plain state dict with the
// reference's keys, readable by torch.load(weights_only=True), plus training_state.pth (Adam
// moments, epoch, step, options that must not change on resume). All writes are atomic.
TrainingSummary train_network(const NetworkTrainOptions& options);
TrainingSummary train_seem(const SeemTrainOptions& options);

// Float32 on both sides, eval mode (no dropout, BatchNorm's running statistics), TF32 off: the
// loss terms and network gradients of one batch (the first batch_size pairs, cropped as `options`
// say) on options.device, compared with the CPU's, from the weights the run would start with. The
// tolerances are the golden data's: terms within 1e-5 relative, each gradient within 1e-4 of its
// tensor's largest magnitude. The CPU against itself passes trivially; it is for a GPU build.
struct DeviceCheck {
  static constexpr double kTermTolerance = 1e-5;
  static constexpr double kGradientTolerance = 1e-4;
  std::string device;                    // "cuda:0", ...
  double total_loss = 0.0;               // on the device
  double largest_term_difference = 0.0;  // relative
  double largest_gradient_difference = 0.0;
  std::string worst_gradient;  // the parameter where it is largest
  bool passed = false;
};
DeviceCheck check_training_device(const NetworkTrainOptions& options);

// Reads the pairs of two directories as train_network does (matched by name, the functional
// image's Y plane, every problem listed in one TrainingError) and writes them into one torch.save
// archive: a dict of (H,W) uint8 planes "<name>/functional" and "<name>/anatomical", sorted by
// name (torch.load(weights_only=True) reads it too). Atomic. Returns the number of pairs. A
// TrainingError in a build without image I/O.
int pack_training_pairs(const std::string& anatomical_dir, const std::string& functional_dir,
                        const std::string& output);

enum class WeightsKind { network, seem };

struct ExportOptions {
  // Kernels and weight matrices in float16 (for shipping); biases and normalisation parameters and
  // statistics stay float32. Off: everything float32 (e.g. a CUDA-saved file as a plain CPU one).
  bool half = false;
  // Added to the network's output bias (convolutional_out2), the logit before the final sigmoid:
  // positive brightens the fusion, most in the mid-tones. Finite; network weights only.
  double output_bias_offset = 0.0;
  // Then multiplies that logit (convolutional_out2's weight and bias): the fused value becomes
  // sigmoid(scale * (logit + offset)). Above 1 stretches the contrast about the level that the
  // offset puts at mid-grey, leaving black and white where they are. Positive and finite; network
  // weights only.
  double output_logit_scale = 1.0;
};

// Reads a network or SEEM state dict (which one is told by its keys), checks it against the model
// (keys, shapes) and writes it again as a plain torch.save archive, as `options` say.
WeightsKind export_weights(const std::string& input, const std::string& output, const ExportOptions& options = {});

}  // namespace efcnet
