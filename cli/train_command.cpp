// `efcnet train`, `train-seem`, `pack-pairs`, `identity-seem` and `export-weights`: thin option parsing
// over efcnet/train.h and model.h, plus where a data-parallel rank learns its place (flags, else the
// torchrun variables) and the local launcher's command line.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "commands.h"
#include "efcnet/model.h"
#include "efcnet/models.h"
#include "efcnet/progress.h"
#include "efcnet/runtime.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"

namespace efcnet::cli {
namespace {

struct CommonSettings {
  std::string crop;
  std::string schedule = "constant";
  std::string precision = "float32";
  // Distributed: flags given on the command line win over the torchrun variables.
  CLI::Option* world_size = nullptr;
  CLI::Option* rank = nullptr;
  CLI::Option* master = nullptr;
  CLI::Option* nproc_per_node = nullptr;
  std::string master_text;
  LocalLaunch launch;
  int threads = 0;
  bool no_progress = false;
  bool check_device = false;  // train only
};

// The ranks run the same command without the options that make a process the launcher.
std::vector<std::string> without_launcher_options(const std::vector<std::string>& args) {
  const std::vector<std::string> launcher_options{"--nproc-per-node", "--nnodes", "--node-rank"};
  std::vector<std::string> kept;
  for (size_t i = 0; i < args.size(); ++i) {
    bool dropped = false;
    for (const auto& name : launcher_options) {
      if (args[i] == name) {
        ++i;  // and its value
        dropped = true;
      } else if (args[i].rfind(name + "=", 0) == 0) {
        dropped = true;
      }
      if (dropped) break;
    }
    if (!dropped) kept.push_back(args[i]);
  }
  return kept;
}

void add_distributed_options(CLI::App* command, TrainOptions& options, CommonSettings& settings) {
  const std::string group = "Distributed (data-parallel; see README \"Distributed training\")";
  auto& d = options.distributed;
  settings.world_size = command
                            ->add_option("--world-size", d.world_size,
                                         "Number of ranks (processes) in the run, on all hosts together "
                                         "(default: $WORLD_SIZE, else 1 = no distribution)")
                            ->group(group)
                            ->check(CLI::PositiveNumber);
  settings.rank = command->add_option("--rank", d.rank, "This process's rank, 0..world-size-1 (default: $RANK, else 0)")
                      ->group(group)
                      ->check(CLI::NonNegativeNumber);
  settings.master = command
                        ->add_option("--master", settings.master_text,
                                     "HOST:PORT where rank 0 hosts the rendezvous; every rank names the same "
                                     "(default: $MASTER_ADDR:$MASTER_PORT, else 127.0.0.1:29500)")
                        ->group(group);
  settings.nproc_per_node = command
                                ->add_option("--nproc-per-node", settings.launch.nproc_per_node,
                                             "Start this many ranks on this host (with the torchrun variables "
                                             "set for each) and wait for them; if one fails, stop the others and "
                                             "exit with its code. On one host without --master or $MASTER_ADDR "
                                             "the rendezvous takes a free port on 127.0.0.1")
                                ->group(group)
                                ->check(CLI::PositiveNumber);
  command
      ->add_option("--nnodes", settings.launch.nnodes,
                   "With --nproc-per-node: number of hosts, each running this command (needs --master)")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--node-rank", settings.launch.node_rank,
                   "With --nproc-per-node: this host's index, 0..nnodes-1; its ranks are "
                   "node-rank*nproc-per-node and up")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--dist-timeout", d.timeout_seconds,
                   "Seconds a rank waits for a peer (to join, or in a collective) before every rank stops "
                   "with an error naming the missing rank")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command
      ->add_flag("--check-replicas", d.check_replicas,
                 "After every step, check that all ranks hold bit-identical parameters (a digest all-reduce; "
                 "a diagnostic). It is always checked at the end of each epoch")
      ->group(group);
}

// Fills options.distributed from the flags and the torchrun variables. Returns true when this
// process is the --nproc-per-node launcher rather than a rank.
bool resolve_distributed(TrainOptions& options, CommonSettings& settings) {
  auto& d = options.distributed;
  const bool master_flag = settings.master->count() > 0;
  if (master_flag) std::tie(d.master_addr, d.master_port) = parse_master_address(settings.master_text, "--master");
  const bool world_size_flag = settings.world_size->count() > 0, rank_flag = settings.rank->count() > 0;
  const int local_ranks = read_torchrun_environment(d, {world_size_flag, rank_flag, master_flag});
  if (settings.nproc_per_node->count() > 0) {
    if (world_size_flag || rank_flag) {
      throw CLI::ValidationError("--nproc-per-node",
                                 "sets the world size and ranks itself; with several hosts use "
                                 "--nnodes and --node-rank instead of --world-size and --rank");
    }
    settings.launch.master_addr = master_flag || std::getenv("MASTER_ADDR") != nullptr ? d.master_addr : "";
    settings.launch.master_port = d.master_port;
    return true;
  }
  // Ranks sharing a host share its cores, unless --threads says otherwise.
  if (settings.threads == 0 && local_ranks > 1) settings.threads = std::max(1, core_count() / local_ranks);
  return false;
}

// Options both trainings share; `settings` holds what needs parsing after the command line is read.
void add_common_options(CLI::App* command, TrainOptions& options, CommonSettings& settings) {
  command
      ->add_option("--out-dir", options.out_dir,
                   "Directory for checkpoints (<kind>_<epoch>.pth each epoch), training_state.pth, "
                   "loss.csv (one row per step) and loss.png; created if missing")
      ->required();
  command->add_option("--epochs", options.epochs, "Epochs to train (in total, counting resumed ones)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--batch-size", options.batch_size,
                   "Samples per step; the last partial batch is dropped. On the CPU a run whose step's estimated "
                   "memory exceeds MemAvailable is refused before it starts, naming a batch size and crop that fit")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--lr", options.lr, "Adam learning rate (betas 0.9/0.999, eps 1e-8)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--lr-schedule", settings.schedule,
                   "constant (the reference), or cosine: decay from --lr to --final-lr over all epochs")
      ->capture_default_str()
      ->check(CLI::IsMember({"constant", "cosine"}));
  command->add_option("--final-lr", options.final_lr, "Last learning rate of the cosine schedule")
      ->capture_default_str();
  command->add_option("--crop", settings.crop,
                      "Random crops of HxW pixels (e.g. 32x256) instead of full images. Full-width strips "
                      "keep the reference token layout's semantics");
  command->add_option("--seed", options.seed, "Seed of the initial weights, shuffling, crops and dropout")
      ->capture_default_str();
  command->add_option("--threads", settings.threads, "LibTorch intra-op threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--limit", options.limit, "Use only the first N samples, sorted by name (0: all)")
      ->check(CLI::NonNegativeNumber);
  command->add_flag("--resume", options.resume,
                    "Continue from the newest complete checkpoint in --out-dir; the result equals an "
                    "uninterrupted run. Without it an --out-dir holding a run is refused");
  command->add_option("--device", options.device, "cpu, cuda or cuda:N (distributed: cuda means cuda:$LOCAL_RANK)")
      ->capture_default_str();
  command
      ->add_option("--precision", settings.precision,
                   "float32, or bf16: the forward pass under bfloat16 autocast (convolutions and matmuls in "
                   "bfloat16), the loss, weights, Adam's moments and checkpoints in float32; needs a CPU "
                   "with AVX-512 BF16 or AMX, or --device cuda. See README \"Training\" for its speed")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "bf16"}));
  command->add_flag("--no-progress", settings.no_progress, "No progress bar on stderr");
  add_distributed_options(command, options, settings);
}

void apply_common(TrainOptions& options, const CommonSettings& settings) {
  options.lr_schedule = settings.schedule == "cosine" ? LrSchedule::cosine : LrSchedule::constant;
  options.precision = settings.precision == "bf16" ? Precision::bfloat16 : Precision::float32;
  if (!settings.crop.empty()) {
    int h = 0, w = 0;
    char x = 0, extra = 0;
    if (std::sscanf(settings.crop.c_str(), "%d%c%d%c", &h, &x, &w, &extra) != 3 || (x != 'x' && x != 'X') || h < 11 ||
        w < 11) {
      throw CLI::ValidationError("--crop",
                                 "expected HxW with both sides >= 11 (the SSIM window), got '" + settings.crop + "'");
    }
    options.crop_height = h;
    options.crop_width = w;
  }
}

void report(const TrainingSummary& summary, int world_size) {
  if (summary.steps == 0) {
    std::printf("nothing to do: the run already reached epoch %d\n", summary.last_epoch);
    return;
  }
  std::printf("trained epochs %d..%d (%lld steps) in %.1f s; last epoch's mean loss %.5f\nlast checkpoint: %s\n",
              summary.first_epoch, summary.last_epoch, static_cast<long long>(summary.steps), summary.seconds,
              summary.last_epoch_loss, summary.last_checkpoint.c_str());
  if (world_size > 1) {
    const double per_step = static_cast<double>(summary.bytes_all_reduced) / static_cast<double>(summary.steps);
    std::printf("%d ranks; this rank all-reduced %.3g %s per step\n", world_size,
                per_step >= 1e6 ? per_step / 1e6 : per_step / 1e3, per_step >= 1e6 ? "MB" : "kB");
  }
}

// --check-device: one line with the result; a mismatch ends the command before training.
void check_device(const NetworkTrainOptions& options) {
  const DeviceCheck check = check_training_device(options);
  std::printf(
      "device check, %s against the CPU: loss %.6f; loss terms within %.2g (tolerance %.0e), gradients "
      "within %.2g of their largest%s%s (tolerance %.0e): %s\n",
      check.device.c_str(), check.total_loss, check.largest_term_difference, DeviceCheck::kTermTolerance,
      check.largest_gradient_difference, check.worst_gradient.empty() ? "" : ", worst ", check.worst_gradient.c_str(),
      DeviceCheck::kGradientTolerance, check.passed ? "passed" : "FAILED");
  std::fflush(stdout);
  if (!check.passed) throw TrainingError("the device check failed on " + check.device + ": not training");
}

// The flags of the TrainOptions fields that library messages name whose flag is not the field's name.
OptionNamer train_flags() {
  return flags_named({{"crop_height and crop_width", "--crop"},
                      {"distributed.world_size", "--nproc-per-node, --world-size or WORLD_SIZE"},
                      {"intensity_weight_millionths", "--intensity-weight (in millionths)"},
                      {"texture_weight_millionths", "--texture-weight (in millionths)"},
                      {"master_addr", "--master HOST:PORT"}});
}

// Runs one training in this process, or its local ranks as children (--nproc-per-node).
template <typename Options, typename Train>
void train_or_launch(Options& options, CommonSettings& settings, Train train) {
  if (resolve_distributed(options, settings)) {
    settings.launch.option_name = train_flags();
    const int code =
        launch_local_ranks(settings.launch, "/proc/self/exe", without_launcher_options(own_command_line()),
                           [](const std::string& message) { std::fprintf(stderr, "efcnet: %s\n", message.c_str()); });
    if (code != 0) throw CLI::RuntimeError(code);
    return;
  }
  // The library leaves process-wide settings alone; the command opts in. A training step allocates
  // GiBs of short-lived tensors: keeping them for reuse made 32x256 steps 4-9% faster on the CPU
  // (3 alternating runs) for ~1 GB more RSS.
  set_threads(settings.threads);
  if (options.device == "cpu") keep_freed_memory_for_reuse();
  std::optional<ProgressBar> bar;
  if (!settings.no_progress) {
    options.progress = [&bar](const TrainingProgress& progress) {
      if (!bar) bar.emplace(static_cast<std::size_t>(progress.steps_total));
      if (progress.kind == TrainingProgress::Kind::step_done) {
        bar->advance();
        return;
      }
      char line[256];
      std::snprintf(line, sizeof line, "epoch %d/%d: mean loss %.5f, saved %s", progress.epoch, progress.epochs,
                    progress.mean_loss, progress.checkpoint.c_str());
      bar->message(line);
    };
  }
  options.option_name = train_flags();
  const TrainingSummary summary = train(options);
  if (bar) bar->finish();
  // The other ranks' outcome shows in their exit code; rank 0 reports for the run.
  if (options.distributed.rank == 0) report(summary, options.distributed.world_size);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto options = std::make_shared<NetworkTrainOptions>();
  auto settings = std::make_shared<CommonSettings>();
  auto* command = add_torch_subcommand(app, "train");
  auto* anatomical =
      command->add_option("--anatomical-dir", options->anatomical_dir, "Directory of anatomical images (MRI, CT)")
          ->check(CLI::ExistingDirectory);
  auto* functional =
      command
          ->add_option("--functional-dir", options->functional_dir, "Directory of functional images (SPECT, PET, CT)")
          ->check(CLI::ExistingDirectory);
  auto* packed = command
                     ->add_option("--packed-pairs", options->packed_pairs,
                                  "Instead of the two directories: a file of `efcnet pack-pairs` (the same "
                                  "pairs, the same run; read without OpenCV)")
                     ->check(CLI::ExistingFile)
                     ->excludes(anatomical)
                     ->excludes(functional);
  auto model = std::make_shared<std::string>();
  auto* model_option = command->add_option(
      "--model", *model,
      "Start from a shipped model (`efcnet models`): its network's weights, trained further with its SEEM");
  command
      ->add_option("--seem-weights", options->seem_weights,
                   "Weights of the SEEM (.pth state dict) the network trains with; default: $EFCNET_SEEM_WEIGHTS, "
                   "else the shipped default model's")
      ->excludes(model_option);
  command
      ->add_option("--init-weights", options->init_weights,
                   "Start from these network weights instead of a random init; needs --seem-weights: the SEEM "
                   "they were trained with")
      ->excludes(model_option);
  add_common_options(command, *options, *settings);
  command->add_flag("--seem-on-whole-images", options->seem_on_whole_images,
                    "With --crop: run SEEM once on each whole image and cut the crop from its map, as fusion sees "
                    "it, instead of running SEEM on each crop alone (whose zero-padded borders then show as edges "
                    "in the map the network is fed and scored against)");
  command->add_option("--intensity-weight", options->intensity_weight,
                      "Add W * mean|fused - max(functional, anatomical)| to the loss: pulls the fusion towards the "
                      "brighter source at each pixel (the functional image's own intensity where it is hot, which "
                      "the authors' loss, scored against SEEM's edge map, does not ask for). Default 0: the "
                      "authors' loss alone");
  command->add_option("--texture-weight", options->texture_weight,
                      "Add W * mean|S(fused) - max(S(functional), S(anatomical))| to the loss, S the Sobel "
                      "magnitude: asks for the stronger source edge at each pixel (bone against soft tissue on "
                      "CT), where the authors' edge terms ask for a compromise between SEEM's map and the "
                      "anatomy. Default 0: the authors' loss alone");
  command->add_flag("--freeze-batchnorm-statistics", options->freeze_batchnorm_statistics,
                    "For fine-tuning (needs --init-weights): BatchNorm layers normalise with their running "
                    "statistics, as fusion does, and keep them (their scales and shifts still train), so the loss "
                    "scores the network that will fuse; otherwise its brightness follows the running averages of "
                    "the last batches of the run. Excludes --sync-bn");
  command
      ->add_flag("--sync-bn", options->distributed.sync_bn,
                 "BatchNorm statistics over every rank's batch (as one process with the global "
                 "batch), at one small all-reduce per BatchNorm layer in forward and in backward")
      ->group("Distributed (data-parallel; see README \"Distributed training\")");
  command->add_flag("--check-device", settings->check_device,
                    "Before training, compare one loss and its gradients on --device with the CPU's (float32, eval "
                    "mode, the first --batch-size pairs) and stop unless they agree within the golden data's "
                    "tolerances (terms 1e-5 relative, gradients 1e-4 of each tensor's largest): for a GPU build");
  command->callback([options, settings, anatomical, functional, packed, model] {
    if (packed->count() == 0 && (anatomical->count() == 0 || functional->count() == 0)) {
      throw CLI::ValidationError("--anatomical-dir", "give --anatomical-dir and --functional-dir, or --packed-pairs");
    }
    // A network goes on learning only with the SEEM whose map it learnt to read.
    if (!options->init_weights.empty() && options->seem_weights.empty()) {
      throw std::runtime_error(
          "--init-weights needs --seem-weights, the SEEM those weights were trained with (or --model NAME)");
    }
    apply_common(*options, *settings);
    if (!model->empty()) {
      const Model start = resolve_model({*model, "", ""});
      options->init_weights = start.network;
      options->seem_weights = start.seem;
    }
    options->seem_weights = resolve_weights(kSeemWeights, options->seem_weights, "--seem-weights");
    train_or_launch(*options, *settings, [settings](const NetworkTrainOptions& o) {
      if (settings->check_device) check_device(o);
      return train_network(o);
    });
  });
}

void add_train_seem_command(CLI::App& app) {
  auto options = std::make_shared<SeemTrainOptions>();
  auto settings = std::make_shared<CommonSettings>();
  auto* command = add_torch_subcommand(app, "train-seem");
  command->add_option("--functional-dir", options->functional_dir, "Directory of functional images")
      ->required()
      ->check(CLI::ExistingDirectory);
  add_common_options(command, *options, *settings);
  command->callback([options, settings] {
    apply_common(*options, *settings);
    train_or_launch(*options, *settings, [](const SeemTrainOptions& o) { return train_seem(o); });
  });
}

void add_pack_pairs_command(CLI::App& app) {
  struct Settings {
    std::string anatomical_dir, functional_dir, output;
    bool overwrite = false;
  };
  auto settings = std::make_shared<Settings>();
  auto* command = add_torch_subcommand(app, "pack-pairs");
  command->add_option("--anatomical-dir", settings->anatomical_dir, "Directory of anatomical images (MRI, CT)")
      ->required()
      ->check(CLI::ExistingDirectory);
  command
      ->add_option("--functional-dir", settings->functional_dir,
                   "Directory of functional images (SPECT, PET, CT); colour ones are stored as their Y plane")
      ->required()
      ->check(CLI::ExistingDirectory);
  command
      ->add_option("--output", settings->output,
                   "The file to write (atomically): a torch.save archive of uint8 planes <name>/functional and "
                   "<name>/anatomical, as many bytes as the pairs' pixels (compress it to carry it)")
      ->required();
  command->add_flag("--overwrite", settings->overwrite, "Replace an existing --output (checked before reading)");
  command->callback([settings] {
    refuse_existing_output(settings->output, settings->overwrite);
    const int pairs = pack_training_pairs(settings->anatomical_dir, settings->functional_dir, settings->output);
    std::printf("packed %d pairs into %s\n", pairs, settings->output.c_str());
  });
}

void add_identity_seem_command(CLI::App& app) {
  struct Settings {
    std::string output;
    bool overwrite = false;
  };
  auto settings = std::make_shared<Settings>();
  auto* command = add_torch_subcommand(app, "identity-seem");
  command->add_option("--output", settings->output, "Where to write the SEEM state dict (atomically)")->required();
  command->add_flag("--overwrite", settings->overwrite, "Replace an existing --output");
  command->callback([settings] {
    refuse_existing_output(settings->output, settings->overwrite);
    SmoothEdgeExtractor seem;
    set_identity(*seem);
    save_state_dict(module_state_dict(*seem), settings->output);
    std::printf("wrote SEEM weights that pass the functional image through to %s\n", settings->output.c_str());
  });
}

void add_export_weights_command(CLI::App& app) {
  struct Settings {
    std::string input, output;
    ExportOptions options;
    bool overwrite = false;
  };
  auto settings = std::make_shared<Settings>();
  auto* command = add_torch_subcommand(app, "export-weights");
  command->add_option("--input", settings->input, "Weights to read (.pth)")->required()->check(CLI::ExistingFile);
  command->add_option("--output", settings->output, "Where to write (atomically)")->required();
  command->add_flag("--overwrite", settings->overwrite,
                    "Replace an existing --output (the same file as --input included: it is read first)");
  command->add_flag("--half", settings->options.half,
                    "Store kernels and weight matrices as float16 (half the size); biases and normalisation "
                    "parameters and statistics stay float32");
  command
      ->add_option("--output-bias-offset", settings->options.output_bias_offset,
                   "Add this to the network's output bias, the logit before the final sigmoid: positive "
                   "brightens the fusion (most in the mid-tones), negative darkens it; network weights only "
                   "(docs/model-history.md says how earlier default weights were calibrated)")
      ->default_val(0.0);
  command
      ->add_option("--output-logit-scale", settings->options.output_logit_scale,
                   "Then multiply that logit (the last layer's weight and bias) by this: the fusion becomes "
                   "sigmoid(scale x (logit + offset)); above 1 stretches its contrast about mid-grey, leaving "
                   "black and white where they are; positive and finite, network weights only")
      ->default_val(1.0);
  command->callback([settings] {
    refuse_existing_output(settings->output, settings->overwrite);
    const auto kind = export_weights(settings->input, settings->output, settings->options);
    std::printf("wrote %s weights to %s\n", kind == WeightsKind::seem ? "SEEM" : "network", settings->output.c_str());
  });
}

}  // namespace efcnet::cli
