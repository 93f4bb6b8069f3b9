#include "efcnet/models.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "efcnet/files.h"

namespace efcnet {
namespace fs = std::filesystem;

std::vector<std::string> model_dirs() {
  std::vector<std::string> dirs;
  auto add = [&dirs](const fs::path& dir) {
    const std::string text = dir.lexically_normal().string();
    if (std::find(dirs.begin(), dirs.end(), text) == dirs.end()) dirs.push_back(text);
  };
  if (const char* own = std::getenv(kModelsDirEnv); own != nullptr && *own != '\0') add(own);
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
  if (dladdr(reinterpret_cast<void*>(&model_dirs), &info) != 0 && info.dli_fname != nullptr &&
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

std::string environment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return value != nullptr ? value : "";
}

bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// The entries of one models.tsv: NAME, a tab, a one-line description; '#' lines are comments.
std::vector<std::pair<std::string, std::string>> read_index(const fs::path& index) {
  std::ifstream in(index);
  if (!in) throw IoError(index.string() + ": cannot be read");
  std::vector<std::pair<std::string, std::string>> entries;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    const std::string name = line.substr(0, tab);
    const bool valid_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
    });
    if (tab == std::string::npos || !valid_name) {
      throw IoError(index.string() + ": line " + std::to_string(number) +
                    " is not NAME<tab>DESCRIPTION (NAME: letters, digits, '-', '_', '.')");
    }
    entries.emplace_back(name, line.substr(tab + 1));
  }
  return entries;
}

std::string names_of(const std::vector<Model>& models) {
  std::string names;
  for (const auto& m : models) names += (names.empty() ? "" : ", ") + m.name;
  return names.empty() ? "none" : names;
}

}  // namespace

std::vector<Model> shipped_models() {
  std::vector<Model> models;
  for (const auto& dir : model_dirs()) {
    const fs::path index = fs::path(dir) / kModelIndex;
    if (!is_file(index)) continue;
    for (const auto& entry : read_index(index)) {
      const std::string& name = entry.first;  // a named variable: clang's C++17 cannot capture a binding
      const std::string& description = entry.second;
      const fs::path network = fs::path(dir) / ("efcnet_" + name + ".pth");
      const fs::path seem = fs::path(dir) / ("seem_" + name + ".pth");
      const bool known = std::any_of(models.begin(), models.end(), [&](const Model& m) { return m.name == name; });
      if (!known && is_file(network) && is_file(seem)) {
        models.push_back(Model{name, description, network.string(), seem.string()});
      }
    }
  }
  return models;
}

Model resolve_model(const ModelChoice& choice, const ModelArgumentNames& names) {
  const bool files_given = !choice.weights.empty() || !choice.seem_weights.empty();
  if (!choice.model.empty() && files_given) {
    throw IoError("give " + names.model + " or " + names.weights + " with " + names.seem_weights + ", not both");
  }
  // A network fuses as it was trained only with the SEEM it was trained with.
  auto pair_of_files = [](const std::string& network, const std::string& seem, const std::string& network_source,
                          const std::string& seem_source) {
    if (network.empty() || seem.empty()) {
      const std::string& given = network.empty() ? seem_source : network_source;
      const std::string& missing = network.empty() ? network_source : seem_source;
      throw IoError(given + " without " + missing +
                    ": a network fuses as trained only with its own SEEM; give both, or a model by name");
    }
    return Model{"", "", must_exist(network, network_source), must_exist(seem, seem_source)};
  };
  if (files_given) return pair_of_files(choice.weights, choice.seem_weights, names.weights, names.seem_weights);
  const std::string network_env = environment(kNetworkWeights.env), seem_env = environment(kSeemWeights.env);
  if (choice.model.empty() && (!network_env.empty() || !seem_env.empty())) {
    return pair_of_files(network_env, seem_env, kNetworkWeights.env, kSeemWeights.env);
  }
  const std::string wanted = choice.model.empty() ? kDefaultModel : choice.model;
  const auto models = shipped_models();
  for (const auto& m : models) {
    if (m.name == wanted) return m;
  }
  std::string looked_in;
  for (const auto& dir : model_dirs()) looked_in += (looked_in.empty() ? "" : ", ") + dir;
  if (choice.model.empty()) {
    throw IoError("no shipped default model (efcnet_default.pth, seem_default.pth and models.tsv in one of " +
                  looked_in + "): name one with " + names.model + ", or give " + names.weights + " and " +
                  names.seem_weights);
  }
  throw IoError("no model named \"" + wanted + "\" (given by " + names.model +
                "); the shipped models: " + names_of(models) + " (in " + looked_in + ")");
}

std::string resolve_weights(const WeightsSpec& spec, const std::string& given, const std::string& argument) {
  if (!given.empty()) return must_exist(given, argument);
  if (const std::string env = environment(spec.env); !env.empty()) return must_exist(env, spec.env);
  std::string looked_in;
  for (const auto& dir : model_dirs()) {
    const std::string candidate = (fs::path(dir) / spec.default_file).string();
    if (is_file(candidate)) return candidate;
    looked_in += (looked_in.empty() ? "" : ", ") + dir;
  }
  throw IoError("no " + spec.what + " weights: name a .pth file with " + argument + " or set " + spec.env +
                " (no shipped " + spec.default_file + " in " + looked_in + ")");
}

}  // namespace efcnet
