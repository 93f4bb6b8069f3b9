// The trainer's data: pairs (or functional images) read and checked up front, batches cut from them.
#include "training_data.h"

#include <algorithm>
#include <filesystem>

#include "efcnet/image.h"
#include "efcnet/pipeline.h"

namespace efcnet::training {
namespace {

namespace fs = std::filesystem;

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
      problems.push_back(s.name + ": " + std::to_string(size.width) + "x" + std::to_string(size.height) +
                         " differs from " + samples.front().name + " (" + std::to_string(first.width) + "x" +
                         std::to_string(first.height) +
                         "); full-image batches need one size, or crops (crop_height and crop_width)");
    }
  }
}

}  // namespace

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
  if (pairing.pairs.empty())
    problems.push_back("no image pairs in " + options.anatomical_dir + " and " + options.functional_dir);
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

torch::Tensor to_unit(const torch::Tensor& bytes, const torch::Device& device) {
  return bytes.to(device).to(torch::kFloat32) / 255.0f;
}

Batch make_batch(const std::vector<Sample>& samples, const std::vector<size_t>& indices, const TrainOptions& options,
                 std::mt19937_64& rng, const torch::Device& device) {
  const cv::Size full = samples[indices[0]].functional.size();
  const int h = options.crop_height > 0 ? options.crop_height : full.height;
  const int w = options.crop_width > 0 ? options.crop_width : full.width;
  const bool paired = !samples[indices[0]].anatomical.empty();
  auto functional = torch::empty({static_cast<int64_t>(indices.size()), 1, h, w}, torch::kUInt8);
  auto anatomical = paired ? torch::empty_like(functional) : torch::Tensor();
  std::vector<cv::Rect> windows;
  for (size_t b = 0; b < indices.size(); ++b) {
    const auto& s = samples[indices[b]];
    const int top = static_cast<int>(rng() % static_cast<uint64_t>(s.functional.rows - h + 1));
    const int left = static_cast<int>(rng() % static_cast<uint64_t>(s.functional.cols - w + 1));
    const cv::Rect window(left, top, w, h);
    windows.push_back(window);
    cv::Mat(s.functional(window)).copyTo(cv::Mat(h, w, CV_8UC1, functional[b].data_ptr<uint8_t>()));
    if (paired) cv::Mat(s.anatomical(window)).copyTo(cv::Mat(h, w, CV_8UC1, anatomical[b].data_ptr<uint8_t>()));
  }
  return {to_unit(functional, device), paired ? to_unit(anatomical, device) : torch::Tensor(), indices,
          std::move(windows)};
}

}  // namespace efcnet::training
