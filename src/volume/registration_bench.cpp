// Registration benchmark cases and the elastix reference run (registration_bench.h).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <itkEuler3DTransform.h>
#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"
#include "efcnet/registration.h"
#include "efcnet/registration_bench.h"
#include "volume/itk_transform.h"

extern char** environ;

namespace efcnet {
namespace {

namespace fs = std::filesystem;

// "25016.png" -> subject "25", slice 16; false for a name not ending in 3 digits + .png.
bool split_slice_name(const std::string& name, std::string& subject, int& slice) {
  if (name.size() < 8 || name.compare(name.size() - 4, 4, ".png") != 0) return false;
  const std::string stem = name.substr(0, name.size() - 4);
  for (const char c : stem) {
    if (c < '0' || c > '9') return false;
  }
  subject = stem.substr(0, stem.size() - 3);
  slice = std::stoi(stem.substr(stem.size() - 3));
  return true;
}

std::map<std::string, std::vector<int>> slices_by_subject(const fs::path& dir) {
  std::map<std::string, std::vector<int>> subjects;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string subject;
    int slice = 0;
    if (entry.is_regular_file() && split_slice_name(entry.path().filename().string(), subject, slice)) {
      subjects[subject].push_back(slice);
    }
  }
  for (auto& [subject, slices] : subjects) std::sort(slices.begin(), slices.end());
  return subjects;
}

// Uniform in [0, 1) from 32 bits of mt19937, whose sequence the standard fixes (unlike the
// distributions').
double uniform(std::mt19937& rng) { return rng() / 4294967296.0; }

Volume empty_volume(int64_t width, int64_t height, int64_t depth, double pixel_mm, double slice_mm,
                    const PhysicalExtent& box) {
  Volume v;
  v.geometry.size = {width, height, depth};
  v.geometry.spacing = {pixel_mm, pixel_mm, slice_mm};
  for (int a = 0; a < 3; ++a) v.geometry.origin[a] = box.low[a] + v.geometry.spacing[a] / 2;
  v.voxels.assign(static_cast<std::size_t>(v.geometry.voxel_count()), 0.0f);
  return v;
}

void put_slice(Volume& volume, int64_t k, const cv::Mat& slice) {
  const auto& size = volume.geometry.size;
  float* out = volume.voxels.data() + k * size[0] * size[1];
  for (int r = 0; r < slice.rows; ++r) {
    for (int c = 0; c < slice.cols; ++c) out[r * size[0] + c] = static_cast<float>(slice.at<uint8_t>(r, c));
  }
}

// elastix's parameter file: "(Name value value ...)" per line, strings quoted, "//" comments.
std::map<std::string, std::vector<std::string>> read_elastix_parameters(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path + ": cannot read");
  std::map<std::string, std::vector<std::string>> parameters;
  std::string line;
  while (std::getline(in, line)) {
    const auto comment = line.find("//");
    if (comment != std::string::npos) line.erase(comment);
    const auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    std::istringstream fields(line.substr(open + 1, close - open - 1));
    std::string name, value;
    fields >> name;
    auto& values = parameters[name];
    while (fields >> value) {
      value.erase(std::remove(value.begin(), value.end(), '"'), value.end());
      values.push_back(value);
    }
  }
  return parameters;
}

std::vector<double> numbers(const std::map<std::string, std::vector<std::string>>& parameters, const char* name,
                            std::size_t count, const std::string& path) {
  const auto found = parameters.find(name);
  if (found == parameters.end() || found->second.size() != count) {
    throw IoError(path + ": no " + name + " of " + std::to_string(count) + " numbers");
  }
  std::vector<double> values;
  for (const std::string& text : found->second) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0' || !std::isfinite(v)) throw IoError(path + ": " + name + " is not numeric");
    values.push_back(v);
  }
  return values;
}

// elastix's first line naming an error, for the message of a failed run.
std::string first_error_line(const std::string& log) {
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("ERROR") != std::string::npos || line.find("rror:") != std::string::npos) return line;
  }
  return "";
}

}  // namespace

std::vector<SliceStack> find_slice_stacks(const std::string& pair_dir, int max_slices) {
  std::error_code ec;
  if (!fs::is_directory(pair_dir, ec)) throw IoError(pair_dir + ": not a directory");
  std::string modality;
  for (const auto& entry : fs::directory_iterator(pair_dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name != "MRI") modality = name;
  }
  if (modality.empty() || !fs::is_directory(fs::path(pair_dir) / "MRI", ec)) {
    throw IoError(pair_dir + ": needs an MRI folder and a functional one (as AANLIB's SPECT-MRI/{MRI,SPECT})");
  }
  const auto anatomical = slices_by_subject(fs::path(pair_dir) / "MRI");
  const auto functional = slices_by_subject(fs::path(pair_dir) / modality);
  std::vector<SliceStack> stacks;
  for (const auto& [subject, slices] : functional) {
    const auto other = anatomical.find(subject);
    if (other == anatomical.end()) continue;
    std::vector<int> both;
    std::set_intersection(slices.begin(), slices.end(), other->second.begin(), other->second.end(),
                          std::back_inserter(both));
    std::size_t best_start = 0, best_length = 0;
    for (std::size_t start = 0; start < both.size();) {
      std::size_t end = start + 1;
      while (end < both.size() && both[end] == both[end - 1] + 1) ++end;
      if (end - start > best_length) best_start = start, best_length = end - start;
      start = end;
    }
    if (best_length == 0) continue;
    const std::size_t take = std::min<std::size_t>(best_length, static_cast<std::size_t>(std::max(1, max_slices)));
    SliceStack stack{modality, subject, {}, {}};
    for (std::size_t i = best_start + (best_length - take) / 2, n = 0; n < take; ++i, ++n) {
      char name[32];
      std::snprintf(name, sizeof name, "%s%03d.png", subject.c_str(), both[i]);
      stack.anatomical.push_back((fs::path(pair_dir) / "MRI" / name).string());
      stack.functional.push_back((fs::path(pair_dir) / modality / name).string());
    }
    stacks.push_back(std::move(stack));
  }
  std::stable_sort(stacks.begin(), stacks.end(), [](const SliceStack& a, const SliceStack& b) {
    if (a.anatomical.size() != b.anatomical.size()) return a.anatomical.size() > b.anatomical.size();
    return std::stoll(a.subject) < std::stoll(b.subject);
  });
  return stacks;
}

StackedPair stack_slices(const SliceStack& stack, const StackSpacing& spacing) {
  if (stack.anatomical.empty() || stack.anatomical.size() != stack.functional.size()) {
    throw VolumeError(stack.modality + " subject " + stack.subject + ": no slice pairs to stack");
  }
  if (!(spacing.pixel_mm > 0 && spacing.slice_mm > 0) || spacing.functional_downsample < 1) {
    throw OptionError("stacked volumes need positive spacings and a downsampling of at least 1");
  }
  const auto depth = static_cast<int64_t>(stack.anatomical.size());
  StackedPair pair;
  const int d = spacing.functional_downsample;
  for (int64_t k = 0; k < depth; ++k) {
    const auto index = static_cast<std::size_t>(k);
    const cv::Mat anatomical = read_anatomical(stack.anatomical[index]);
    cv::Mat functional = read_functional(stack.functional[index]);
    if (functional.channels() == 3) cv::cvtColor(functional, functional, cv::COLOR_BGR2GRAY);  // its luma
    if (functional.size() != anatomical.size()) {
      throw VolumeError(stack.functional[index] + ": " + size_text(functional) + ", but " + stack.anatomical[index] +
                        " is " + size_text(anatomical));
    }
    if (k == 0) {
      PhysicalExtent box;
      const double extent[3] = {anatomical.cols * spacing.pixel_mm, anatomical.rows * spacing.pixel_mm,
                                static_cast<double>(depth) * spacing.slice_mm};
      for (int a = 0; a < 3; ++a) box.low[a] = -extent[a] / 2, box.high[a] = extent[a] / 2;
      pair.anatomical = empty_volume(anatomical.cols, anatomical.rows, depth, spacing.pixel_mm, spacing.slice_mm, box);
      pair.functional =
          empty_volume(anatomical.cols / d, anatomical.rows / d, depth, spacing.pixel_mm * d, spacing.slice_mm, box);
    } else if (anatomical.cols != pair.anatomical.geometry.size[0] ||
               anatomical.rows != pair.anatomical.geometry.size[1]) {
      throw VolumeError(stack.anatomical[index] + ": " + size_text(anatomical) + ", unlike the slices before it");
    }
    put_slice(pair.anatomical, k, anatomical);
    cv::Mat coarse;
    cv::resize(functional, coarse,
               cv::Size(static_cast<int>(pair.functional.geometry.size[0]),
                        static_cast<int>(pair.functional.geometry.size[1])),
               0, 0, cv::INTER_AREA);
    put_slice(pair.functional, k, coarse);
  }
  return pair;
}

LinearTransform random_rigid_motion(uint32_t seed, double max_degrees, double max_shift_mm,
                                    const std::array<double, 3>& centre) {
  std::mt19937 rng(seed);
  std::array<double, 3> degrees{};
  for (double& angle : degrees) angle = (2 * uniform(rng) - 1) * max_degrees;
  // A uniform direction: z uniform in [-1, 1], the azimuth uniform.
  const double z = 2 * uniform(rng) - 1, azimuth = 2 * std::acos(-1.0) * uniform(rng);
  const double length = max_shift_mm * (0.25 + 0.75 * uniform(rng));
  const double r = std::sqrt(std::max(0.0, 1 - z * z));
  return rigid_motion(degrees, {length * r * std::cos(azimuth), length * r * std::sin(azimuth), length * z}, centre);
}

PhysicalExtent content_box(const Volume& volume, double fraction) {
  const auto& g = volume.geometry;
  float peak = 0;
  for (const float v : volume.voxels) peak = std::max(peak, v);
  const float threshold = static_cast<float>(fraction * peak);
  std::array<int64_t, 3> low{g.size[0], g.size[1], g.size[2]}, high{-1, -1, -1};
  std::size_t at = 0;
  for (int64_t k = 0; k < g.size[2]; ++k) {
    for (int64_t j = 0; j < g.size[1]; ++j) {
      for (int64_t i = 0; i < g.size[0]; ++i, ++at) {
        if (!(volume.voxels[at] > threshold)) continue;
        const int64_t index[3] = {i, j, k};
        for (int a = 0; a < 3; ++a) low[a] = std::min(low[a], index[a]), high[a] = std::max(high[a], index[a]);
      }
    }
  }
  if (high[0] < 0) return physical_extent(g);
  // The corners of the voxel box, outer faces included, carried through the header.
  PhysicalExtent box;
  box.low.fill(std::numeric_limits<double>::infinity());
  box.high.fill(-std::numeric_limits<double>::infinity());
  for (int corner = 0; corner < 8; ++corner) {
    const double i = (corner & 1) ? high[0] + 0.5 : low[0] - 0.5;
    const double j = (corner & 2) ? high[1] + 0.5 : low[1] - 0.5;
    const double k = (corner & 4) ? high[2] + 0.5 : low[2] - 0.5;
    const auto p = g.physical_point(i, j, k);
    for (int a = 0; a < 3; ++a) box.low[a] = std::min(box.low[a], p[a]), box.high[a] = std::max(box.high[a], p[a]);
  }
  return box;
}

LinearTransform read_elastix_transform(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw IoError(path + ": no such file");
  const auto parameters = read_elastix_parameters(path);
  const auto kind = parameters.find("Transform");
  if (kind == parameters.end() || kind->second.size() != 1) throw IoError(path + ": not an elastix transform file");
  const std::vector<double> centre = numbers(parameters, "CenterOfRotationPoint", 3, path);
  if (kind->second[0] == "EulerTransform") {
    const std::vector<double> p = numbers(parameters, "TransformParameters", 6, path);
    const auto zyx = parameters.find("ComputeZYX");
    auto euler = itk::Euler3DTransform<double>::New();
    euler->SetComputeZYX(zyx != parameters.end() && !zyx->second.empty() && zyx->second[0] == "true");
    itk::Euler3DTransform<double>::CenterType c;
    itk::Euler3DTransform<double>::ParametersType values(6);
    for (unsigned a = 0; a < 3; ++a) c[a] = centre[a];
    for (unsigned i = 0; i < 6; ++i) values[i] = p[i];
    euler->SetCenter(c);
    euler->SetParameters(values);
    return detail::linear_transform_of(*euler, true);
  }
  if (kind->second[0] == "AffineTransform") {
    const std::vector<double> p = numbers(parameters, "TransformParameters", 12, path);
    LinearTransform t;
    std::copy(p.begin(), p.begin() + 9, t.matrix.begin());
    for (int a = 0; a < 3; ++a) t.translation[a] = p[9 + a], t.centre[a] = centre[a];
    t.rigid = false;
    return t;
  }
  throw VolumeError(path + ": an elastix " + kind->second[0] + "; EulerTransform or AffineTransform is needed");
}

ElastixRun run_elastix(const std::string& executable, const std::string& parameters, const std::string& fixed,
                       const std::string& moving, const std::string& work_dir, int threads) {
  const std::string pair = fixed + " + " + moving;
  fs::create_directories(work_dir);
  const std::string console = (fs::path(work_dir) / "console.txt").string();
  const std::string thread_text = std::to_string(std::max(1, threads));
  std::vector<std::string> args{executable, "-f",   fixed,    "-m",       moving,     "-p",
                                parameters, "-out", work_dir, "-threads", thread_text};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, console.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, executable.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw RegistrationError(pair + ": cannot run " + executable + ": " + std::strerror(spawned));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  ElastixRun run;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string error = first_error_line((fs::path(work_dir) / "elastix.log").string());
    throw RegistrationError(
        pair + ": " + executable + " failed (" +
        (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status)) : std::string("killed")) + ")" +
        (error.empty() ? "" : ": " + error));
  }
  run.transform = read_elastix_transform((fs::path(work_dir) / "TransformParameters.0.txt").string());
  return run;
}

}  // namespace efcnet
