// `efcnet fuse --output-format dicom`, run as a user runs it, its series checked by other projects'
// tools: dciodvfy (dicom3tools) validates every file against its IOD, dcm2niix converts the series
// back to NIfTI (the anatomical grid within 0.01 mm, the voxels of the NIfTI output), pydicom
// reads every file.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <itkGDCMImageIO.h>

#include "efcnet/volume.h"
#include "support/command.h"
#include "support/required.h"
#include "support/temp_dir.h"
#include "volume/volume_files.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;
using efcnet::testing::contains;
using efcnet::testing::list_dir;
using efcnet::testing::quoted;
using efcnet::testing::TempDir;
using Result = efcnet::testing::CommandResult;

const std::string kBinary = EFCNET_BINARY;
const std::string kStudyUid = "1.2.826.0.1.3680043.2.1125.7701";  // write_dicom_series's

// Tags read the way a viewer reads them (GDCM through ITK), trailing padding removed.
std::string tag(const std::string& file, const std::string& key) {
  auto io = itk::GDCMImageIO::New();
  io->SetFileName(file);
  io->ReadImageInformation();
  std::string value;
  io->GetValueFromTag(key, value);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\0')) value.pop_back();
  return value;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path().string());
  return files;
}

class DicomOutput : public ::testing::Test {
 protected:
  Result run(const std::string& command) { return testing::run_command(command, dir_); }
  Result efcnet(const std::string& args) { return run("exec " + quoted(kBinary) + " " + args); }

  // The tools the checks run; empty when all are there.
  std::string missing_tools() {
    std::string missing;
    for (const char* tool : {"dciodvfy", "dcm2niix"})
      if (run(std::string("command -v ") + tool).status != 0) missing += std::string(" ") + tool;
    if (run("/usr/bin/python3 -c 'import pydicom'").status != 0) missing += " pydicom (/usr/bin/python3)";
    return missing;
  }

  // An anatomical volume (a bright ellipsoid in 32x32x6 voxels) on `grid`, and a functional one
  // (a hot spot) on a coarser grid that overlaps it.
  std::vector<float> anatomical_values(const VolumeGeometry& grid) {
    std::vector<float> values(static_cast<std::size_t>(grid.voxel_count()));
    std::size_t v = 0;
    for (int64_t k = 0; k < grid.size[2]; ++k)
      for (int64_t j = 0; j < grid.size[1]; ++j)
        for (int64_t i = 0; i < grid.size[0]; ++i, ++v) {
          const double x = (i - 15.5) / 12.0, y = (j - 15.5) / 10.0;
          values[v] = static_cast<float>((x * x + y * y < 1 ? 800 : 50) + 20 * k + 3 * ((i + j) % 4));
        }
    return values;
  }
  void write_functional(const std::string& path) {
    const VolumeGeometry grid = testing::make_geometry({16, 16, 4}, {2.2, 2.2, 4.0}, {-18, -17, -3});
    std::vector<float> values(static_cast<std::size_t>(grid.voxel_count()));
    std::size_t v = 0;
    for (int64_t k = 0; k < grid.size[2]; ++k)
      for (int64_t j = 0; j < grid.size[1]; ++j)
        for (int64_t i = 0; i < grid.size[0]; ++i, ++v)
          values[v] = static_cast<float>(1000 * std::exp(-((i - 9) * (i - 9) + (j - 7) * (j - 7)) / 8.0) + 10 * k);
    testing::write_nifti<float>(path, grid, values);
  }
  std::string fuse(const std::string& anatomical, const std::string& output, const std::string& more = "") {
    return "fuse --threads 2 --anatomical " + quoted(anatomical) + " --functional " + quoted(dir_ / "functional.nii") +
           " --output " + quoted(output) + " " + more;
  }

  // dciodvfy on every file: no "Error" line.
  void expect_valid_iod(const std::string& series) {
    for (const std::string& file : files_in(series)) {
      const Result r = run("dciodvfy " + quoted(file));
      std::istringstream lines(r.out + r.err);
      for (std::string line; std::getline(lines, line);)
        EXPECT_FALSE(line.rfind("Error", 0) == 0) << file << ": " << line;
    }
  }

  // dcm2niix's NIfTI of the series has the NIfTI output's voxels at the same points (0.01 mm).
  void expect_round_trip(const std::string& series, const std::string& nifti) {
    const std::string back = dir_ / "back";
    fs::create_directory(back);
    const Result r = run("dcm2niix -z n -b n -f back -o " + quoted(back) + " " + quoted(series));
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    ASSERT_TRUE(fs::exists(back + "/back.nii")) << r.out;
    const ByteVolume converted = read_byte_volume(back + "/back.nii");
    const ByteVolume expected = read_byte_volume(nifti);
    ASSERT_EQ(converted.channels, expected.channels);
    ASSERT_EQ(converted.geometry.voxel_count(), expected.geometry.voxel_count())
        << converted.geometry.text() << " vs " << expected.geometry.text();
    double worst = 0;
    std::size_t differing = 0;
    const auto& g = converted.geometry;
    std::size_t v = 0;
    for (int64_t k = 0; k < g.size[2]; ++k)
      for (int64_t j = 0; j < g.size[1]; ++j)
        for (int64_t i = 0; i < g.size[0]; ++i, ++v) {
          const auto p = g.physical_point(double(i), double(j), double(k));
          const auto index = testing::nearest_voxel(expected.geometry, p);
          for (int a = 0; a < 3; ++a) ASSERT_TRUE(index[a] >= 0 && index[a] < expected.geometry.size[a]);
          const auto q = expected.geometry.physical_point(double(index[0]), double(index[1]), double(index[2]));
          worst = std::max({worst, std::abs(p[0] - q[0]), std::abs(p[1] - q[1]), std::abs(p[2] - q[2])});
          const std::size_t w = testing::linear_index(expected.geometry, index[0], index[1], index[2]);
          for (int c = 0; c < converted.channels; ++c)
            differing += converted.voxels[v * converted.channels + c] != expected.voxels[w * expected.channels + c];
        }
    EXPECT_LT(worst, 0.01) << "mm between dcm2niix's voxel centres and the NIfTI output's";
    EXPECT_EQ(differing, 0u);
  }

  void expect_pydicom_reads(const std::string& series) {
    std::string files;
    for (const std::string& file : files_in(series)) files += " " + quoted(file);
    const Result r =
        run("/usr/bin/python3 -c 'import sys, pydicom\nfor f in sys.argv[1:]: "
            "print(pydicom.dcmread(f).pixel_array.shape)'" +
            files);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(r.out.empty());
  }

  TempDir dir_;
};

TEST_F(DicomOutput, FromADicomAnatomicalJoinsItsStudyAndPassesTheTools) {
  if (const std::string missing = missing_tools(); !missing.empty()) EFCNET_SKIP_UNLESS_CI() << "missing:" << missing;
  const VolumeGeometry grid = testing::make_geometry({32, 32, 6}, {1.1, 1.0, 3.0}, {-17, -16, 0});
  fs::create_directory(dir_ / "anatomical");
  testing::write_dicom_series(dir_ / "anatomical", grid, anatomical_values(grid));
  write_functional(dir_ / "functional.nii");

  const Result nifti = efcnet(fuse(dir_ / "anatomical", dir_ / "fused.nii"));
  ASSERT_EQ(nifti.status, 0) << nifti.err;
  // The series is even: --allow-uneven-slices changes nothing but the record of the options.
  const Result r = efcnet(fuse(dir_ / "anatomical", dir_ / "fused", "--output-format dicom --allow-uneven-slices"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(contains(r.err, "new study")) << r.err;
  EXPECT_EQ(list_dir(dir_.path()),
            (std::set<std::string>{"anatomical", "functional.nii", "fused", "fused.nii"}));  // no temporary left

  const std::vector<std::string> files = files_in(dir_ / "fused");
  ASSERT_EQ(files.size(), 1u);
  const std::string& file = files.front();
  const std::string source = files_in(dir_ / "anatomical").front();
  EXPECT_EQ(tag(file, "0008|0016"), "1.2.840.10008.5.1.4.1.1.7.4");  // Multi-frame True Color SC
  EXPECT_EQ(tag(file, "0028|0004"), "RGB");
  EXPECT_EQ(tag(file, "0028|0008"), "6");
  EXPECT_EQ(tag(file, "0010|0010"), "Phantom^Test");
  EXPECT_EQ(tag(file, "0020|000d"), kStudyUid);
  EXPECT_EQ(tag(file, "0020|0052"), testing::DicomSeriesOptions{}.frame_of_reference_uid);
  EXPECT_EQ(tag(source, "0020|0052"), testing::DicomSeriesOptions{}.frame_of_reference_uid);
  EXPECT_NE(tag(file, "0020|000e"), tag(source, "0020|000e"));
  const std::string description = tag(file, "0008|103e");
  EXPECT_TRUE(contains(description, "efcnet 0.") && contains(description, "model default") &&
              contains(description, "hot-iron"))
      << description;
  const std::string derivation = tag(file, "0008|2111");
  EXPECT_TRUE(contains(derivation, "window") && contains(derivation, "weights efcnet_default.pth, SEEM weights") &&
              contains(derivation, "uneven slices allowed"))
      << derivation;

  expect_valid_iod(dir_ / "fused");
  expect_round_trip(dir_ / "fused", dir_ / "fused.nii");
  expect_pydicom_reads(dir_ / "fused");
}

TEST_F(DicomOutput, GreyFromANiftiAnatomicalStartsANewStudyOnAnObliqueGrid) {
  if (const std::string missing = missing_tools(); !missing.empty()) EFCNET_SKIP_UNLESS_CI() << "missing:" << missing;
  // Rotated about z, and k running against the row x column normal (a left-handed voxel order).
  const double c = std::cos(0.3), s = std::sin(0.3);
  const VolumeGeometry grid =
      testing::make_geometry({32, 32, 6}, {1.1, 1.0, 3.0}, {-17, -16, 15}, {c, -s, 0, s, c, 0, 0, 0, -1});
  testing::write_nifti<int16_t>(dir_ / "anatomical.nii.gz", grid, anatomical_values(grid));
  write_functional(dir_ / "functional.nii");

  const std::string options = "--colormap grey --functional-window 0:900";
  const Result nifti = efcnet(fuse(dir_ / "anatomical.nii.gz", dir_ / "fused.nii", options));
  ASSERT_EQ(nifti.status, 0) << nifti.err;
  const Result r = efcnet(fuse(dir_ / "anatomical.nii.gz", dir_ / "fused", options + " --output-format dicom"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "new study")) << r.err;

  const std::vector<std::string> files = files_in(dir_ / "fused");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(tag(files.front(), "0008|0016"), "1.2.840.10008.5.1.4.1.1.7.2");  // Multi-frame Grayscale Byte SC
  EXPECT_EQ(tag(files.front(), "0028|0004"), "MONOCHROME2");
  EXPECT_EQ(tag(files.front(), "0010|0010"), "");
  EXPECT_FALSE(tag(files.front(), "0020|000d").empty());
  EXPECT_TRUE(contains(tag(files.front(), "0008|103e"), "grey")) << tag(files.front(), "0008|103e");

  expect_valid_iod(dir_ / "fused");
  expect_round_trip(dir_ / "fused", dir_ / "fused.nii");
  expect_pydicom_reads(dir_ / "fused");
}

// An existing file is never replaced by a series, even with --overwrite; an existing series only
// with --overwrite; a directory that holds anything but .dcm files never.
TEST_F(DicomOutput, ReplacesOnlyAFormerSeriesAndOnlyWithOverwrite) {
  const VolumeGeometry grid = testing::make_geometry({32, 32, 6}, {1.1, 1.0, 3.0}, {-17, -16, 0});
  testing::write_nifti<int16_t>(dir_ / "anatomical.nii", grid, anatomical_values(grid));
  write_functional(dir_ / "functional.nii");
  const std::string anatomical = dir_ / "anatomical.nii";
  const auto refused = [&](const std::string& output, const std::string& more, const std::string& why) {
    const std::set<std::string> before = list_dir(dir_.path());
    const Result r = efcnet(fuse(anatomical, output, "--method y-average --output-format dicom " + more));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(contains(r.err, output + ": " + why)) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(list_dir(dir_.path()), before);
  };

  std::ofstream(dir_ / "taken") << "not a series";
  refused(dir_ / "taken", "", "exists and is not a directory");
  refused(dir_ / "taken", "--overwrite", "exists and is not a directory");
  EXPECT_EQ(testing::slurp(dir_ / "taken"), "not a series");
  refused(dir_ / "fused.nii.gz", "", "--output-format dicom writes a directory");

  const Result first = efcnet(fuse(anatomical, dir_ / "series", "--method y-average --output-format dicom"));
  ASSERT_EQ(first.status, 0) << first.err;
  const std::string first_uid = tag(files_in(dir_ / "series").front(), "0020|000e");
  refused(dir_ / "series", "", "already exists");
  const Result again =
      efcnet(fuse(anatomical, dir_ / "series", "--method y-average --output-format dicom --overwrite"));
  ASSERT_EQ(again.status, 0) << again.err;
  ASSERT_EQ(files_in(dir_ / "series").size(), 1u);
  EXPECT_NE(tag(files_in(dir_ / "series").front(), "0020|000e"), first_uid);

  fs::create_directory(dir_ / "notes");
  std::ofstream(dir_ / "notes/keep.txt") << "mine";
  refused(dir_ / "notes", "--overwrite", "holds keep.txt");
  EXPECT_EQ(testing::slurp(dir_ / "notes/keep.txt"), "mine");
}

TEST_F(DicomOutput, HelpExplainsTheFormat) {
  const Result r = efcnet("fuse --help");
  ASSERT_EQ(r.status, 0);
  for (const char* part : {"--output-format", "DICOM output", "Secondary Capture", "new study"})
    EXPECT_TRUE(contains(r.out, part)) << part;
}

}  // namespace
}  // namespace efcnet
