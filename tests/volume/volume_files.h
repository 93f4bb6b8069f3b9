// Volumes written by the tests through ITK itself (not through efcnet's writer): NIfTI files of
// any pixel type, 4D series, DICOM series with per-slice positions and rescale tags.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <itkGDCMImageIO.h>
#include <itkImage.h>
#include <itkImageFileWriter.h>
#include <itkMetaDataObject.h>
#include <itkNiftiImageIO.h>

#include "efcnet/volume.h"

namespace efcnet::testing {

// A geometry from its parts (direction row-major, columns = voxel axes in LPS).
inline VolumeGeometry make_geometry(std::array<int64_t, 3> size, std::array<double, 3> spacing,
                                    std::array<double, 3> origin,
                                    std::array<double, 9> direction = {1, 0, 0, 0, 1, 0, 0, 0, 1}) {
  VolumeGeometry g;
  g.size = size;
  g.spacing = spacing;
  g.origin = origin;
  g.direction = direction;
  return g;
}

template <typename Pixel, unsigned Dim>
typename itk::Image<Pixel, Dim>::Pointer itk_image(const VolumeGeometry& g, int frames = 1) {
  using Image = itk::Image<Pixel, Dim>;
  auto image = Image::New();
  typename Image::RegionType region;
  typename Image::SpacingType spacing;
  typename Image::PointType origin;
  typename Image::DirectionType direction;
  direction.SetIdentity();
  for (unsigned a = 0; a < Dim; ++a) {
    region.SetSize(a, a < 3 ? static_cast<itk::SizeValueType>(g.size[a]) : static_cast<itk::SizeValueType>(frames));
    region.SetIndex(a, 0);
    spacing[a] = a < 3 ? g.spacing[a] : 1.0;
    origin[a] = a < 3 ? g.origin[a] : 0.0;
    for (unsigned c = 0; c < 3 && a < 3; ++c) direction(a, c) = g.direction[a * 3 + c];
  }
  image->SetRegions(region);
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  return image;
}

// Writes `values` (i fastest; frames after one another for 4D) as a NIfTI of pixel type Pixel.
template <typename Pixel, unsigned Dim = 3>
void write_nifti(const std::string& path, const VolumeGeometry& g, const std::vector<float>& values, int frames = 1,
                 bool big_endian = false) {
  auto image = itk_image<Pixel, Dim>(g, frames);
  Pixel* out = image->GetBufferPointer();
  for (std::size_t v = 0; v < values.size(); ++v) out[v] = static_cast<Pixel>(values[v]);
  auto io = itk::NiftiImageIO::New();
  if (big_endian) io->SetByteOrderToBigEndian();
  auto writer = itk::ImageFileWriter<itk::Image<Pixel, Dim>>::New();
  writer->SetImageIO(io);
  writer->SetFileName(path);
  writer->SetInput(image);
  writer->Update();
}

inline std::string dicom_numbers(std::initializer_list<double> values) {
  std::ostringstream out;
  out.precision(10);
  bool first = true;
  for (const double v : values) {
    out << (first ? "" : "\\") << v;
    first = false;
  }
  return out.str();
}

struct DicomSeriesOptions {
  std::string series_uid = "1.2.826.0.1.3680043.2.1125.7701.1";
  std::string frame_of_reference_uid = "1.2.826.0.1.3680043.2.1125.7701.9";
  std::string description = "efcnet test series";
  // Rescale tags; GDCM's writer stores (value - intercept) / slope and needs a whole slope.
  double slope = 1, intercept = 0;
  unsigned shuffle_seed = 0;  // file names in a shuffled order when not 0
  std::string name_prefix = "img";
  // When not empty: slice k at this distance (mm) from the origin along the k axis, instead of
  // k x spacing (a missing, duplicated or uneven slice).
  std::vector<double> slice_positions;
  // Tags written into one slice's file over the others' values: slice_tags[k][tag] = value.
  std::map<int64_t, std::map<std::string, std::string>> slice_tags;
  // One slice's pixel spacing (column, row: i, j) over the grid's (GDCM writes the image's own).
  std::map<int64_t, std::array<double, 2>> slice_pixel_spacing;
};

// Writes a volume on an axis-aligned or oblique grid as one int16 DICOM file per k-slice, with
// Image Position/Orientation (Patient) and the rescale tags, into `dir`.
inline void write_dicom_series(const std::string& dir, const VolumeGeometry& g, const std::vector<float>& values,
                               const DicomSeriesOptions& options = {}) {
  using Slice = itk::Image<int16_t, 2>;
  std::vector<int> file_number(static_cast<std::size_t>(g.size[2]));
  for (std::size_t k = 0; k < file_number.size(); ++k) file_number[k] = static_cast<int>(k);
  if (options.shuffle_seed != 0)
    std::shuffle(file_number.begin(), file_number.end(), std::mt19937(options.shuffle_seed));
  const auto& d = g.direction;
  for (int64_t k = 0; k < g.size[2]; ++k) {
    auto slice = Slice::New();
    Slice::RegionType region;
    region.SetSize(0, static_cast<itk::SizeValueType>(g.size[0]));
    region.SetSize(1, static_cast<itk::SizeValueType>(g.size[1]));
    slice->SetRegions(region);
    slice->Allocate();
    int16_t* out = slice->GetBufferPointer();
    const std::size_t n = static_cast<std::size_t>(g.size[0] * g.size[1]);
    for (std::size_t v = 0; v < n; ++v)
      out[v] = static_cast<int16_t>(std::lround(values[static_cast<std::size_t>(k) * n + v]));
    Slice::SpacingType spacing;
    const auto own_spacing = options.slice_pixel_spacing.find(k);
    spacing[0] = own_spacing != options.slice_pixel_spacing.end() ? own_spacing->second[0] : g.spacing[0];
    spacing[1] = own_spacing != options.slice_pixel_spacing.end() ? own_spacing->second[1] : g.spacing[1];
    slice->SetSpacing(spacing);
    const double at = options.slice_positions.empty()
                          ? static_cast<double>(k)
                          : options.slice_positions[static_cast<std::size_t>(k)] / g.spacing[2];
    const auto position = g.physical_point(0, 0, at);
    itk::MetaDataDictionary& dict = slice->GetMetaDataDictionary();
    auto set = [&dict](const std::string& tag, const std::string& value) {
      itk::EncapsulateMetaData<std::string>(dict, tag, value);
    };
    set("0008|0016", "1.2.840.10008.5.1.4.1.1.4");  // MR Image Storage
    set("0008|0018", options.series_uid + "." + std::to_string(k + 1));
    set("0008|0060", "MR");
    set("0008|103e", options.description);
    set("0010|0010", "Phantom^Test");
    set("0020|000d", "1.2.826.0.1.3680043.2.1125.7701");
    set("0020|000e", options.series_uid);
    set("0020|0052", options.frame_of_reference_uid);
    set("0020|0013", std::to_string(k + 1));
    set("0020|0032", dicom_numbers({position[0], position[1], position[2]}));
    set("0020|0037", dicom_numbers({d[0], d[3], d[6], d[1], d[4], d[7]}));
    set("0028|0004", "MONOCHROME2");
    set("0028|0030", dicom_numbers({spacing[1], spacing[0]}));  // row spacing, column spacing
    set("0018|0050", dicom_numbers({g.spacing[2]}));
    set("0028|1052", dicom_numbers({options.intercept}));
    set("0028|1053", dicom_numbers({options.slope}));
    if (const auto own = options.slice_tags.find(k); own != options.slice_tags.end()) {
      for (const auto& [tag, value] : own->second) set(tag, value);
    }
    auto io = itk::GDCMImageIO::New();
    io->KeepOriginalUIDOn();
    auto writer = itk::ImageFileWriter<Slice>::New();
    writer->SetImageIO(io);
    char name[64];
    std::snprintf(name, sizeof name, "%s_%03d.dcm", options.name_prefix.c_str(),
                  file_number[static_cast<std::size_t>(k)]);
    writer->SetFileName(dir + "/" + name);
    writer->SetInput(slice);
    writer->Update();
  }
}

// The voxel of `g` nearest to physical point p (may be outside).
inline std::array<long, 3> nearest_voxel(const VolumeGeometry& g, const std::array<double, 3>& p) {
  // Solve p = origin + D * diag(spacing) * index for an orthonormal D: index = D^T (p - origin) / spacing.
  std::array<long, 3> index{};
  for (int c = 0; c < 3; ++c) {
    double along = 0;
    for (int r = 0; r < 3; ++r) along += g.direction[r * 3 + c] * (p[r] - g.origin[r]);
    index[c] = std::lround(along / g.spacing[c]);
  }
  return index;
}

inline std::size_t linear_index(const VolumeGeometry& g, long i, long j, long k) {
  return static_cast<std::size_t>(i + g.size[0] * (j + g.size[1] * k));
}

// `volume` (scalar) restored to another grid holding the same voxel centres (a permutation and
// flips of its axes): for each voxel of `target`, the value at the same physical point.
template <typename T>
std::vector<T> same_points(const VolumeGeometry& from, const std::vector<T>& values, const VolumeGeometry& target,
                           int channels = 1) {
  std::vector<T> out(values.size());
  std::size_t v = 0;
  for (int64_t k = 0; k < target.size[2]; ++k)
    for (int64_t j = 0; j < target.size[1]; ++j)
      for (int64_t i = 0; i < target.size[0]; ++i, ++v) {
        const auto idx = nearest_voxel(from, target.physical_point(double(i), double(j), double(k)));
        const std::size_t src = linear_index(from, idx[0], idx[1], idx[2]);
        for (int c = 0; c < channels; ++c) out[v * channels + c] = values[src * channels + c];
      }
  return out;
}

}  // namespace efcnet::testing
