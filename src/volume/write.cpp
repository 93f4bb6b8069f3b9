// Writing NIfTI volumes atomically: ITK writes a hidden temporary beside the target, whose bytes
// then go through write_file_atomic (the one place that renames into place).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <itkImageFileWriter.h>
#include <itkNiftiImageIO.h>

#include "efcnet/volume.h"
#include "volume/itk_convert.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;

// Removes the temporary on every path.
class ScratchFile {
 public:
  explicit ScratchFile(std::string path) : path_(std::move(path)) {}
  ~ScratchFile() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// <dir>/.<stem>.tmp-<pid>-<n><.nii or .nii.gz>: hidden (directory mode skips it) and with the
// extension that tells ITK whether to compress.
std::string scratch_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  const fs::path target(path);
  const std::string name = target.filename().string();
  const std::string stem = volume_stem(path);
  const std::string extension = name.substr(stem.size());
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  return dir + "/." + stem + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) +
         extension;
}

template <typename Image>
void write_itk(const std::string& path, const Image* image, WriteMode mode) {
  if (!has_volume_extension(path)) throw IoError(path + ": a volume is written as .nii or .nii.gz");
  if (mode == WriteMode::no_clobber && fs::exists(fs::symlink_status(path))) {
    throw OutputExistsError(path);
  }
  ScratchFile scratch(scratch_name(path));
  auto writer = itk::ImageFileWriter<Image>::New();
  writer->SetImageIO(itk::NiftiImageIO::New());
  writer->SetFileName(scratch.path());
  writer->SetInput(image);
  try {
    writer->Update();
  } catch (const itk::ExceptionObject& e) {
    throw IoError(path + ": cannot write: " + detail::itk_message(e));
  }
  std::ifstream in(scratch.path(), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw IoError(path + ": cannot write: the temporary file could not be read back");
  write_file_atomic(path, bytes, mode);
}

}  // namespace

void write_volume_atomic(const std::string& path, const ByteVolume& volume, WriteMode mode) {
  const auto n = static_cast<std::size_t>(volume.geometry.voxel_count());
  if (volume.voxels.size() != n * static_cast<std::size_t>(volume.channels) ||
      (volume.channels != 1 && volume.channels != 3)) {
    throw VolumeError(path + ": a volume of " + std::to_string(volume.channels) + " channel(s) does not match its " +
                      volume.geometry.text());
  }
  if (volume.channels == 1) {
    auto image = detail::allocate_image<detail::ByteImage>(volume.geometry);
    std::copy(volume.voxels.begin(), volume.voxels.end(), image->GetBufferPointer());
    write_itk(path, image.GetPointer(), mode);
    return;
  }
  auto image = detail::allocate_image<detail::RgbImage>(volume.geometry);
  auto* rgb = image->GetBufferPointer();
  for (std::size_t v = 0; v < n; ++v) {  // B, G, R -> R, G, B
    rgb[v][0] = volume.voxels[3 * v + 2];
    rgb[v][1] = volume.voxels[3 * v + 1];
    rgb[v][2] = volume.voxels[3 * v];
  }
  write_itk(path, image.GetPointer(), mode);
}

void write_volume_atomic(const std::string& path, const Volume& volume, WriteMode mode) {
  if (volume.voxels.size() != static_cast<std::size_t>(volume.geometry.voxel_count())) {
    throw VolumeError(path + ": the voxels do not match the " + volume.geometry.text());
  }
  const auto image = detail::to_itk(volume);
  write_itk(path, image.GetPointer(), mode);
}

}  // namespace efcnet
