// `efcnet fuse`: one pair, or every pair of two directories matched by file name.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.h"
#include "efcnet/default_weights.h"
#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "efcnet/progress.h"
#include "efcnet/runtime.h"

namespace efcnet::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct FuseSettings {
  std::string anatomical, functional, output;
  std::string anatomical_dir, functional_dir, output_dir, format;
  std::string weights, seem_weights;
  std::string device = "cpu";
  std::string method = "efcnet";
  std::string precision = "float32";
  int threads = 0;
  bool overwrite = false;

  bool single_mode() const { return !anatomical.empty() || !functional.empty() || !output.empty(); }
  bool batch_mode() const { return !anatomical_dir.empty() || !functional_dir.empty() || !output_dir.empty(); }
  WriteMode write_mode() const { return overwrite ? WriteMode::replace : WriteMode::no_clobber; }
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

FuserOptions fuser_options(const FuseSettings& s) {
  FuserOptions options;
  options.weights = resolve_weights(kNetworkWeights, s.weights, "--weights");
  options.seem_weights = resolve_weights(kSeemWeights, s.seem_weights, "--seem-weights");
  options.device = s.device;
  options.inference.precision = s.precision == "bf16" ? Precision::bfloat16 : Precision::float32;
  return options;
}

PairFusion make_fusion(const FuseSettings& s) {
  if (s.method == "y-average" || s.method == "y-max") {
    const auto method = s.method == "y-average" ? BaselineMethod::y_average : BaselineMethod::y_max;
    return [method](const cv::Mat& a, const cv::Mat& f) { return fuse_baseline(a, f, method); };
  }
  auto fuser = std::make_shared<const Fuser>(fuser_options(s));
  return [fuser](const cv::Mat& a, const cv::Mat& f) { return fuser->fuse_pair(a, f); };
}

std::string existing_output_message(const std::string& path) {
  return path + ": already exists (pass --overwrite to replace it)";
}

// ---- one pair ----

void fuse_single(const FuseSettings& s) {
  const auto start = Clock::now();
  if (s.anatomical.empty() || s.functional.empty() || s.output.empty()) {
    throw std::runtime_error("fuse: a single pair needs all of --anatomical, --functional and --output");
  }
  if (!s.format.empty()) throw std::runtime_error("fuse: --format is for --output-dir; --output's extension sets the format");
  if (!has_image_extension(s.output)) {
    throw std::runtime_error(s.output + ": unsupported output extension (use .png, .jpg, .jpeg, .tif, .tiff or .bmp)");
  }
  const fs::path output_dir = fs::path(s.output).has_parent_path() ? fs::path(s.output).parent_path() : ".";
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) throw std::runtime_error(s.output + ": directory " + output_dir.string() + " does not exist");
  if (!s.overwrite && fs::exists(fs::symlink_status(s.output, ec))) throw std::runtime_error(existing_output_message(s.output));

  const ImagePairData in = read_image_pair(s.anatomical, s.functional);
  const PairFusion fuse = make_fusion(s);
  cv::Mat fused;
  try {
    fused = fuse(in.anatomical, in.functional);
  } catch (const std::exception& e) {
    throw std::runtime_error(s.anatomical + " + " + s.functional + ": " + e.what());
  }
  write_image_atomic(s.output, fused, s.write_mode());
  std::fprintf(stderr, "fused %s in %.1f s\n", s.output.c_str(), seconds_since(start));
}

// ---- two directories ----

void fuse_batch(const FuseSettings& s) {
  const auto start = Clock::now();
  if (s.anatomical_dir.empty() || s.functional_dir.empty() || s.output_dir.empty()) {
    throw std::runtime_error("fuse: directory mode needs all of --anatomical-dir, --functional-dir and --output-dir");
  }
  const Pairing pairing = pair_by_name(s.anatomical_dir, s.functional_dir);

  std::error_code ec;
  for (const auto* input_dir : {&s.anatomical_dir, &s.functional_dir}) {
    if (fs::equivalent(s.output_dir, *input_dir, ec)) {
      throw std::runtime_error(s.output_dir + ": is an input directory; choose another --output-dir");
    }
  }
  fs::create_directories(s.output_dir, ec);
  if (!fs::is_directory(s.output_dir)) {
    throw std::runtime_error(s.output_dir + ": cannot create the output directory" + (ec ? ": " + ec.message() : ""));
  }

  std::size_t unpaired = 0;
  auto report_unpaired = [&](const std::string& path, const std::string& why) {
    std::fprintf(stderr, "unpaired: %s (%s)\n", path.c_str(), why.c_str());
    ++unpaired;
  };
  auto stem = [](const std::string& path) { return fs::path(path).stem().string(); };
  for (const auto& path : pairing.unpaired_anatomical) {
    report_unpaired(path, "no single functional image named " + stem(path) + " in " + s.functional_dir);
  }
  for (const auto& path : pairing.unpaired_functional) {
    report_unpaired(path, "no single anatomical image named " + stem(path) + " in " + s.anatomical_dir);
  }
  for (const auto& path : pairing.ambiguous) {
    report_unpaired(path, "another image in its directory is also named " + stem(path));
  }

  // Existing outputs are refused pair by pair (each counted failed) so the rest of the batch runs;
  // the no-clobber rename guards against an output appearing while we work.
  std::size_t refused = 0;
  std::vector<FusionJob> jobs;
  for (const auto& pair : pairing.pairs) {
    const std::string extension = s.format.empty() ? fs::path(pair.functional).extension().string() : "." + s.format;
    FusionJob job{pair.name, pair.anatomical, pair.functional, (fs::path(s.output_dir) / (pair.name + extension)).string()};
    if (!s.overwrite && fs::exists(fs::symlink_status(job.output, ec))) {
      std::fprintf(stderr, "failed: %s: %s\n", job.name.c_str(), existing_output_message(job.output).c_str());
      ++refused;
      continue;
    }
    jobs.push_back(std::move(job));
  }

  BatchOutcome outcome;
  if (!jobs.empty()) {
    ProgressBar progress(jobs.size());
    outcome = fuse_files(
        jobs, [&s] { return make_fusion(s); }, s.write_mode(),
        [&progress](const FusionJob& job, const std::string& failure) {
          if (!failure.empty()) progress.message("failed: " + job.name + ": " + failure);
          progress.advance();
        });
    progress.finish();
  }
  const std::size_t failed = outcome.failed + refused;
  std::fprintf(stderr, "fused %zu, failed %zu, unpaired %zu in %.1f s\n", outcome.fused, failed, unpaired,
               seconds_since(start));
  if (failed > 0 || unpaired > 0) throw CLI::RuntimeError(1);
}

constexpr const char* kFooter = R"(Modes:
  one pair     --anatomical A --functional F --output O
  directories  --anatomical-dir DA --functional-dir DF --output-dir DO
               Files pair by name: the stem (file name without its extension) must match exactly,
               letter case included; the extensions may differ (DA/x.png pairs with DF/x.tif).
               Only .png .jpg .jpeg .tif .tiff .bmp files count (any letter case); hidden files and
               subdirectories are ignored. The network and weights are loaded once; reading the next
               pair and writing the previous one overlap with the network. Output: DO/<stem>.<format>.
               Files without a partner are named ("unpaired: ..."), pairs that cannot be read or
               differ in size are named with the reason ("failed: ...") and skipped, the rest are
               fused. An existing output is not replaced without --overwrite: that pair is named and
               counted failed. A final line counts fused, failed and unpaired files; the exit status
               is 1 if any pair failed or any file was unpaired.

Colour handling (as the authors' test script):
  colour functional image (pseudo-coloured SPECT/PET, GFP green fluorescence): converted to YUV;
    Y is fused with the anatomical image, U and V (the colour) are kept; the output is colour.
  grey functional image (CT, grey SPECT): fused directly; the output is grey.
  The anatomical image (MRI, CT, phase contrast) is read as grey.
  Images are read as OpenCV's IMREAD_COLOR / IMREAD_GRAYSCALE read them: RGBA loses its alpha,
  16-bit samples are reduced to 8 bits by the codec (PNG keeps the high byte).

Weights, first found wins:
  --weights / --seem-weights, then $EFCNET_WEIGHTS / $EFCNET_SEEM_WEIGHTS, then the shipped
  efcnet_default.pth / seem_default.pth in <exe dir>/../share/efcnet/models, <exe dir>/../models,
  or the source tree's models/.

Outputs are written atomically (a hidden temporary file renamed into place): an interrupted run
never leaves a partial image. Existing outputs are kept unless --overwrite is given.)";

}  // namespace

void add_fuse_command(CLI::App& app) {
  auto settings = std::make_shared<FuseSettings>();
  CLI::App* cmd = add_torch_subcommand(app, "fuse");
  cmd->footer(kFooter);

  cmd->add_option("--anatomical", settings->anatomical, "Anatomical image (MRI, CT, phase contrast), read as grey");
  cmd->add_option("--functional", settings->functional, "Functional image (SPECT, PET, GFP colour; or grey CT)");
  cmd->add_option("--output", settings->output, "Fused image to write; its extension sets the format");
  cmd->add_option("--anatomical-dir", settings->anatomical_dir, "Directory of anatomical images");
  cmd->add_option("--functional-dir", settings->functional_dir, "Directory of functional images, same names");
  cmd->add_option("--output-dir", settings->output_dir, "Directory for the fused images (created if missing)");
  cmd->add_option("--format", settings->format, "Output format in directory mode (default: the functional image's extension)")
      ->check(CLI::IsMember({"png", "jpg", "tif"}));
  cmd->add_option("--method", settings->method,
                  "efcnet (the network), or a baseline needing no weights: y-average ((Y + anatomical)/2) or "
                  "y-max (max(Y, anatomical)), with the same colour handling")
      ->capture_default_str()
      ->check(CLI::IsMember({"efcnet", "y-average", "y-max"}));
  cmd->add_option("--weights", settings->weights, weights_lookup_help(kNetworkWeights));
  cmd->add_option("--seem-weights", settings->seem_weights, weights_lookup_help(kSeemWeights));
  cmd->add_option("--threads", settings->threads,
                  "LibTorch intra-op threads (default: all cores, " + std::to_string(core_count()) + " here)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", settings->device, "cpu, cuda or cuda:N (default: cpu)");
  cmd->add_option("--precision", settings->precision,
                  "float32 (default: within 1 level of the reference) or bf16: the network's convolutions and "
                  "linear layers in bfloat16 on a CPU with AVX-512: faster, most where it has AMX or AVX-512 BF16, "
                  "up to 3 levels off (measurements in models/README.md)")
      ->check(CLI::IsMember({"float32", "bf16"}));
  cmd->add_flag("--overwrite", settings->overwrite, "Replace existing output files");

  cmd->callback([settings] {
    if (settings->single_mode() == settings->batch_mode()) {
      throw std::runtime_error(
          "fuse: give either --anatomical/--functional/--output or --anatomical-dir/--functional-dir/--output-dir "
          "(see efcnet fuse --help)");
    }
    use_fusion_runtime(settings->threads, settings->device);
    if (settings->single_mode()) {
      fuse_single(*settings);
    } else {
      fuse_batch(*settings);
    }
  });
}

}  // namespace efcnet::cli
