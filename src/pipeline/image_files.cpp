// pipeline.h's image files: what `efcnet fuse` does with one pair of 2D images or two directories
// of them, from the paths to the written outputs.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "efcnet/files.h"
#include "efcnet/image.h"
#include "efcnet/inference.h"
#include "efcnet/pipeline.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;

std::string option(const FuseImageOptions& options, std::string_view field) {
  return option_name(options.option_name, field);
}

void check_method(const FuseImageOptions& options) {
  if (options.method != "efcnet" && !baseline_method_named(options.method)) {
    throw OptionError(option(options, "method") + ": no method named " + options.method +
                      " (efcnet, y-average, y-max or anatomical-copy)");
  }
}

PairFusion make_fusion(const FuseImageOptions& options) {
  if (const auto method = baseline_method_named(options.method)) {
    return [method = *method](const cv::Mat& a, const cv::Mat& f) { return fuse_baseline(a, f, method); };
  }
  auto fuser = std::make_shared<const Fuser>(options.fuser);
  return [fuser](const cv::Mat& a, const cv::Mat& f) { return fuser->fuse_pair(a, f); };
}

ImageReadOptions read_options(const FuseImageOptions& options) {
  ImageReadOptions read;
  read.max_pixels = options.max_pixels;
  if (options.method == "efcnet" && options.fuser.device == "cpu") {
    read.size_check = [](std::int64_t width, std::int64_t height) { return working_memory_shortfall(height, width); };
  }
  return read;
}

bool exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec));
}

WriteMode write_mode(const FuseImageOptions& options) {
  return options.overwrite ? WriteMode::replace : WriteMode::no_clobber;
}

}  // namespace

void fuse_image_files(const std::string& anatomical, const std::string& functional, const std::string& output,
                      const FuseImageOptions& options) {
  check_method(options);
  if (!options.format.empty()) {
    throw OptionError(option(options, "format") + " is for directories; the output's extension sets its format");
  }
  if (!has_image_extension(output)) {
    throw IoError(output + ": unsupported output extension (use .png, .jpg, .jpeg, .tif, .tiff or .bmp)");
  }
  const fs::path output_dir = fs::path(output).has_parent_path() ? fs::path(output).parent_path() : ".";
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec))
    throw IoError(output + ": directory " + output_dir.string() + " does not exist");
  if (!options.overwrite && exists(output)) throw OutputExistsError(output);

  const ImagePairData in = read_image_pair(anatomical, functional, read_options(options));
  const PairFusion fuse = make_fusion(options);
  cv::Mat fused;
  try {
    fused = fuse(in.anatomical, in.functional);
  } catch (const std::exception& e) {
    throw FusionError(anatomical + " + " + functional + ": " + e.what());
  }
  write_image_atomic(output, fused, write_mode(options));
}

ImageBatchSummary fuse_image_dirs(const std::string& anatomical_dir, const std::string& functional_dir,
                                  const std::string& output_dir, const FuseImageOptions& options,
                                  const ImageBatchCallback& callback) {
  check_method(options);
  if (!options.format.empty() && !has_image_extension("image." + options.format)) {
    throw OptionError(option(options, "format") + ": not an image format: " + options.format);
  }
  ImageBatchSummary summary;
  summary.pairing = pair_by_name(anatomical_dir, functional_dir);
  prepare_output_dir(output_dir, {anatomical_dir, functional_dir}, option(options, "output_dir"));

  // Existing outputs are refused pair by pair (each counted failed) so the rest of the batch runs;
  // the no-clobber rename guards against an output appearing while the batch works.
  const std::size_t count = summary.pairing.pairs.size();
  std::size_t done = 0;
  const auto report = [&](const std::string& pair, const std::string& failure, const std::string& existing) {
    ++done;
    if (!failure.empty()) ++summary.failed;
    if (callback) callback({pair, done, count, failure, existing});
  };
  std::vector<FusionJob> jobs;
  for (const ImagePair& pair : summary.pairing.pairs) {
    const std::string extension =
        options.format.empty() ? fs::path(pair.functional).extension().string() : "." + options.format;
    FusionJob job{pair.name, pair.anatomical, pair.functional,
                  (fs::path(output_dir) / (pair.name + extension)).string()};
    if (!options.overwrite && exists(job.output)) {
      report(job.name, OutputExistsError(job.output).what(), job.output);
    } else {
      jobs.push_back(std::move(job));
    }
  }
  if (jobs.empty()) return summary;
  const BatchOutcome outcome = fuse_files(
      jobs, [&options] { return make_fusion(options); }, write_mode(options),
      [&report](const FusionJob& job, const std::string& failure) { report(job.name, failure, ""); },
      read_options(options));
  summary.fused = outcome.fused;
  return summary;
}

}  // namespace efcnet
