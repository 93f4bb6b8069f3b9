#include "default_weights.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace efcnet::cli {
namespace fs = std::filesystem;

std::vector<std::string> default_weights_dirs() {
  std::vector<std::string> dirs;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path prefix = exe.parent_path().parent_path();
    dirs.push_back((prefix / "share" / "efcnet" / "models").lexically_normal().string());
    dirs.push_back((prefix / "models").lexically_normal().string());
  }
#ifdef EFCNET_SOURCE_DIR
  const std::string source_models = (fs::path(EFCNET_SOURCE_DIR) / "models").lexically_normal().string();
  if (dirs.empty() || dirs.back() != source_models) dirs.push_back(source_models);
#endif
  return dirs;
}

namespace {

std::string must_exist(const std::string& path, const std::string& source) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  const std::string problem = fs::exists(path, ec) ? "not a regular file" : "no such file";
  throw std::runtime_error(path + ": " + problem + " (given by " + source + ")");
}

}  // namespace

std::string resolve_weights(const WeightsSpec& spec, const std::string& flag_value) {
  if (!flag_value.empty()) return must_exist(flag_value, spec.flag);
  if (const char* env = std::getenv(spec.env.c_str()); env != nullptr && *env != '\0') {
    return must_exist(env, spec.env);
  }
  std::string looked_in;
  for (const auto& dir : default_weights_dirs()) {
    const std::string candidate = (fs::path(dir) / spec.default_file).string();
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return candidate;
    looked_in += (looked_in.empty() ? "" : ", ") + dir;
  }
  throw std::runtime_error("no " + spec.what + " weights: pass " + spec.flag + " FILE.pth or set " + spec.env +
                           " (no shipped " + spec.default_file + " in " + looked_in + ")");
}

std::string weights_lookup_help(const WeightsSpec& spec) {
  return "Weights of the " + spec.what + " (.pth state dict); default: $" + spec.env + ", else the shipped " +
         spec.default_file + " (see below)";
}

}  // namespace efcnet::cli
