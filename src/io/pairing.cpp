#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "efcnet/image.h"
#include "stem_pairing.h"

namespace efcnet {

namespace fs = std::filesystem;

namespace io {

EntriesByStem entries_by_stem(const std::string& dir,
                              const std::function<std::optional<std::string>(const fs::directory_entry&)>& stem_of) {
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found) throw IoError(dir + ": no such directory");
  if (status.type() != fs::file_type::directory) throw IoError(dir + ": not a directory");

  EntriesByStem by_stem;
  fs::directory_iterator it(dir, ec);
  if (ec) throw IoError(dir + ": cannot list: " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // hidden, including our own temporaries
    if (const auto stem = stem_of(*it)) by_stem[*stem].push_back(it->path().string());
  }
  if (ec) throw IoError(dir + ": cannot list: " + ec.message());
  for (auto& [stem, paths] : by_stem) std::sort(paths.begin(), paths.end());
  return by_stem;
}

Pairing pair_stems(const EntriesByStem& anatomical, const EntriesByStem& functional) {
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

}  // namespace io

Pairing pair_by_name(const std::string& anatomical_dir, const std::string& functional_dir) {
  const auto image_stem = [](const fs::directory_entry& entry) -> std::optional<std::string> {
    std::error_code ec;
    const fs::path& path = entry.path();
    if (!entry.is_regular_file(ec) || !has_image_extension(path.filename().string())) return std::nullopt;
    return path.stem().string();
  };
  return io::pair_stems(io::entries_by_stem(anatomical_dir, image_stem),
                        io::entries_by_stem(functional_dir, image_stem));
}

std::vector<std::pair<std::string, std::string>> unpaired_reasons(
    const Pairing& pairing, const std::string& kind, const std::string& anatomical_dir,
    const std::string& functional_dir, const std::function<std::string(const std::string&)>& stem_of) {
  std::vector<std::pair<std::string, std::string>> reasons;
  for (const auto& path : pairing.unpaired_anatomical)
    reasons.emplace_back(path, "no single functional " + kind + " named " + stem_of(path) + " in " + functional_dir);
  for (const auto& path : pairing.unpaired_functional)
    reasons.emplace_back(path, "no single anatomical " + kind + " named " + stem_of(path) + " in " + anatomical_dir);
  for (const auto& path : pairing.ambiguous)
    reasons.emplace_back(path, "another " + kind + " in its directory is also named " + stem_of(path));
  return reasons;
}

}  // namespace efcnet
