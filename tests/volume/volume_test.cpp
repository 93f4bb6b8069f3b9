// Reading, geometry, resampling, windows, slicing and writing of volumes (efcnet/volume.h), with
// volumes the tests write through ITK itself.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <nifti1_io.h>

#include "efcnet/volume.h"
#include "support/temp_dir.h"
#include "volume/volume_files.h"

namespace efcnet {
namespace {

using testing::make_geometry;
using testing::TempDir;

std::vector<float> ramp(const VolumeGeometry& g, float scale = 1) {
  std::vector<float> values(static_cast<std::size_t>(g.voxel_count()));
  for (std::size_t v = 0; v < values.size(); ++v) values[v] = static_cast<float>((v * 7919) % 1000) * scale;
  return values;
}

// An oblique-free but non-identity direction: i along -x, j along +z, k along +y (det +1).
constexpr std::array<double, 9> kCoronalFlipped = {-1, 0, 0, 0, 0, 1, 0, 1, 0};

void expect_geometry_near(const VolumeGeometry& a, const VolumeGeometry& b, double tolerance) {
  EXPECT_EQ(a.size, b.size);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(a.spacing[i], b.spacing[i], tolerance) << "spacing " << i;
    EXPECT_NEAR(a.origin[i], b.origin[i], tolerance) << "origin " << i;
  }
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a.direction[i], b.direction[i], tolerance) << "direction " << i;
}

TEST(VolumeRead, NiftiKeepsGeometryAndValues) {
  TempDir dir;
  const auto g = make_geometry({12, 10, 8}, {1.5, 2.0, 3.0}, {-10.5, 20.25, 5.0}, kCoronalFlipped);
  const auto values = ramp(g, 0.5f);
  testing::write_nifti<float>(dir / "a.nii.gz", g, values);
  const VolumeInfo info = read_volume_info(dir / "a.nii.gz");
  EXPECT_EQ(info.dimensions, 3);
  EXPECT_EQ(info.frames, 1);
  expect_geometry_near(info.geometry, g, 1e-5);
  const Volume volume = read_volume(dir / "a.nii.gz");
  expect_geometry_near(volume.geometry, g, 1e-5);
  EXPECT_EQ(volume.voxels, values);
}

// A big-endian int16 NIfTI with scl_slope / scl_inter, as a program on a big-endian machine writes
// it: ITK writes little-endian, so the test swaps the header (nifti1_io's swap_nifti_header) and
// every sample itself.
TEST(VolumeRead, BigEndianInt16WithSlopeAndIntercept) {
  TempDir dir;
  const auto g = make_geometry({9, 7, 5}, {1, 1, 2}, {-3, 4, 5});
  const auto stored = ramp(g);
  const std::string path = dir / "be.nii";
  testing::write_nifti<int16_t>(path, g, stored);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  nifti_1_header header;
  ASSERT_GE(bytes.size(), sizeof header);
  std::memcpy(&header, bytes.data(), sizeof header);
  ASSERT_EQ(header.sizeof_hdr, 348);
  ASSERT_EQ(header.datatype, DT_INT16);
  const auto data_offset = static_cast<std::size_t>(header.vox_offset);
  header.scl_slope = 0.25f;
  header.scl_inter = -100.0f;
  swap_nifti_header(&header, 1);
  std::memcpy(bytes.data(), &header, sizeof header);
  for (std::size_t at = data_offset; at + 1 < bytes.size(); at += 2) std::swap(bytes[at], bytes[at + 1]);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_EQ(static_cast<unsigned char>(bytes[3]), 0x5C) << "sizeof_hdr is not big-endian";

  const Volume volume = read_volume(path);
  expect_geometry_near(volume.geometry, g, 1e-5);
  ASSERT_EQ(volume.voxels.size(), stored.size());
  for (std::size_t v = 0; v < stored.size(); ++v) ASSERT_FLOAT_EQ(volume.voxels[v], 0.25f * stored[v] - 100.0f) << v;
}

TEST(VolumeRead, FourDNeedsAFrameAndNamesTheCount) {
  TempDir dir;
  const auto g = make_geometry({6, 5, 4}, {2, 2, 2}, {0, 0, 0});
  const auto n = static_cast<std::size_t>(g.voxel_count());
  std::vector<float> values(n * 3);
  for (std::size_t v = 0; v < values.size(); ++v) values[v] = static_cast<float>(v / n * 10 + v % n);
  const std::string path = dir / "dyn.nii.gz";
  testing::write_nifti<float, 4>(path, g, values, 3);
  const VolumeInfo info = read_volume_info(path);
  EXPECT_EQ(info.dimensions, 4);
  EXPECT_EQ(info.frames, 3);
  try {
    read_volume(path);
    FAIL() << "a 4D volume without a frame was read";
  } catch (const VolumeError& e) {
    EXPECT_NE(std::string(e.what()).find("3 frames"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  const Volume second = read_volume(path, {parse_frame("1")});
  for (std::size_t v = 0; v < n; ++v) ASSERT_EQ(second.voxels[v], 10.0f + v) << v;
  const Volume mean = read_volume(path, {parse_frame("mean")});
  for (std::size_t v = 0; v < n; ++v) ASSERT_FLOAT_EQ(mean.voxels[v], 10.0f + v) << v;  // (0 + 10 + 20) / 3
  EXPECT_THROW(read_volume(path, {parse_frame("3")}), VolumeError);
  EXPECT_THROW(parse_frame("-1"), OptionError);
  EXPECT_THROW(parse_frame("first"), OptionError);
}

TEST(VolumeRead, TruncatedOrCorruptFilesAreIoErrors) {
  TempDir dir;
  const auto g = make_geometry({32, 32, 16}, {1, 1, 1}, {0, 0, 0});
  std::vector<float> values(static_cast<std::size_t>(g.voxel_count()));
  std::mt19937 rng(7);
  for (auto& v : values) v = static_cast<float>(rng() % 30000);  // incompressible enough
  testing::write_nifti<float>(dir / "whole.nii.gz", g, values);
  const std::string bytes = [&] {
    std::ifstream in(dir / "whole.nii.gz", std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }();
  std::ofstream(dir / "cut.nii.gz", std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  EXPECT_THROW(read_volume(dir / "cut.nii.gz"), IoError);
  std::ofstream(dir / "junk.nii.gz", std::ios::binary) << "not a volume at all";
  EXPECT_THROW(read_volume(dir / "junk.nii.gz"), IoError);
  std::string flipped = bytes;  // a corrupt byte inside the compressed stream (its CRC then fails)
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x55);
  std::ofstream(dir / "flip.nii.gz", std::ios::binary)
      .write(flipped.data(), static_cast<std::streamsize>(flipped.size()));
  EXPECT_THROW(read_volume(dir / "flip.nii.gz"), IoError);
  EXPECT_THROW(read_volume(dir / "missing.nii"), IoError);
}

// A small float NIfTI written by ITK, then its 348-byte NIfTI-1 header changed by `edit`: values
// that ITK's writer would not store (NaN spacing, a singular direction, absurd dimensions).
std::string nifti_with_header(const TempDir& dir, const std::string& name,
                              const std::function<void(nifti_1_header&)>& edit) {
  const std::string path = dir / name;
  const auto g = make_geometry({4, 3, 2}, {1, 1, 1}, {0, 0, 0});
  testing::write_nifti<float>(path, g, ramp(g));
  std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
  nifti_1_header header;
  file.read(reinterpret_cast<char*>(&header), sizeof header);
  EXPECT_EQ(header.sizeof_hdr, 348);
  edit(header);
  file.seekp(0);
  file.write(reinterpret_cast<const char*>(&header), sizeof header);
  return path;
}

// Each refusal comes from the header (read_volume_info too), as a VolumeError naming the file and
// what is wrong, before any voxel is read: the 27-teravoxel file below is 400 bytes long.
TEST(VolumeRead, HeadersWithUnusableGeometryOrAbsurdDimensionsAreRefused) {
  TempDir dir;
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  struct Case {
    std::string name, expected;
    std::function<void(nifti_1_header&)> edit;
  };
  const std::vector<Case> cases = {
      {"nan_spacing.nii", "spacing", [&](nifti_1_header& h) { h.pixdim[1] = static_cast<float>(nan); }},
      {"zero_spacing.nii", "spacing", [](nifti_1_header& h) { h.pixdim[2] = 0; }},
      {"infinite_spacing.nii", "spacing", [&](nifti_1_header& h) { h.pixdim[3] = static_cast<float>(inf); }},
      {"nan_direction.nii", "direction",
       [&](nifti_1_header& h) {
         h.quatern_b = static_cast<float>(nan);
         h.srow_x[0] = static_cast<float>(nan);
       }},
      {"singular_direction.nii", "direction",
       [](nifti_1_header& h) {
         h.qform_code = 0;
         h.sform_code = 1;
         for (float* row : {h.srow_x, h.srow_y, h.srow_z}) row[1] = row[0];  // j along i
       }},
      {"huge.nii", "voxels",
       [](nifti_1_header& h) {
         for (int a = 1; a <= 3; ++a) h.dim[a] = 30000;
       }},
  };
  for (const Case& c : cases) {
    const std::string path = nifti_with_header(dir, c.name, c.edit);
    for (const bool header_only : {true, false}) {
      try {
        if (header_only)
          read_volume_info(path);
        else
          read_volume(path);
        ADD_FAILURE() << c.name << " was read" << (header_only ? " (header)" : "");
      } catch (const VolumeError& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
        EXPECT_NE(message.find(c.expected), std::string::npos) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      } catch (const std::exception& e) {
        ADD_FAILURE() << c.name << ": not a VolumeError: " << e.what();
      }
    }
  }
}

// Each slice k holds 100 + 10 k (+ a pattern), so order mistakes show.
std::vector<float> slice_coded(const VolumeGeometry& g) {
  std::vector<float> values(static_cast<std::size_t>(g.voxel_count()));
  const std::size_t n = static_cast<std::size_t>(g.size[0] * g.size[1]);
  for (std::size_t v = 0; v < values.size(); ++v) values[v] = static_cast<float>(100 + 10 * (v / n) + v % 7);
  return values;
}

TEST(VolumeRead, DicomSeriesInShuffledFileOrderReadsInSlicePositionOrder) {
  TempDir dir;
  std::filesystem::create_directory(dir / "series");
  const auto g = make_geometry({16, 12, 9}, {0.8, 0.9, 2.5}, {-30, -20, 15});
  const auto values = slice_coded(g);
  testing::DicomSeriesOptions options;
  options.shuffle_seed = 11;
  testing::write_dicom_series(dir / "series", g, values, options);
  const Volume volume = read_volume(dir / "series");
  expect_geometry_near(volume.geometry, g, 1e-4);
  EXPECT_EQ(volume.voxels, values);
}

TEST(VolumeRead, DicomRescaleSlopeAndInterceptAreApplied) {
  TempDir dir;
  std::filesystem::create_directory(dir / "ct");
  const auto g = make_geometry({12, 12, 4}, {1, 1, 3}, {0, 0, 0});
  std::vector<float> values = slice_coded(g);
  for (auto& v : values) v = v * 2 - 1024;  // stored as (v + 1024) / 2
  testing::DicomSeriesOptions options;
  options.slope = 2;
  options.intercept = -1024;
  testing::write_dicom_series(dir / "ct", g, values, options);
  {  // the files do carry the rescale (so the values below are not just passed through)
    auto io = itk::GDCMImageIO::New();
    io->SetFileName(dir / "ct/img_000.dcm");
    io->ReadImageInformation();
    EXPECT_EQ(io->GetRescaleSlope(), 2);
    EXPECT_EQ(io->GetRescaleIntercept(), -1024);
  }
  const Volume volume = read_volume(dir / "ct");
  ASSERT_EQ(volume.voxels.size(), values.size());
  for (std::size_t v = 0; v < values.size(); ++v) ASSERT_NEAR(volume.voxels[v], values[v], 1e-3) << v;
  // A single file of the series reads as one slice, rescaled too.
  const Volume one = read_volume(dir / "ct/img_002.dcm");
  EXPECT_EQ(one.geometry.size[2], 1);
  EXPECT_NEAR(one.voxels[0], values[2 * 144], 1e-3);
}

TEST(VolumeRead, DicomDirectoriesWithoutImagesOrWithSeveralSeriesAreRefused) {
  TempDir dir;
  std::filesystem::create_directory(dir / "empty");
  std::ofstream(dir / "empty/readme.txt") << "no images here";
  try {
    read_volume(dir / "empty");
    FAIL();
  } catch (const VolumeError& e) {
    EXPECT_NE(std::string(e.what()).find("no DICOM images"), std::string::npos) << e.what();
  }
  std::filesystem::create_directory(dir / "two");
  const auto g = make_geometry({12, 12, 3}, {1, 1, 1}, {0, 0, 0});
  testing::DicomSeriesOptions first, second;
  first.series_uid = "1.2.826.0.1.3680043.2.1125.7701.10";
  first.description = "T1 axial";
  first.name_prefix = "a";
  second.series_uid = "1.2.826.0.1.3680043.2.1125.7701.20";
  second.description = "T2 axial";
  second.name_prefix = "b";
  testing::write_dicom_series(dir / "two", g, slice_coded(g), first);
  testing::write_dicom_series(dir / "two", g, slice_coded(g), second);
  try {
    read_volume_info(dir / "two");
    FAIL();
  } catch (const VolumeError& e) {
    const std::string message = e.what();
    for (const char* part : {"2 DICOM series", "7701.10", "7701.20", "T1 axial", "T2 axial"})
      EXPECT_NE(message.find(part), std::string::npos) << part << " not in: " << message;
  }
}

// A series written with these options (slice k at positions[k] mm along the stack), and the message
// read_volume_info refuses it with ("" if it reads).
std::string series_refusal(const std::string& dir, const testing::DicomSeriesOptions& options, int slices) {
  std::filesystem::create_directory(dir);
  const auto g = make_geometry({8, 6, slices}, {1, 1, 3}, {-4, -3, 10});
  testing::write_dicom_series(dir, g, slice_coded(g), options);
  try {
    read_volume_info(dir);
  } catch (const VolumeError& e) {
    return e.what();
  }
  return "";
}

TEST(DicomSeries, EachSliceIsCheckedAndAFailureNamesTheFilesAndPositions) {
  TempDir dir;
  testing::DicomSeriesOptions missing, duplicated, uneven, tilted, spacing, even;
  missing.slice_positions = {0, 3, 6, 12, 15};
  EXPECT_EQ(series_refusal(dir / "missing", missing, 5),
            dir / "missing" +
                ": a slice missing between 6.0 and 12.0 mm from the first slice (img_002.dcm, img_003.dcm), spacing "
                "3.0 mm; allow_uneven_slices resamples it onto an even grid from the slices' positions");
  duplicated.slice_positions = {0, 3, 3, 6, 9};
  EXPECT_NE(
      series_refusal(dir / "duplicated", duplicated, 5).find("are both at 3.0 mm along the stack (a duplicated slice)"),
      std::string::npos);
  uneven.slice_positions = {0, 3, 6, 10, 13};
  EXPECT_NE(series_refusal(dir / "uneven", uneven, 5)
                .find(": uneven slice spacing: 4.0 mm between 6.0 and 10.0 mm from the first slice"),
            std::string::npos);
  tilted.slice_tags[2]["0020|0037"] = testing::dicom_numbers({1, 0, 0, 0, 0.8, 0.6});
  EXPECT_NE(series_refusal(dir / "tilted", tilted, 5)
                .find("two slice orientations: img_002.dcm is tilted against img_000.dcm"),
            std::string::npos);
  spacing.slice_pixel_spacing[3] = {1.5, 1.5};
  EXPECT_NE(
      series_refusal(dir / "spacing", spacing, 5).find("mixed pixel spacing: img_003.dcm differs from img_000.dcm"),
      std::string::npos);
  // Within the tolerance (1 % of the spacing) a series is even.
  even.slice_positions = {0, 3, 6.02, 9, 12};
  EXPECT_EQ(series_refusal(dir / "even", even, 5), "");
}

TEST(DicomSeries, AnUnevenSeriesIsResampledFromItsTruePositionsWhenAllowed) {
  TempDir dir;
  std::filesystem::create_directory(dir / "gap");
  const auto g = make_geometry({8, 6, 5}, {1, 1, 3}, {-4, -3, 10});
  const auto values = slice_coded(g);  // slice k: 100 + 10 k + (v % 7)
  testing::DicomSeriesOptions options;
  options.slice_positions = {0, 3, 6, 12, 15};
  testing::write_dicom_series(dir / "gap", g, values, options);
  VolumeReadOptions allow;
  allow.allow_uneven_slices = true;
  const VolumeInfo info = read_volume_info(dir / "gap", allow);
  EXPECT_EQ(info.geometry.size[2], 6);
  EXPECT_NEAR(info.geometry.spacing[2], 3, 1e-6);
  const Volume volume = read_volume(dir / "gap", allow);
  expect_geometry_near(volume.geometry, make_geometry({8, 6, 6}, {1, 1, 3}, {-4, -3, 10}), 1e-4);
  const std::size_t plane = 48;
  ASSERT_EQ(volume.voxels.size(), 6 * plane);
  // The true slices keep their values; the missing one at 9 mm is halfway between 6 and 12 mm.
  const int source_of[] = {0, 1, 2, -1, 3, 4};
  for (int k = 0; k < 6; ++k) {
    for (std::size_t v = 0; v < plane; ++v) {
      const float expected = source_of[k] >= 0 ? values[static_cast<std::size_t>(source_of[k]) * plane + v]
                                               : (values[2 * plane + v] + values[3 * plane + v]) / 2;
      ASSERT_NEAR(volume.voxels[static_cast<std::size_t>(k) * plane + v], expected, 1e-3) << k << " " << v;
    }
  }
}

// A marker at a physical point of the functional volume (other spacing, origin and direction)
// lands at the anatomical voxel of that point.
TEST(VolumeResample, MarkerLandsAtTheAnatomicalVoxelOfItsPhysicalPoint) {
  const auto anatomical = make_geometry({40, 36, 30}, {1, 1, 1}, {-20, -18, -10});
  // Coarser, shifted, and its voxel axes along -x, +z, +y.
  const auto functional_grid = make_geometry({14, 12, 16}, {3, 3, 2.5}, {19, -11, -16}, kCoronalFlipped);
  Volume functional;
  functional.geometry = functional_grid;
  functional.voxels.assign(static_cast<std::size_t>(functional_grid.voxel_count()), 1.0f);
  const long mi = 5, mj = 7, mk = 6;
  functional.voxels[testing::linear_index(functional_grid, mi, mj, mk)] = 1000;
  const auto marker = functional_grid.physical_point(mi, mj, mk);  // (4, 4, 5) mm
  const auto expected = testing::nearest_voxel(anatomical, marker);
  ASSERT_NEAR(anatomical.physical_point(expected[0], expected[1], expected[2])[0], marker[0], 1e-9)
      << "the test wants the marker at an anatomical voxel centre";

  const Volume resampled = resample_onto(functional, anatomical, "f.nii", "a.nii");
  EXPECT_TRUE(same_geometry(resampled.geometry, anatomical, 0));
  const auto peak = std::max_element(resampled.voxels.begin(), resampled.voxels.end()) - resampled.voxels.begin();
  EXPECT_EQ(static_cast<std::size_t>(peak), testing::linear_index(anatomical, expected[0], expected[1], expected[2]));
  EXPECT_NEAR(resampled.voxels[static_cast<std::size_t>(peak)], 1000.0f, 1e-2);
  // Outside the functional extent: 0 (the anatomical voxel (0,0,0) is at y = -18, the functional
  // volume's y starts at -12.25).
  EXPECT_EQ(resampled.voxels[0], 0.0f);
}

TEST(VolumeResample, VolumesThatDoNotOverlapAreRefusedNamingBothExtents) {
  Volume functional;
  functional.geometry = make_geometry({4, 4, 4}, {2, 2, 2}, {500, 0, 0});
  functional.voxels.assign(64, 1.0f);
  const auto anatomical = make_geometry({8, 8, 8}, {1, 1, 1}, {0, 0, 0});
  try {
    resample_onto(functional, anatomical, "f.nii", "a.nii");
    FAIL();
  } catch (const VolumeError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("f.nii (x 499.0..507.0"), std::string::npos) << message;
    EXPECT_NE(message.find("a.nii (x -0.5..7.5"), std::string::npos) << message;
    EXPECT_NE(message.find("do not overlap"), std::string::npos) << message;
  }
}

TEST(VolumeWindow, PercentilesOfNonZeroVoxelsAndParsing) {
  Volume volume;
  volume.geometry = make_geometry({2000, 1, 1}, {1, 1, 1}, {0, 0, 0});
  for (int v = 1; v <= 1000; ++v) volume.voxels.push_back(static_cast<float>(v));
  volume.voxels.resize(2000, 0.0f);  // zeros (background) do not count
  std::shuffle(volume.voxels.begin(), volume.voxels.end(), std::mt19937(3));
  const Window w = robust_window(volume);
  EXPECT_NEAR(w.low, 5.995, 1e-9);  // NumPy: percentile(1..1000, 0.5)
  EXPECT_NEAR(w.high, 995.005, 1e-9);
  const ByteVolume bytes = window_to_bytes(volume, parse_window("-100:410"));
  for (std::size_t v = 0; v < bytes.voxels.size(); ++v) {
    const double expected = std::clamp(std::floor((volume.voxels[v] + 100) * 0.5 + 0.5), 0.0, 255.0);
    ASSERT_EQ(bytes.voxels[v], expected) << volume.voxels[v];
  }
  EXPECT_THROW(parse_window("5:5"), OptionError);
  EXPECT_THROW(parse_window("5"), OptionError);
  EXPECT_THROW(parse_window("a:b"), OptionError);
  EXPECT_EQ(parse_window("-1000:-200").low, -1000);
}

ByteVolume random_bytes(const VolumeGeometry& g, int channels) {
  ByteVolume volume;
  volume.geometry = g;
  volume.channels = channels;
  volume.voxels.resize(static_cast<std::size_t>(g.voxel_count() * channels));
  std::mt19937 rng(5);
  for (auto& v : volume.voxels) v = static_cast<uint8_t>(rng());
  return volume;
}

// The same anatomy in another voxel order (axes permuted and reversed) gives the same slices in
// every plane: the network sees one orientation whatever is on disk.
TEST(VolumeSlices, SameAnatomyInAnotherVoxelOrderGivesTheSameSlices) {
  const auto g1 = make_geometry({20, 14, 9}, {1, 1.5, 2}, {0, 0, 0});
  // The same voxel centres with i along -z, j along +x, k along -y.
  VolumeGeometry g2;
  g2.size = {9, 20, 14};
  g2.spacing = {2, 1, 1.5};
  g2.direction = {0, 1, 0, 0, 0, -1, -1, 0, 0};
  g2.origin = {0, 13 * 1.5, 8 * 2};
  for (const int channels : {1, 3}) {
    const ByteVolume v1 = random_bytes(g1, channels);
    ByteVolume v2;
    v2.geometry = g2;
    v2.channels = channels;
    v2.voxels = testing::same_points(g1, v1.voxels, g2, channels);
    for (const Plane plane : {Plane::axial, Plane::coronal, Plane::sagittal}) {
      const SliceLayout l1 = slice_layout(g1, plane), l2 = slice_layout(g2, plane);
      ASSERT_EQ(l1.slices, l2.slices) << plane_name(plane);
      for (int k = 0; k < l1.slices; ++k) {
        const cv::Mat s1 = extract_slice(v1, l1, k), s2 = extract_slice(v2, l2, k);
        ASSERT_EQ(s1.size(), s2.size());
        ASSERT_EQ(cv::norm(s1, s2, cv::NORM_INF), 0) << plane_name(plane) << " slice " << k;
      }
    }
  }
  // Axial of an identity grid: k indexes slices, rows run along j, columns along i, no flips.
  const SliceLayout axial = slice_layout(g1, Plane::axial);
  EXPECT_EQ(axial.slice_axis, 2);
  EXPECT_EQ(axial.row_axis, 1);
  EXPECT_EQ(axial.column_axis, 0);
  EXPECT_FALSE(axial.slice_flip || axial.row_flip || axial.column_flip);
  const SliceLayout coronal = slice_layout(g1, Plane::coronal);
  EXPECT_EQ(coronal.slice_axis, 1);
  EXPECT_TRUE(coronal.row_flip);  // superior at the top
}

// A geometry that no reader lets through (a NaN direction) is refused, not sliced along axis -1.
TEST(VolumeSlices, AnUnusableDirectionIsRefusedRatherThanSliced) {
  auto g = make_geometry({8, 8, 8}, {1, 1, 1}, {0, 0, 0});
  g.direction.fill(std::numeric_limits<double>::quiet_NaN());
  EXPECT_THROW(slice_layout(g, Plane::axial), VolumeError);
  g.direction = {1, 1, 0, 0, 0, 0, 0, 0, 1};  // i and j along x
  EXPECT_THROW(slice_layout(g, Plane::coronal), VolumeError);
  EXPECT_NE(geometry_problem(g).find("direction"), std::string::npos) << geometry_problem(g);
  EXPECT_EQ(geometry_problem(make_geometry({8, 8, 8}, {1, 1, 1}, {0, 0, 0}, kCoronalFlipped)), "");
}

TEST(VolumeSlices, InsertIsTheInverseOfExtract) {
  const auto g = make_geometry({11, 13, 12}, {1, 1, 1}, {0, 0, 0}, kCoronalFlipped);
  const ByteVolume source = random_bytes(g, 3);
  for (const Plane plane : {Plane::axial, Plane::coronal, Plane::sagittal}) {
    const SliceLayout layout = slice_layout(g, plane);
    ByteVolume copy{g, 3, std::vector<uint8_t>(source.voxels.size(), 0)};
    for (int k = 0; k < layout.slices; ++k) insert_slice(copy, layout, k, extract_slice(source, layout, k));
    EXPECT_EQ(copy.voxels, source.voxels) << plane_name(plane);
  }
}

TEST(VolumeWrite, GreyAndRgbNiftiKeepGeometryAndLeaveNoTemporary) {
  TempDir dir;
  const auto g = make_geometry({10, 9, 7}, {0.9375, 0.9375, 3.3}, {-119.53125, 87.2, -33.1}, kCoronalFlipped);
  for (const int channels : {1, 3}) {
    const std::string path = dir / (channels == 1 ? "grey.nii.gz" : "rgb.nii");
    const ByteVolume volume = random_bytes(g, channels);
    write_volume_atomic(path, volume);
    const VolumeInfo info = read_volume_info(path);
    EXPECT_EQ(info.components, channels);
    const ByteVolume back = read_byte_volume(path);
    EXPECT_EQ(back.channels, channels);
    EXPECT_EQ(back.voxels, volume.voxels);
    expect_geometry_near(back.geometry, g, 1e-5);
    // Viewers read either transform: both are set and agree.
    nifti_image* header = nifti_image_read(path.c_str(), 0);
    ASSERT_NE(header, nullptr);
    EXPECT_GT(header->qform_code, 0);
    EXPECT_GT(header->sform_code, 0);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) EXPECT_NEAR(header->qto_xyz.m[r][c], header->sto_xyz.m[r][c], 1e-4) << r << "," << c;
    EXPECT_EQ(header->datatype, channels == 1 ? DT_UINT8 : DT_RGB24);
    nifti_image_free(header);
    EXPECT_THROW(write_volume_atomic(path, volume, WriteMode::no_clobber), IoError);
  }
  EXPECT_EQ(testing::list_dir(dir.path()), (std::set<std::string>{"grey.nii.gz", "rgb.nii"}));
  EXPECT_THROW(write_volume_atomic(dir / "x.png", random_bytes(g, 1)), IoError);
}

TEST(VolumePairing, PairsFilesAndSeriesDirectoriesByName) {
  TempDir dir;
  for (const char* path :
       {"a/s1.nii.gz", "a/s2.nii", "a/s3.nii", "a/.hidden.nii", "f/s1.nii", "f/s2.nii.gz", "f/s4.nii.gz", "a/s5/x.dcm",
        "f/s5/y.dcm", "a/s6.nii", "a/s6.nii.gz", "f/s6.nii", "a/notes.txt"}) {
    std::filesystem::create_directories(std::filesystem::path(dir / path).parent_path());
    std::ofstream(dir / path) << "x";
  }
  const Pairing p = pair_volumes_by_name(dir / "a", dir / "f");
  ASSERT_EQ(p.pairs.size(), 3u);
  EXPECT_EQ(p.pairs[0].name, "s1");
  EXPECT_EQ(p.pairs[1].name, "s2");
  EXPECT_EQ(p.pairs[2].name, "s5");
  EXPECT_EQ(p.pairs[2].anatomical, dir / "a/s5");
  EXPECT_EQ(p.unpaired_anatomical, std::vector<std::string>{dir / "a/s3.nii"});
  EXPECT_EQ(p.unpaired_functional, (std::vector<std::string>{dir / "f/s4.nii.gz", dir / "f/s6.nii"}));
  EXPECT_EQ(p.ambiguous, (std::vector<std::string>{dir / "a/s6.nii", dir / "a/s6.nii.gz"}));
  EXPECT_EQ(volume_stem("x/study.NII.GZ"), "study");
  EXPECT_TRUE(directory_holds_volumes(dir / "a"));
}

}  // namespace
}  // namespace efcnet
