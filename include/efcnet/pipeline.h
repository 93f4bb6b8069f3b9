// Single-pair and batch fusion: the authors' test-script pipeline behind a LibTorch-free API.
//
//   functional (BGR or grey) --BGR2YUV--> Y/255 --SEEM--> s
//   anatomical (grey) ------------------> /255 ------> a
//   fused = MODEL(s, a)[0] --> uint8 by truncation --> replaces Y --YUV2BGR--> output
//
// The chroma of the functional image is carried over untouched. A single-channel functional
// image (CT, grey SPECT) is its own Y plane and gives a single-channel output.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <opencv2/core.hpp>

#include "efcnet/error.h"
#include "efcnet/image.h"
#include "efcnet/inference_options.h"

namespace efcnet {

struct FuserOptions {
  std::string weights;         // MODEL state dict (.pth)
  std::string seem_weights;    // SEEM state dict (.pth)
  std::string device = "cpu";  // "cpu", "cuda", "cuda:N"
  InferenceOptions inference;  // precision and the CPU kernels of the prepared model
};

class FusionError : public Error {
 public:
  using Error::Error;
};

// Throws FusionError unless anatomical is CV_8UC1, functional CV_8UC1 or CV_8UC3, both of one
// size, at least 11x11.
void check_fusion_inputs(const cv::Mat& anatomical, const cv::Mat& functional);

// The plane the networks see of a functional image: Y of COLOR_BGR2YUV for CV_8UC3, the image
// itself for CV_8UC1.
cv::Mat functional_y_plane(const cv::Mat& functional);

// The functional image with its Y plane replaced by `y` (CV_8UC1) and its chroma kept: BGR via
// COLOR_YUV2BGR for a colour functional image, `y` itself for a grey one.
cv::Mat replace_y_plane(const cv::Mat& functional, const cv::Mat& y);

// Classical fusions of the same Y plane, the baselines a learnt fusion has to beat.
enum class BaselineMethod {
  y_average,        // (Y + anatomical) / 2, rounded
  y_max,            // max(Y, anatomical)
  anatomical_copy,  // the anatomical image as Y: no fusion at all, the functional colour on the
                    // anatomy's brightness; a reference point for metrics that reward anatomical fidelity
};

// The method a command-line name ("y-average", "y-max", "anatomical-copy") stands for; nullopt for
// any other name.
std::optional<BaselineMethod> baseline_method_named(std::string_view name);

// Same inputs, checks and output as Fuser::fuse_pair.
cv::Mat fuse_baseline(const cv::Mat& anatomical, const cv::Mat& functional, BaselineMethod method);

struct StageSeconds;  // inference.h

// Loads both networks once, prepares them for inference (inference.h: folded BatchNorm, one
// encoder pass for both inputs, oneDNN layouts on the CPU) and fuses any number of pairs with them.
class Fuser {
 public:
  explicit Fuser(const FuserOptions& options);
  ~Fuser();
  Fuser(const Fuser&) = delete;
  Fuser& operator=(const Fuser&) = delete;

  // anatomical: CV_8UC1. functional: CV_8UC3 (BGR) or CV_8UC1. Same size, both >= 11x11.
  // Returns CV_8UC3 for a colour functional image, CV_8UC1 for a grey one. On the CPU, refuses
  // (FusionError naming the size and the estimate) a pair that needs more working memory than
  // /proc/meminfo's MemAvailable. `seconds`, if given, accumulates the networks' stage times.
  cv::Mat fuse_pair(const cv::Mat& anatomical, const cv::Mat& functional, StageSeconds* seconds = nullptr) const;

  // How many layers the prepared model runs through oneDNN's kernels of its own (InferenceModel's
  // winograd_layers / dnnl_linear_layers): what FuserOptions asked for and this CPU and build allow.
  int winograd_layers() const;
  int dnnl_linear_layers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- many pairs of image files ----

// One pair's fusion as the batch calls it: a Fuser's fuse_pair or fuse_baseline, bound.
using PairFusion = std::function<cv::Mat(const cv::Mat& anatomical, const cv::Mat& functional)>;

struct FusionJob {
  std::string name;        // how reports name the pair (e.g. the shared file stem)
  std::string anatomical;  // file paths
  std::string functional;
  std::string output;  // its extension sets the format
};

struct ImagePairData {
  cv::Mat anatomical;  // read_anatomical
  cv::Mat functional;  // read_functional
};

// Both images of a pair (image.h's refusals, with `options`); IoError naming both files (and
// their sizes) when the sizes differ.
ImagePairData read_image_pair(const std::string& anatomical_path, const std::string& functional_path,
                              const ImageReadOptions& options = {});

struct BatchOutcome {
  std::size_t fused = 0;
  std::size_t failed = 0;
};

// Called once per job: `failure` is empty when the job was fused and written, else the reason
// (naming the files). Calls come one at a time, from any of the batch's threads.
using JobReport = std::function<void(const FusionJob& job, const std::string& failure)>;

// Fuses every job in order. A reader thread decodes the next pair and a writer thread writes the
// previous result (write_image_atomic with `mode`) while the calling thread fuses, so decoding and
// encoding overlap with the network; `make_fusion` is called once on the calling thread after the
// reader has started, so loading the weights overlaps with the first read. A job that cannot be
// read, fused or written fails alone and the batch goes on; an error thrown by `make_fusion` ends
// the batch and is rethrown once both threads have stopped. Images are read with `read_options`.
BatchOutcome fuse_files(const std::vector<FusionJob>& jobs, const std::function<PairFusion()>& make_fusion,
                        WriteMode mode, const JobReport& report = {}, const ImageReadOptions& read_options = {});

// ---- what `efcnet fuse` does with 2D image files ----

struct FuseImageOptions {
  std::string method = "efcnet";  // the network, or a baseline's name (baseline_method_named)
  FuserOptions fuser;             // method "efcnet": the network's and SEEM's weights, device, precision
  // ImageReadOptions::max_pixels; the network on the CPU also refuses, from the header, a pair whose
  // working memory would not fit (working_memory_shortfall).
  std::int64_t max_pixels = kDefaultMaxImagePixels;
  std::string format;         // directories: "png", "jpg" or "tif"; "": each functional image's extension
  bool overwrite = false;     // replace existing outputs; otherwise OutputExistsError
  OptionNamer option_name{};  // error.h
};

// One pair of image files fused into `output` (its extension sets the format), written
// atomically. Refused before the networks load: an output extension that is not an image's, an
// output directory that does not exist, an existing output without `overwrite`
// (OutputExistsError), a `format` (OptionError: it is for directories). Throws Error naming the
// files.
void fuse_image_files(const std::string& anatomical, const std::string& functional, const std::string& output,
                      const FuseImageOptions& options);

// A pair of a batch done, for a caller's progress display and log.
struct ImageBatchEvent {
  std::string pair;                 // its name
  std::size_t done = 0, count = 0;  // pairs done, this one included, of all pairs
  std::string failure;              // empty: fused and written; else why, naming the files
  std::string existing_output;      // the failure is this output, there already
};
using ImageBatchCallback = std::function<void(const ImageBatchEvent&)>;

struct ImageBatchSummary {
  Pairing pairing;                    // the pairs, and the files left unpaired or ambiguous
  std::size_t fused = 0, failed = 0;  // of pairing.pairs
};

// Every pair of pair_by_name(anatomical_dir, functional_dir) through fuse_files into
// output_dir/<name>.<format>; output_dir is created if missing and refused (OptionError) if it is
// an input directory. A pair whose output exists (without `overwrite`) or that fails is reported
// and the batch goes on; networks that cannot load stop it (Error).
ImageBatchSummary fuse_image_dirs(const std::string& anatomical_dir, const std::string& functional_dir,
                                  const std::string& output_dir, const FuseImageOptions& options,
                                  const ImageBatchCallback& callback = {});

}  // namespace efcnet
