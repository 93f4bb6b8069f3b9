// Reading NIfTI files and DICOM series or files through ITK, as float in the file's own units.
#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <itkGDCMImageIO.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImageFileReader.h>
#include <itkImageSeriesReader.h>
#include <itkNiftiImageIO.h>
#include <nifti1_io.h>  // ITK's NIfTI library (ITKniftiio), for the header's data size
#include <zlib.h>

#include "efcnet/volume.h"
#include "volume/itk_convert.h"
#include "volume/nifti_header.h"
#include "volume/series_check.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;
using detail::FloatImage;
using detail::itk_message;
using Float4Image = itk::Image<float, 4>;

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

enum class Source { nifti, dicom_file, dicom_series };

// What kind of input `path` is; IoError for a missing path or a file of another kind.
Source source_of(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) throw IoError(path + ": no such file or directory");
  if (status.type() == fs::file_type::directory) return Source::dicom_series;
  require_regular_file(path);  // a FIFO or a device would block ITK's reader
  if (has_volume_extension(path)) return Source::nifti;
  if (is_dicom_file(path)) return Source::dicom_file;
  throw IoError(path + ": neither a NIfTI file (.nii, .nii.gz) nor a DICOM file or series directory");
}

std::string series_description(const std::string& file) {
  auto io = itk::GDCMImageIO::New();
  io->SetFileName(file);
  std::string description;
  try {
    io->ReadImageInformation();
    io->GetValueFromTag("0008|103e", description);
  } catch (const itk::ExceptionObject&) {}
  while (!description.empty() && description.back() == ' ') description.pop_back();
  return description.empty() ? "no description" : description;
}

// The files of the one DICOM series in `dir`, sorted by position along the slice normal.
std::vector<std::string> dicom_series_files(const std::string& dir) {
  auto names = itk::GDCMSeriesFileNames::New();
  names->SetUseSeriesDetails(false);  // one series per Series Instance UID
  std::vector<std::string> uids;
  try {
    names->SetDirectory(dir);
    uids = names->GetSeriesUIDs();
  } catch (const itk::ExceptionObject& e) {
    throw IoError(dir + ": cannot list DICOM files: " + itk_message(e));
  }
  if (uids.empty()) throw VolumeError(dir + ": no DICOM images in this directory");
  if (uids.size() > 1) {
    std::string list;
    for (const std::string& uid : uids) {
      const auto files = names->GetFileNames(uid);
      list += (list.empty() ? "" : "; ") + uid + " (" +
              (files.empty() ? "no files" : series_description(files.front())) + ", " + std::to_string(files.size()) +
              " files)";
    }
    throw VolumeError(dir + ": holds " + std::to_string(uids.size()) +
                      " DICOM series, give a directory with one: " + list);
  }
  return names->GetFileNames(uids.front());
}

// A header that no voxel should be read for: unusable geometry, or more values than the library
// reads (refused here, before ITK allocates them).
void check_header(const VolumeInfo& info, const std::string& path) {
  std::string problem = geometry_problem(info.geometry);
  const double values = static_cast<double>(info.geometry.voxel_count()) * info.frames * info.components;
  if (problem.empty() && (info.frames < 1 || info.components < 1)) problem = "a header without values";
  if (problem.empty() && values > static_cast<double>(kMaxVolumeValues)) {
    problem = info.geometry.text() + " with " + std::to_string(info.frames) + " frame(s) of " +
              std::to_string(info.components) + " component(s): more than " + std::to_string(kMaxVolumeValues) +
              " values";
  }
  if (!problem.empty()) throw VolumeError(path + ": " + problem);
}

// A DICOM series' reader with its files' headers read and checked, no voxels yet.
struct SeriesReader {
  itk::ImageSeriesReader<FloatImage>::Pointer reader;
  detail::SeriesSlices slices;
};
SeriesReader series_reader(const std::string& dir, VolumeInfo& info, const VolumeReadOptions& options) {
  const std::vector<std::string> files = dicom_series_files(dir);
  SeriesReader series{itk::ImageSeriesReader<FloatImage>::New(),
                      detail::check_series_slices(dir, files, options.allow_uneven_slices,
                                                  option_name(options.option_name, "allow_uneven_slices"))};
  series.reader->SetImageIO(itk::GDCMImageIO::New());
  series.reader->SetFileNames(files);
  try {
    series.reader->UpdateOutputInformation();
  } catch (const itk::ExceptionObject& e) {
    throw IoError(dir + ": cannot read: " + itk_message(e));
  }
  info.geometry = detail::geometry_of(*series.reader->GetOutput());
  if (info.geometry.size[2] != static_cast<int64_t>(files.size())) {
    throw VolumeError(dir + ": its " + std::to_string(files.size()) + " files read as " +
                      std::to_string(info.geometry.size[2]) + " slices");
  }
  if (!series.slices.even) info.geometry = detail::even_series_geometry(info.geometry, series.slices);
  info.dimensions = 3;
  check_header(info, dir);
  return series;
}

itk::ImageIOBase::Pointer file_io(Source source) {
  if (source == Source::nifti) return itk::NiftiImageIO::New().GetPointer();
  return itk::GDCMImageIO::New().GetPointer();
}

// Header of one file.
VolumeInfo file_info(const std::string& path, Source source) {
  if (source == Source::nifti) detail::check_nifti_header(path);
  auto io = file_io(source);
  io->SetFileName(path);
  try {
    if (!io->CanReadFile(path.c_str()))
      throw IoError(path + ": not a readable " + (source == Source::nifti ? "NIfTI" : "DICOM") + " file");
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    throw IoError(path + ": cannot read: " + itk_message(e));
  }
  VolumeInfo info;
  info.dimensions = static_cast<int>(io->GetNumberOfDimensions());
  info.components = static_cast<int>(io->GetNumberOfComponents());
  if (info.dimensions > 4)
    throw VolumeError(path + ": has " + std::to_string(info.dimensions) + " dimensions (at most 4)");
  const int spatial = std::min(info.dimensions, 3);
  for (int a = 0; a < spatial; ++a) {
    info.geometry.size[a] = static_cast<int64_t>(io->GetDimensions(a));
    info.geometry.spacing[a] = io->GetSpacing(a);
    info.geometry.origin[a] = io->GetOrigin(a);
    const std::vector<double> axis = io->GetDirection(a);
    for (int r = 0; r < spatial; ++r) info.geometry.direction[r * 3 + a] = axis[r];
  }
  for (int a = spatial; a < 3; ++a) info.geometry.size[a] = 1;
  if (info.dimensions == 4) info.frames = static_cast<int>(std::min<itk::SizeValueType>(io->GetDimensions(3), INT_MAX));
  check_header(info, path);
  return info;
}

// ITK's NIfTI reader returns whatever a truncated or corrupt file yields without saying so: check
// that the (decompressed) file holds every byte its header announces, and that a gzip stream
// decompresses without error (its CRC included). gzread reads uncompressed files as they are.
void check_complete_nifti(const std::string& path) {
  nifti_image* header = nifti_image_read(path.c_str(), 0);
  if (header == nullptr) throw IoError(path + ": cannot read: not a NIfTI-1 header");
  const uint64_t needed = static_cast<uint64_t>(header->iname_offset) +
                          static_cast<uint64_t>(header->nvox) * static_cast<uint64_t>(header->nbyper);
  nifti_image_free(header);
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw IoError(path + ": cannot open");
  gzbuffer(file, 1 << 18);
  std::vector<char> buffer(1 << 20);
  uint64_t total = 0;
  int n = 0;
  while ((n = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0) total += static_cast<uint64_t>(n);
  int status = Z_OK;
  const std::string problem = gzerror(file, &status);
  gzclose(file);
  if (n < 0 || (status != Z_OK && status != Z_STREAM_END)) {
    throw IoError(path + ": cannot read: corrupt or truncated compressed data (" + problem + ")");
  }
  if (total < needed) {
    throw IoError(path + ": truncated: " + std::to_string(total) + " bytes of the " + std::to_string(needed) +
                  " its header announces");
  }
}

template <typename Reader>
void update(Reader& reader, const std::string& path) {
  try {
    reader.Update();
  } catch (const itk::ExceptionObject& e) {
    throw IoError(path + ": cannot read: " + itk_message(e));
  } catch (const std::bad_alloc&) {
    throw IoError(path + ": cannot read: out of memory");
  }
}

Volume read_series(const std::string& dir, const VolumeReadOptions& options) {
  VolumeInfo info;
  const SeriesReader series = series_reader(dir, info, options);
  update(*series.reader, dir);
  Volume stacked = detail::from_itk(*series.reader->GetOutput());
  return series.slices.even ? stacked : detail::resample_uneven_series(stacked, series.slices);
}

// One frame or the mean of a 4D file's frames, with its first three axes' geometry.
Volume read_frames(const std::string& path, const VolumeInfo& info, const VolumeReadOptions& options) {
  const FrameChoice& frame = options.frame;
  if (frame.kind == FrameChoice::Kind::none) {
    const std::string name = option_name(options.option_name, "frame");
    throw VolumeError(path + ": is 4D with " + std::to_string(info.frames) + " frames; choose one with " + name +
                      " N (0.." + std::to_string(info.frames - 1) + ") or their mean with " + name + " mean");
  }
  if (frame.kind == FrameChoice::Kind::index && (frame.index < 0 || frame.index >= info.frames)) {
    throw VolumeError(path + ": has " + std::to_string(info.frames) + " frames, so no frame " +
                      std::to_string(frame.index) + " (frames count from 0)");
  }
  check_complete_nifti(path);
  auto reader = itk::ImageFileReader<Float4Image>::New();
  reader->SetImageIO(itk::NiftiImageIO::New());
  reader->SetFileName(path);
  update(*reader, path);
  const Float4Image& image = *reader->GetOutput();
  Volume volume;
  volume.geometry = info.geometry;
  for (unsigned a = 0; a < 3; ++a) {
    volume.geometry.spacing[a] = image.GetSpacing()[a];
    volume.geometry.origin[a] = image.GetOrigin()[a];
    for (unsigned c = 0; c < 3; ++c) volume.geometry.direction[a * 3 + c] = image.GetDirection()(a, c);
  }
  const auto n = static_cast<std::size_t>(volume.geometry.voxel_count());
  const float* data = image.GetBufferPointer();
  if (frame.kind == FrameChoice::Kind::index) {
    volume.voxels.assign(data + n * frame.index, data + n * (frame.index + 1));
    return volume;
  }
  std::vector<double> sum(n, 0.0);
  for (int t = 0; t < info.frames; ++t) {
    const float* f = data + n * t;
    for (std::size_t v = 0; v < n; ++v) sum[v] += f[v];
  }
  volume.voxels.resize(n);
  for (std::size_t v = 0; v < n; ++v) volume.voxels[v] = static_cast<float>(sum[v] / info.frames);
  return volume;
}

}  // namespace

void show_volume_library_warnings(bool show) { itk::Object::SetGlobalWarningDisplay(show); }

bool has_volume_extension(const std::string& path) {
  const std::string name = lower(fs::path(path).filename().string());
  return ends_with(name, ".nii") || ends_with(name, ".nii.gz");
}

std::string volume_stem(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  if (name.empty()) name = fs::path(path).parent_path().filename().string();  // "dir/"
  const std::string low = lower(name);
  if (ends_with(low, ".nii.gz")) return name.substr(0, name.size() - 7);
  if (ends_with(low, ".nii")) return name.substr(0, name.size() - 4);
  return name;
}

bool is_dicom_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;  // opening a FIFO would block
  std::ifstream in(path, std::ios::binary);
  char head[132];
  if (!in.read(head, sizeof head)) return false;
  return std::string(head + 128, 4) == "DICM";
}

bool is_volume_path(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return true;
  return has_volume_extension(path) || is_dicom_file(path);
}

FrameChoice parse_frame(const std::string& text) {
  FrameChoice choice;
  if (text == "mean") {
    choice.kind = FrameChoice::Kind::mean;
    return choice;
  }
  if (!text.empty() && text.size() < 9 &&
      std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
    choice.kind = FrameChoice::Kind::index;
    choice.index = std::stoi(text);
    return choice;
  }
  throw OptionError("frame '" + text + "' is neither a frame number (from 0) nor 'mean'");
}

VolumeInfo read_volume_info(const std::string& path, const VolumeReadOptions& options) {
  const Source source = source_of(path);
  if (source != Source::dicom_series) return file_info(path, source);
  VolumeInfo info;
  series_reader(path, info, options);
  return info;
}

Volume read_volume(const std::string& path, const VolumeReadOptions& options) {
  const Source source = source_of(path);
  if (source == Source::dicom_series) return read_series(path, options);
  const VolumeInfo info = file_info(path, source);
  if (info.components != 1) {
    throw VolumeError(path + ": holds " + std::to_string(info.components) +
                      " values per voxel (colour?), not one intensity");
  }
  if (info.dimensions == 4 && info.frames > 1) return read_frames(path, info, options);
  if (source == Source::nifti) check_complete_nifti(path);
  auto reader = itk::ImageFileReader<FloatImage>::New();
  reader->SetImageIO(file_io(source));
  reader->SetFileName(path);
  update(*reader, path);
  return detail::from_itk(*reader->GetOutput());
}

ByteVolume read_byte_volume(const std::string& path) {
  const Source source = source_of(path);
  if (source != Source::nifti) throw IoError(path + ": a fused volume must be a NIfTI file (.nii, .nii.gz)");
  const VolumeInfo info = file_info(path, source);
  ByteVolume volume;
  if (info.components == 3) {
    check_complete_nifti(path);
    auto reader = itk::ImageFileReader<detail::RgbImage>::New();
    reader->SetImageIO(itk::NiftiImageIO::New());
    reader->SetFileName(path);
    update(*reader, path);
    volume.geometry = detail::geometry_of(*reader->GetOutput());
    volume.channels = 3;
    const auto n = static_cast<std::size_t>(volume.geometry.voxel_count());
    volume.voxels.resize(n * 3);
    const auto* rgb = reader->GetOutput()->GetBufferPointer();
    for (std::size_t v = 0; v < n; ++v) {
      volume.voxels[3 * v] = rgb[v][2];
      volume.voxels[3 * v + 1] = rgb[v][1];
      volume.voxels[3 * v + 2] = rgb[v][0];
    }
    return volume;
  }
  if (info.components != 1) throw VolumeError(path + ": neither grey nor RGB");
  const Volume scalar = read_volume(path);
  volume.geometry = scalar.geometry;
  volume.voxels.resize(scalar.voxels.size());
  for (std::size_t v = 0; v < scalar.voxels.size(); ++v) {
    const float x = scalar.voxels[v];
    if (!(x >= 0 && x <= 255 && x == std::floor(x)))
      throw VolumeError(path + ": is not an 8-bit volume (a value " + std::to_string(x) + ")");
    volume.voxels[v] = static_cast<uint8_t>(x);
  }
  return volume;
}

}  // namespace efcnet
