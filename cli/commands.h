// Each `efcnet` subcommand lives in its own file and registers itself on the app here.
//
// Two executables (see CMakeLists.txt), so that commands that need no LibTorch start in
// milliseconds instead of the ~0.4 s that loading LibTorch takes:
//   efcnet (cli/main.cpp): evaluate, phantom, bench-register, models, --help and --version, LibTorch-free. Any command
//     line naming one of kTorchCommands it hands over whole, git-style: it execs efcnet-torch with
//     the same arguments, OpenBLAS's kernels chosen in the environment first.
//   efcnet-torch (cli/torch_main.cpp): the commands in kTorchCommands. Add a new LibTorch command
//     to the table and to torch_main.cpp; each side parses its own command line, so nothing but
//     argv and the exit status crosses between them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include <CLI/CLI.hpp>

#include "efcnet/error.h"
#include "efcnet/models.h"
#include "efcnet/version.h"

namespace efcnet::cli {

struct CommandSummary {
  const char* name;
  const char* description;  // what `efcnet --help` lists and `efcnet NAME --help` starts with
};

// The commands of efcnet-torch: one table for both executables' help.
inline constexpr CommandSummary kTorchCommands[] = {
    {"fuse", "Fuse an anatomical image with a functional one (one pair or two directories)"},
    {"train",
     "Train the fusion network on registered pairs (loss: SSIM + edge terms against the SEEM output and the "
     "anatomical image; SEEM frozen). Pairs are matched by file stem (case-sensitive, extensions may differ); "
     "colour functional images contribute their Y plane. Unreadable, unpaired or differently-sized files stop "
     "the run before it starts."},
    {"pack-pairs",
     "Read the pairs of two directories as `efcnet train` does and write them into one file that `efcnet train "
     "--packed-pairs` reads: the same run, on a machine without OpenCV (a GPU host; see README \"Training on a "
     "lent GPU\")"},
    {"train-seem",
     "Train SEEM (the smooth edge extractor) on functional images: MSE against their Sobel magnitude "
     "clipped to [0, 1]. Writes seem_<epoch>.pth each epoch."},
    {"identity-seem",
     "Write SEEM weights that pass the functional image through unchanged, so that the fusion network sees "
     "its grey levels rather than SEEM's map of their edges: the default weights' SEEM since round three "
     "(docs/model-history.md). Train a network on it (`efcnet train --seem-weights`) before fusing with it."},
    {"export-weights",
     "Check a network or SEEM weights file against the model and write it again as a plain torch.save "
     "archive (readable by torch.load(weights_only=True)): e.g. a training checkpoint to ship in float16, "
     "or a CUDA-saved file as a CPU one. The file is read as data; nothing in it is executed."},
    {"bench", "Time fusion by stage on synthetic pairs against the eager reference computation (JSON or a table)"},
    {"bench-volume",
     "Time `efcnet fuse` on a phantom volume stage by stage (read, resample/window/colour, slicing, network, write) "
     "against the same slices fused as 2D pairs in the same run (JSON)"},
    {"compare",
     "Score efcnet, the y-average and y-max baselines and other methods' results on one dataset with the twelve "
     "metrics; write report.html (means, a chart per metric, every pair side by side), scores.csv and scores.json"},
};

// Whether `name` is one of kTorchCommands.
bool is_torch_command(std::string_view name);

// app.add_subcommand(name, its kTorchCommands description).
CLI::App* add_torch_subcommand(CLI::App& app, std::string_view name);

// efcnet (LibTorch-free).
void add_evaluate_command(CLI::App& app);
void add_phantom_command(CLI::App& app);
void add_bench_register_command(CLI::App& app);
void add_models_command(CLI::App& app);

// efcnet-torch.
void add_fuse_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_train_seem_command(CLI::App& app);
void add_pack_pairs_command(CLI::App& app);
void add_identity_seem_command(CLI::App& app);
void add_export_weights_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_bench_volume_command(CLI::App& app);
void add_compare_command(CLI::App& app);

// The process settings (runtime.h) the fusing commands opt into: `threads` LibTorch threads
// (0: every core) and, on the CPU, a heap that keeps freed feature maps for the next pair.
void use_fusion_runtime(int threads, const std::string& device);

// The one line for an output that exists without --overwrite: "PATH: already exists (pass
// --overwrite to replace it)".
std::string existing_output_message(const std::string& path);

// Unless `overwrite`, throws existing_output_message for anything at `path` (a dangling link
// too): what each command checks for its outputs before any work.
void refuse_existing_output(const std::string& path, bool overwrite);

// What both executables print for an error that ends a command: "efcnet: error: <message>".
int report_error(const char* message);

// Both executables' main: parses the command line into `app` (one subcommand required, --version)
// and runs the chosen command; returns the exit status (CLI11's for a parse error, 1 with
// report_error for anything the command throws).
int run_app(CLI::App& app, int argc, char** argv);

inline constexpr const char* kVersion = kVersionText;
inline constexpr const char* kAppDescription =
    "efcnet - fuse an anatomical image (MRI, CT, phase contrast) with a functional one\n"
    "(SPECT, PET, GFP) into one image that keeps the anatomy's detail and the functional colour.";

// Names options fields as their flags in library messages (OptionNamer, error.h): "--" and the
// field after its last '.' with '-' for '_' ("distributed.sync_bn": "--sync-bn"), or what `renamed`
// gives for a field whose flag differs.
OptionNamer flags_named(std::initializer_list<std::pair<std::string_view, std::string_view>> renamed = {});

// --model, --weights and --seem-weights, into `choice` (the rules of resolve_model, models.h).
void add_model_options(CLI::App* cmd, ModelChoice& choice);

// The model lookup, for the footers of the commands that fuse.
inline constexpr const char* kModelLookupHelp =
    R"(Model (a network and the SEEM it was trained with), first given wins:
  --model NAME (`efcnet models` lists the shipped ones), or --weights with --seem-weights (one
  alone is refused); then $EFCNET_WEIGHTS with $EFCNET_SEEM_WEIGHTS; then the shipped model
  "default". Shipped models are efcnet_NAME.pth + seem_NAME.pth, listed in models.tsv, in
  $EFCNET_MODELS_DIR (your own), <exe dir>/../share/efcnet/models, <exe dir>/../models or the
  source tree's models/.)";

// --max-image-pixels for the commands that read 2D images (ImageReadOptions::max_pixels, image.h);
// `max_pixels` holds the default.
inline CLI::Option* add_max_image_pixels_option(CLI::App* cmd, std::int64_t& max_pixels) {
  return cmd
      ->add_option("--max-image-pixels", max_pixels,
                   "Refuse an image whose header declares more pixels (width x height) than this, before decoding "
                   "it (default 2^26: 8192x8192)")
      ->check(CLI::PositiveNumber);
}

}  // namespace efcnet::cli
