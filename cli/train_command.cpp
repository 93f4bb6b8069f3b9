// `efcnet train` and `efcnet train-seem`: thin option parsing over efcnet/train.h.
#include <cstdio>
#include <string>

#include "commands.h"
#include "default_weights.h"
#include "efcnet/train.h"

namespace efcnet::cli {
namespace {

const WeightsSpec kSeemWeights{"--seem-weights", "EFCNET_SEEM_WEIGHTS", "seem_default.pth", "SEEM"};

struct CommonSettings {
  std::string crop;
  std::string schedule = "constant";
};

// Options both trainings share; `settings` holds what needs parsing after the command line is read.
void add_common_options(CLI::App* command, TrainOptions& options, CommonSettings& settings) {
  command->add_option("--out-dir", options.out_dir,
                      "Directory for checkpoints (<kind>_<epoch>.pth each epoch), training_state.pth, "
                      "loss.csv (one row per step) and loss.png; created if missing")
      ->required();
  command->add_option("--epochs", options.epochs, "Epochs to train (in total, counting resumed ones)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  command->add_option("--batch-size", options.batch_size, "Samples per step; the last partial batch is dropped")
      ->capture_default_str()->check(CLI::PositiveNumber);
  command->add_option("--lr", options.lr, "Adam learning rate (betas 0.9/0.999, eps 1e-8)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  command->add_option("--lr-schedule", settings.schedule,
                      "constant (the reference), or cosine: decay from --lr to --final-lr over all epochs")
      ->capture_default_str()->check(CLI::IsMember({"constant", "cosine"}));
  command->add_option("--final-lr", options.final_lr, "Last learning rate of the cosine schedule")->capture_default_str();
  command->add_option("--crop", settings.crop,
                      "Random crops of HxW pixels (e.g. 32x256) instead of full images. Full-width strips "
                      "keep the reference token layout's semantics");
  command->add_option("--seed", options.seed, "Seed of the initial weights, shuffling, crops and dropout")
      ->capture_default_str();
  command->add_option("--threads", options.threads, "LibTorch intra-op threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--limit", options.limit, "Use only the first N samples, sorted by name (0: all)")
      ->check(CLI::NonNegativeNumber);
  command->add_flag("--resume", options.resume,
                    "Continue from the newest complete checkpoint in --out-dir; the result equals an "
                    "uninterrupted run. Without it an --out-dir holding a run is refused");
  command->add_option("--device", options.device, "cpu, cuda or cuda:N")->capture_default_str();
  command->add_flag("!--no-progress", options.progress, "No progress bar on stderr");
}

void apply_common(TrainOptions& options, const CommonSettings& settings) {
  options.lr_schedule = settings.schedule == "cosine" ? LrSchedule::cosine : LrSchedule::constant;
  if (!settings.crop.empty()) {
    int h = 0, w = 0;
    char x = 0, extra = 0;
    if (std::sscanf(settings.crop.c_str(), "%d%c%d%c", &h, &x, &w, &extra) != 3 || (x != 'x' && x != 'X') || h < 11 ||
        w < 11) {
      throw CLI::ValidationError("--crop", "expected HxW with both sides >= 11 (the SSIM window), got '" + settings.crop + "'");
    }
    options.crop_height = h;
    options.crop_width = w;
  }
}

void report(const TrainingSummary& summary) {
  if (summary.steps == 0) {
    std::printf("nothing to do: the run already reached epoch %d\n", summary.last_epoch);
    return;
  }
  std::printf("trained epochs %d..%d (%lld steps) in %.1f s; last epoch's mean loss %.5f\nlast checkpoint: %s\n",
              summary.first_epoch, summary.last_epoch, static_cast<long long>(summary.steps), summary.seconds,
              summary.last_epoch_loss, summary.last_checkpoint.c_str());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto options = std::make_shared<NetworkTrainOptions>();
  auto settings = std::make_shared<CommonSettings>();
  auto* command = app.add_subcommand(
      "train",
      "Train the fusion network on registered pairs (loss: SSIM + edge terms against the SEEM output and the "
      "anatomical image; SEEM frozen). Pairs are matched by file stem (case-sensitive, extensions may differ); "
      "colour functional images contribute their Y plane. Unreadable, unpaired or differently-sized files stop "
      "the run before it starts.");
  command->add_option("--anatomical-dir", options->anatomical_dir, "Directory of anatomical images (MRI, CT)")
      ->required()->check(CLI::ExistingDirectory);
  command->add_option("--functional-dir", options->functional_dir, "Directory of functional images (SPECT, PET, CT)")
      ->required()->check(CLI::ExistingDirectory);
  command->add_option("--seem-weights", options->seem_weights, weights_lookup_help(kSeemWeights));
  command->add_option("--init-weights", options->init_weights, "Start from these network weights instead of a random init");
  add_common_options(command, *options, *settings);
  command->callback([options, settings] {
    apply_common(*options, *settings);
    options->seem_weights = resolve_weights(kSeemWeights, options->seem_weights);
    report(train_network(*options));
  });
}

void add_train_seem_command(CLI::App& app) {
  auto options = std::make_shared<SeemTrainOptions>();
  auto settings = std::make_shared<CommonSettings>();
  auto* command = app.add_subcommand(
      "train-seem",
      "Train SEEM (the smooth edge extractor) on functional images: MSE against their Sobel magnitude "
      "clipped to [0, 1]. Writes seem_<epoch>.pth each epoch.");
  command->add_option("--functional-dir", options->functional_dir, "Directory of functional images")
      ->required()->check(CLI::ExistingDirectory);
  add_common_options(command, *options, *settings);
  command->callback([options, settings] {
    apply_common(*options, *settings);
    report(train_seem(*options));
  });
}

void add_export_weights_command(CLI::App& app) {
  struct Settings {
    std::string input, output;
    bool half = false;
  };
  auto settings = std::make_shared<Settings>();
  auto* command = app.add_subcommand(
      "export-weights",
      "Check a network or SEEM weights file against the model and write it again as a plain torch.save "
      "archive (readable by torch.load(weights_only=True)): e.g. a training checkpoint to ship in float16, "
      "or a CUDA-saved file as a CPU one. The file is read as data; nothing in it is executed.");
  command->add_option("--input", settings->input, "Weights to read (.pth)")->required()->check(CLI::ExistingFile);
  command->add_option("--output", settings->output, "Where to write (atomically)")->required();
  command->add_flag("--half", settings->half, "Store floating-point tensors as float16 (half the size)");
  command->callback([settings] {
    const auto kind = export_weights(settings->input, settings->output, settings->half);
    std::printf("wrote %s weights to %s\n", kind == WeightsKind::seem ? "SEEM" : "network", settings->output.c_str());
  });
}

}  // namespace efcnet::cli
