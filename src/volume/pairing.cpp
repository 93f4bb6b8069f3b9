// Directory mode for volumes: .nii / .nii.gz files and DICOM series directories paired by name.
#include <filesystem>
#include <optional>
#include <string>

#include "efcnet/volume.h"
#include "io/stem_pairing.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;

// Files by volume_stem, directories (DICOM series) by name.
io::EntriesByStem volumes_by_stem(const std::string& dir) {
  return io::entries_by_stem(dir, [](const fs::directory_entry& entry) -> std::optional<std::string> {
    std::error_code ec;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory(ec)) return name;
    if (entry.is_regular_file(ec) && has_volume_extension(name)) return volume_stem(name);
    return std::nullopt;
  });
}

bool holds_dicom_file(const fs::path& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (is_dicom_file(it->path().string())) return true;
  }
  return false;
}

}  // namespace

bool directory_holds_volumes(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  const auto volumes = io::entries_by_stem(dir, [](const fs::directory_entry& entry) -> std::optional<std::string> {
    std::error_code entry_error;
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file(entry_error) && has_volume_extension(name)) return volume_stem(name);
    if (entry.is_directory(entry_error) && holds_dicom_file(entry.path())) return name;
    return std::nullopt;
  });
  return !volumes.empty();
}

Pairing pair_volumes_by_name(const std::string& anatomical_dir, const std::string& functional_dir) {
  return io::pair_stems(volumes_by_stem(anatomical_dir), volumes_by_stem(functional_dir));
}

bool paths_name_volumes(const std::string& anatomical, const std::string& functional) {
  const bool a = !anatomical.empty() && is_volume_path(anatomical);
  const bool f = !functional.empty() && is_volume_path(functional);
  if (a != f && !anatomical.empty() && !functional.empty()) {
    const std::string& volume = a ? anatomical : functional;
    const std::string& image = a ? functional : anatomical;
    std::error_code ec;
    if (fs::is_directory(volume, ec)) return false;
    throw VolumeError(volume + " is a volume but " + image + " is a 2D image; give two volumes or two images");
  }
  return a || f;
}

bool directories_hold_volumes(const std::string& anatomical_dir, const std::string& functional_dir) {
  const bool a = !anatomical_dir.empty() && directory_holds_volumes(anatomical_dir);
  const bool f = !functional_dir.empty() && directory_holds_volumes(functional_dir);
  if (a != f && !anatomical_dir.empty() && !functional_dir.empty()) {
    throw VolumeError((a ? anatomical_dir : functional_dir) + " holds volumes but " +
                      (a ? functional_dir : anatomical_dir) +
                      " does not; give two directories of volumes or two of images");
  }
  return a || f;
}

}  // namespace efcnet
