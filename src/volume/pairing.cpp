// Directory mode for volumes: .nii / .nii.gz files and DICOM series directories paired by name.
#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "efcnet/volume.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;

// stem -> every volume in `dir` with that stem (files by volume_stem, directories by name).
std::map<std::string, std::vector<std::string>> volumes_by_stem(const std::string& dir) {
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found) throw IoError(dir + ": no such directory");
  if (status.type() != fs::file_type::directory) throw IoError(dir + ": not a directory");
  std::map<std::string, std::vector<std::string>> by_stem;
  fs::directory_iterator it(dir, ec);
  if (ec) throw IoError(dir + ": cannot list: " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    if (name.empty() || name[0] == '.') continue;  // hidden, including our own temporaries
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      by_stem[name].push_back(path.string());
    } else if (it->is_regular_file(type_ec) && has_volume_extension(name)) {
      by_stem[volume_stem(name)].push_back(path.string());
    }
  }
  if (ec) throw IoError(dir + ": cannot list: " + ec.message());
  for (auto& [stem, paths] : by_stem) std::sort(paths.begin(), paths.end());
  return by_stem;
}

}  // namespace

bool directory_holds_volumes(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  return !volumes_by_stem(dir).empty();
}

Pairing pair_volumes_by_name(const std::string& anatomical_dir, const std::string& functional_dir) {
  const auto anatomical = volumes_by_stem(anatomical_dir);
  const auto functional = volumes_by_stem(functional_dir);
  Pairing pairing;
  auto sort_out = [&pairing](const std::vector<std::string>& paths, std::vector<std::string>& unpaired) {
    if (paths.size() > 1) {
      pairing.ambiguous.insert(pairing.ambiguous.end(), paths.begin(), paths.end());
    } else {
      unpaired.push_back(paths.front());
    }
  };
  for (const auto& [stem, paths] : anatomical) {
    const auto partner = functional.find(stem);
    if (partner != functional.end() && paths.size() == 1 && partner->second.size() == 1) {
      pairing.pairs.push_back({stem, paths.front(), partner->second.front()});
    } else {
      sort_out(paths, pairing.unpaired_anatomical);
    }
  }
  for (const auto& [stem, paths] : functional) {
    const auto partner = anatomical.find(stem);
    if (partner == anatomical.end() || paths.size() != 1 || partner->second.size() != 1) {
      sort_out(paths, pairing.unpaired_functional);
    }
  }
  std::sort(pairing.ambiguous.begin(), pairing.ambiguous.end());
  return pairing;
}

}  // namespace efcnet
