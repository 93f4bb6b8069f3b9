#include "efcnet/default_weights.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "efcnet/files.h"

namespace efcnet {
namespace fs = std::filesystem;

std::vector<std::string> default_weights_dirs() {
  std::vector<std::string> dirs;
  auto add = [&dirs](const fs::path& dir) {
    const std::string text = dir.lexically_normal().string();
    if (std::find(dirs.begin(), dirs.end(), text) == dirs.end()) dirs.push_back(text);
  };
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path prefix = exe.parent_path().parent_path();
    add(prefix / "share" / "efcnet" / "models");
    add(prefix / "models");
  }
  // The shared object this code is linked into, when it is not the program itself (the Python
  // module, which installs its defaults in models/ beside itself).
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&default_weights_dirs), &info) != 0 && info.dli_fname != nullptr &&
      *info.dli_fname != '\0') {
    const fs::path object = fs::absolute(info.dli_fname, ec);
    if (!ec && !fs::equivalent(object, exe, ec)) add(object.parent_path() / "models");
  }
#ifdef EFCNET_SOURCE_DIR
  add(fs::path(EFCNET_SOURCE_DIR) / "models");
#endif
  return dirs;
}

namespace {

std::string must_exist(const std::string& path, const std::string& source) {
  try {
    require_regular_file(path);
  } catch (const IoError& e) {
    throw IoError(std::string(e.what()) + " (given by " + source + ")");
  }
  return path;
}

}  // namespace

std::string resolve_weights(const WeightsSpec& spec, const std::string& given, const std::string& argument) {
  if (!given.empty()) return must_exist(given, argument);
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
  throw IoError("no " + spec.what + " weights: name a .pth file with " + argument + " or set " + spec.env +
                " (no shipped " + spec.default_file + " in " + looked_in + ")");
}

}  // namespace efcnet
