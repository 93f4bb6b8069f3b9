// The trainer's data: pairs (or functional images) read and checked up front, batches cut from them.
// Image files are read through OpenCV (EFCNET_IMAGE_IO); packed pairs through the weights container,
// which needs LibTorch alone.
#include "training_data.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "efcnet/weights.h"

#if EFCNET_IMAGE_IO
#include <opencv2/core.hpp>

#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#endif

namespace efcnet::training {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFunctionalSuffix = "/functional";
constexpr const char* kAnatomicalSuffix = "/anatomical";

// `action`: what the problems stop ("start training").
[[noreturn]] void refuse_data(const std::string& action, const std::vector<std::string>& problems) {
  std::string message = "cannot " + action + ", fix these first:";
  for (const auto& p : problems) message += "\n  " + p;
  throw TrainingError(message);
}

std::string size_text(const torch::Tensor& plane) {
  return std::to_string(plane.size(1)) + "x" + std::to_string(plane.size(0));
}

// Checks what every step will need, so that a bad file stops the run now, not in epoch 3.
void check_sizes(const std::vector<Sample>& samples, const TrainOptions& options, std::vector<std::string>& problems) {
  if (samples.empty()) return;
  const auto& first = samples.front().functional;
  for (const auto& s : samples) {
    const auto& plane = s.functional;
    if (options.crop_height > 0) {
      if (plane.size(0) < options.crop_height || plane.size(1) < options.crop_width) {
        problems.push_back(s.name + ": " + size_text(plane) + " is smaller than the crop " +
                           std::to_string(options.crop_width) + "x" + std::to_string(options.crop_height));
      }
    } else if (plane.sizes() != first.sizes()) {
      problems.push_back(s.name + ": " + size_text(plane) + " differs from " + samples.front().name + " (" +
                         size_text(first) + "); full-image batches need one size, or crops (" +
                         option_name(options.option_name, "crop_height and crop_width") + ")");
    }
  }
}

// The pairs of a file written by pack_training_pairs, in its order (sorted by name).
std::vector<Sample> read_packed_pairs(const std::string& path, std::vector<std::string>& problems) {
  StateDict dict;
  try {
    dict = read_state_dict(path);
  } catch (const WeightsError& e) {
    problems.push_back(e.what());
    return {};
  }
  std::vector<Sample> samples;
  std::map<std::string, size_t> index;
  const auto ends_with = [](const std::string& text, const std::string& suffix) {
    return text.size() > suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (auto& [key, tensor] : dict) {
    const bool functional = ends_with(key, kFunctionalSuffix);
    if (!functional && !ends_with(key, kAnatomicalSuffix)) {
      problems.push_back(path + ": entry '" + key + "' is not <name>/functional or <name>/anatomical");
      continue;
    }
    if (tensor.scalar_type() != torch::kUInt8 || tensor.dim() != 2 || tensor.numel() == 0) {
      problems.push_back(path + ": entry '" + key + "' is not a non-empty (H,W) uint8 plane");
      continue;
    }
    const std::string name = key.substr(0, key.rfind('/'));
    auto [it, added] = index.emplace(name, samples.size());
    if (added) samples.push_back({name, {}, {}});
    torch::Tensor& plane = functional ? samples[it->second].functional : samples[it->second].anatomical;
    if (plane.defined()) problems.push_back(path + ": entry '" + key + "' appears twice");
    plane = tensor.contiguous();
  }
  std::vector<Sample> complete;
  for (auto& s : samples) {
    if (!s.functional.defined() || !s.anatomical.defined()) {
      problems.push_back(path + ": '" + s.name + "' has no " + (s.functional.defined() ? "anatomical" : "functional") +
                         " plane");
    } else if (s.functional.sizes() != s.anatomical.sizes()) {
      problems.push_back(path + ": '" + s.name + "': plane sizes differ");
    } else {
      complete.push_back(std::move(s));
    }
  }
  if (dict.empty()) problems.push_back(path + ": no pairs in the file");
  return complete;
}

#if EFCNET_IMAGE_IO
torch::Tensor plane_tensor(const cv::Mat& plane) {
  return torch::from_blob(plane.data, {plane.rows, plane.cols}, {static_cast<int64_t>(plane.step[0]), 1}, torch::kUInt8)
      .clone();
}

// Every pair of the two directories, each checked alone (sizes between samples are not).
std::vector<Sample> read_directory_pairs(const std::string& anatomical_dir, const std::string& functional_dir,
                                         int limit, std::vector<std::string>& problems) {
  const auto pairing = pair_by_name(anatomical_dir, functional_dir);
  for (const auto& p : pairing.unpaired_anatomical) problems.push_back("unpaired: " + p);
  for (const auto& p : pairing.unpaired_functional) problems.push_back("unpaired: " + p);
  for (const auto& p : pairing.ambiguous) problems.push_back("ambiguous (same name, other extension): " + p);
  size_t count = pairing.pairs.size();
  if (limit > 0) count = std::min<size_t>(count, static_cast<size_t>(limit));
  std::vector<Sample> samples;
  for (size_t i = 0; i < count; ++i) {
    const auto& pair = pairing.pairs[i];
    try {
      const cv::Mat functional = functional_y_plane(read_functional(pair.functional));
      const cv::Mat anatomical = read_anatomical(pair.anatomical);
      if (functional.size() != anatomical.size()) {
        problems.push_back(pair.anatomical + " and " + pair.functional + ": image sizes differ");
        continue;
      }
      samples.push_back({pair.name, plane_tensor(functional), plane_tensor(anatomical)});
    } catch (const IoError& e) {
      problems.push_back(e.what());
    }
  }
  if (pairing.pairs.empty()) problems.push_back("no image pairs in " + anatomical_dir + " and " + functional_dir);
  return samples;
}
#endif

#if !EFCNET_IMAGE_IO
[[noreturn]] void refuse_without_image_io(const std::string& what) {
  throw TrainingError(what +
                      " needs image files read, and this build has no image I/O (built with "
                      "EFCNET_IMAGE_IO=OFF): pack the pairs with `efcnet pack-pairs` on a full build");
}
#endif

}  // namespace

std::vector<Sample> load_pairs(const NetworkTrainOptions& options) {
  const bool directories = !options.anatomical_dir.empty() || !options.functional_dir.empty();
  if (directories == !options.packed_pairs.empty()) {
    const auto name = [&options](std::string_view field) { return option_name(options.option_name, field); };
    throw TrainingError("give either " + name("packed_pairs") + " or " + name("anatomical_dir") + " and " +
                        name("functional_dir"));
  }
  std::vector<std::string> problems;
  std::vector<Sample> samples;
  if (!options.packed_pairs.empty()) {
    samples = read_packed_pairs(options.packed_pairs, problems);
    if (options.limit > 0 && samples.size() > static_cast<size_t>(options.limit)) samples.resize(options.limit);
  } else {
#if EFCNET_IMAGE_IO
    samples = read_directory_pairs(options.anatomical_dir, options.functional_dir, options.limit, problems);
#else
    refuse_without_image_io("training from " + option_name(options.option_name, "anatomical_dir") + " and " +
                            option_name(options.option_name, "functional_dir"));
#endif
  }
  check_sizes(samples, options, problems);
  if (!problems.empty()) refuse_data("start training", problems);
  return samples;
}

std::vector<Sample> load_functional(const SeemTrainOptions& options) {
#if EFCNET_IMAGE_IO
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
      samples.push_back({path, plane_tensor(functional_y_plane(read_functional(path))), torch::Tensor()});
    } catch (const IoError& e) {
      problems.push_back(e.what());
    }
  }
  check_sizes(samples, options, problems);
  if (!problems.empty()) refuse_data("start training", problems);
  return samples;
#else
  (void)options;
  refuse_without_image_io("training SEEM");
#endif
}

torch::Tensor to_unit(const torch::Tensor& bytes, const torch::Device& device) {
  return bytes.to(device).to(torch::kFloat32) / 255.0f;
}

std::pair<int64_t, int64_t> step_image_size(const Sample& sample, const TrainOptions& options) {
  return {options.crop_height > 0 ? options.crop_height : sample.functional.size(0),
          options.crop_width > 0 ? options.crop_width : sample.functional.size(1)};
}

Batch make_batch(const std::vector<Sample>& samples, const std::vector<size_t>& indices, const TrainOptions& options,
                 std::mt19937_64& rng, const torch::Device& device) {
  const auto size = step_image_size(samples[indices[0]], options);
  const int64_t h = size.first, w = size.second;  // named: a lambda below captures them
  const bool paired = samples[indices[0]].anatomical.defined();
  auto functional = torch::empty({static_cast<int64_t>(indices.size()), 1, h, w}, torch::kUInt8);
  auto anatomical = paired ? torch::empty_like(functional) : torch::Tensor();
  std::vector<Window> windows;
  for (size_t b = 0; b < indices.size(); ++b) {
    const auto& s = samples[indices[b]];
    const auto row = static_cast<int64_t>(b);
    Window window;
    window.top = static_cast<int64_t>(rng() % static_cast<uint64_t>(s.functional.size(0) - h + 1));
    window.left = static_cast<int64_t>(rng() % static_cast<uint64_t>(s.functional.size(1) - w + 1));
    window.height = h;
    window.width = w;
    windows.push_back(window);
    const auto cut = [&](const torch::Tensor& plane) {
      return plane.narrow(0, window.top, h).narrow(1, window.left, w);
    };
    functional[row][0].copy_(cut(s.functional));
    if (paired) anatomical[row][0].copy_(cut(s.anatomical));
  }
  return {to_unit(functional, device), paired ? to_unit(anatomical, device) : torch::Tensor(), indices,
          std::move(windows)};
}

void check_loss_options(const NetworkTrainOptions& options) {
  if (options.seem_weights.empty())
    throw TrainingError(option_name(options.option_name, "seem_weights") + " is required");
  for (const auto& [weight, field] :
       {std::pair{options.intensity_weight, "intensity_weight"}, std::pair{options.texture_weight, "texture_weight"}}) {
    if (!(weight >= 0.0 && weight <= 1000.0))
      throw TrainingError(option_name(options.option_name, field) + " must be between 0 and 1000");
  }
}

void check_one_batch(size_t samples, int batch_size, int world) {
  if (samples < static_cast<size_t>(batch_size) * static_cast<size_t>(world)) {
    throw TrainingError("only " + std::to_string(samples) + " samples for a batch of " +
                        (world > 1 ? std::to_string(world) + " ranks x " : std::string()) + std::to_string(batch_size) +
                        " (the last partial batch is dropped)");
  }
}

}  // namespace efcnet::training

namespace efcnet {

int pack_training_pairs(const std::string& anatomical_dir, const std::string& functional_dir,
                        const std::string& output) {
#if EFCNET_IMAGE_IO
  std::vector<std::string> problems;
  const auto samples = training::read_directory_pairs(anatomical_dir, functional_dir, 0, problems);
  if (!problems.empty()) training::refuse_data("pack the pairs", problems);
  StateDict dict;
  for (const auto& s : samples) {
    dict.emplace_back(s.name + training::kFunctionalSuffix, s.functional);
    dict.emplace_back(s.name + training::kAnatomicalSuffix, s.anatomical);
  }
  save_state_dict(dict, output);
  return static_cast<int>(samples.size());
#else
  (void)anatomical_dir, (void)functional_dir, (void)output;
  training::refuse_without_image_io("packing pairs");
#endif
}

}  // namespace efcnet
