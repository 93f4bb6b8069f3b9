// `efcnet fuse`, `evaluate` and `phantom` on volumes, run as a user runs them (the built binary,
// real files); refusals leave nothing behind.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/volume.h"
#include "support/command.h"
#include "support/temp_dir.h"
#include "volume/volume_files.h"

namespace efcnet {
namespace {

using efcnet::testing::contains;
using efcnet::testing::list_dir;
using efcnet::testing::quoted;
using efcnet::testing::TempDir;
using Result = efcnet::testing::CommandResult;

const std::string kBinary = EFCNET_BINARY;

class VolumeCli : public ::testing::Test {
 protected:
  Result run(const std::string& args) { return testing::run_command("exec " + quoted(kBinary) + " " + args, dir_); }

  // A small phantom pair written by `efcnet phantom --volume` into dir_/in.
  void make_phantom(int slices = 6) {
    const Result r =
        run("phantom --volume --size 48 --slices " + std::to_string(slices) + " --out-dir " + quoted(dir_ / "in"));
    ASSERT_EQ(r.status, 0) << r.err;
  }
  std::string fuse_args(const std::string& a, const std::string& f, const std::string& o) {
    return "fuse --threads 2 --anatomical " + quoted(a) + " --functional " + quoted(f) + " --output " + quoted(o);
  }

  TempDir dir_;
};

TEST_F(VolumeCli, FusesAPhantomPairOntoTheAnatomicalGridWithPictures) {
  make_phantom();
  std::filesystem::create_directory(dir_ / "out");
  const Result r =
      run(fuse_args(dir_ / "in/anatomical.nii.gz", dir_ / "in/functional.nii.gz", dir_ / "out/fused.nii.gz") +
          " --slices-dir " + quoted(dir_ / "slices") + " --montage " + quoted(dir_ / "out/montage.png"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "6 axial slices")) << r.err;
  const VolumeInfo anatomical = read_volume_info(dir_ / "in/anatomical.nii.gz");
  const VolumeInfo fused = read_volume_info(dir_ / "out/fused.nii.gz");
  EXPECT_EQ(fused.components, 3);  // RGB24
  EXPECT_TRUE(same_geometry(fused.geometry, anatomical.geometry, 1e-6))
      << fused.geometry.text() << " vs " << anatomical.geometry.text();
  EXPECT_EQ(list_dir(dir_ / "out"), (std::set<std::string>{"fused.nii.gz", "montage.png"}));
  EXPECT_EQ(list_dir(dir_ / "slices").size(), 6u);
  const cv::Mat montage = cv::imread(dir_ / "out/montage.png");
  ASSERT_FALSE(montage.empty());
  EXPECT_EQ(montage.rows, 3 * 160 + 4);

  // evaluate: one row per slice with content, then the mean.
  const Result scores =
      run("evaluate --format csv --anatomical " + quoted(dir_ / "in/anatomical.nii.gz") + " --functional " +
          quoted(dir_ / "in/functional.nii.gz") + " --fused " + quoted(dir_ / "out/fused.nii.gz"));
  ASSERT_EQ(scores.status, 0) << scores.err;
  EXPECT_TRUE(contains(scores.out, "file,EN,SD,SF,AG,MI,SCD,VIF,Qabf,SSIM,PSNR,CC,MSE\naxial_0,")) << scores.out;
  EXPECT_TRUE(contains(scores.out, "\nmean,")) << scores.out;

  // An existing output is kept without --overwrite.
  const Result again =
      run(fuse_args(dir_ / "in/anatomical.nii.gz", dir_ / "in/functional.nii.gz", dir_ / "out/fused.nii.gz"));
  EXPECT_EQ(again.status, 1);
  EXPECT_TRUE(contains(again.err, "already exists")) << again.err;
}

TEST_F(VolumeCli, GreyColormapGivesAGreyVolume) {
  make_phantom(12);  // coronal slices 48x12
  const Result sagittal =
      run(fuse_args(dir_ / "in/anatomical.nii.gz", dir_ / "in/functional.nii.gz", dir_ / "sagittal.nii") +
          " --plane sagittal --slices-dir " + quoted(dir_ / "sagittal"));
  EXPECT_EQ(sagittal.status, 0) << sagittal.err;  // 48x12 slices, 48 of them
  EXPECT_EQ(list_dir(dir_ / "sagittal").size(), 48u);
  const Result r = run(fuse_args(dir_ / "in/anatomical.nii.gz", dir_ / "in/functional.nii.gz", dir_ / "grey.nii") +
                       " --colormap grey --plane coronal --functional-window 0:900");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_volume_info(dir_ / "grey.nii").components, 1);
}

// Every refusal: one line naming the file and the problem, exit status 1, nothing written.
TEST_F(VolumeCli, RefusalsNameTheProblemAndLeaveNothingBehind) {
  make_phantom();
  const std::string a = dir_ / "in/anatomical.nii.gz", f = dir_ / "in/functional.nii.gz";
  std::filesystem::create_directory(dir_ / "out");
  auto refused = [&](const std::string& args, const std::vector<std::string>& parts) {
    const Result r = run(args);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.err;
    for (const std::string& part : parts) EXPECT_TRUE(contains(r.err, part)) << part << " not in: " << r.err;
    EXPECT_TRUE(list_dir(dir_ / "out").empty()) << args;
  };
  // 4D without --frame.
  const VolumeGeometry g = read_volume(f).geometry;
  std::vector<float> frames;
  for (int t = 0; t < 5; ++t) {
    const Volume v = read_volume(f);
    frames.insert(frames.end(), v.voxels.begin(), v.voxels.end());
  }
  testing::write_nifti<float, 4>(dir_ / "in/dynamic.nii.gz", g, frames, 5);
  refused(fuse_args(a, dir_ / "in/dynamic.nii.gz", dir_ / "out/o.nii.gz"), {"dynamic.nii.gz", "5 frames", "--frame"});
  refused(fuse_args(a, dir_ / "in/dynamic.nii.gz", dir_ / "out/o.nii.gz") + " --frame 7", {"no frame 7"});
  // Extents that do not overlap.
  Volume far = read_volume(f);
  far.geometry.origin[0] += 1000;
  write_volume_atomic(dir_ / "in/far.nii.gz", far);
  refused(fuse_args(a, dir_ / "in/far.nii.gz", dir_ / "out/o.nii.gz"),
          {"far.nii.gz (x ", "do not overlap", " mm (LPS)"});
  // A truncated .nii.gz.
  {
    std::ifstream in(a, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir_ / "in/cut.nii.gz", std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  refused(fuse_args(dir_ / "in/cut.nii.gz", f, dir_ / "out/o.nii.gz"), {"cut.nii.gz"});
  // A DICOM directory without images.
  std::filesystem::create_directory(dir_ / "in/nodicom");
  refused(fuse_args(dir_ / "in/nodicom", f, dir_ / "out/o.nii.gz"), {"nodicom", "no DICOM images"});
  // A volume with a 2D image.
  cv::imwrite(dir_ / "in/slice.png", cv::Mat(32, 32, CV_8UC1, cv::Scalar(9)));
  refused(fuse_args(a, dir_ / "in/slice.png", dir_ / "out/o.nii.gz"), {"is a volume but", "slice.png"});
  // Volume options with 2D images.
  refused("fuse --anatomical " + quoted(dir_ / "in/slice.png") + " --functional " + quoted(dir_ / "in/slice.png") +
              " --output " + quoted(dir_ / "out/o.png") + " --colormap pet",
          {"for volumes"});
  refused(fuse_args(a, f, dir_ / "out/o.nii.gz") + " --anatomical-window 5:1", {"--anatomical-window"});
  // A DICOM series with a slice missing: refused before any work, unless --allow-uneven-slices.
  std::filesystem::create_directory(dir_ / "in/gap");
  const VolumeGeometry grid = testing::make_geometry({48, 48, 5}, {1, 1, 4}, {-24, -24, -10});
  testing::DicomSeriesOptions gap;
  gap.slice_positions = {0, 4, 12, 16, 20};
  testing::write_dicom_series(dir_ / "in/gap", grid,
                              std::vector<float>(static_cast<std::size_t>(grid.voxel_count()), 50.0f), gap);
  refused(fuse_args(dir_ / "in/gap", f, dir_ / "out/o.nii.gz") + " --method y-average",
          {"gap: a slice missing between 4.0 and 12.0 mm", "--allow-uneven-slices"});
  const Result allowed =
      run(fuse_args(dir_ / "in/gap", f, dir_ / "allowed.nii.gz") + " --method y-average --allow-uneven-slices");
  ASSERT_EQ(allowed.status, 0) << allowed.err;
  EXPECT_EQ(read_volume_info(dir_ / "allowed.nii.gz").geometry.size[2], 6);
}

TEST_F(VolumeCli, DirectoryModePairsVolumesByName) {
  make_phantom();
  for (const char* side : {"a", "f"}) std::filesystem::create_directory(dir_ / side);
  std::filesystem::copy_file(dir_ / "in/anatomical.nii.gz", dir_ / "a/s1.nii.gz");
  std::filesystem::copy_file(dir_ / "in/functional.nii.gz", dir_ / "f/s1.nii.gz");
  std::filesystem::copy_file(dir_ / "in/anatomical.nii.gz", dir_ / "a/s2.nii.gz");
  std::ofstream(dir_ / "f/s2.nii.gz") << "corrupt";
  std::filesystem::copy_file(dir_ / "in/anatomical.nii.gz", dir_ / "a/lonely.nii.gz");
  const Result r = run("fuse --threads 2 --anatomical-dir " + quoted(dir_ / "a") + " --functional-dir " +
                       quoted(dir_ / "f") + " --output-dir " + quoted(dir_ / "o"));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "unpaired: " + (dir_ / "a/lonely.nii.gz"))) << r.err;
  EXPECT_TRUE(contains(r.err, "failed: s2: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "fused 1, failed 1, unpaired 1")) << r.err;
  EXPECT_EQ(list_dir(dir_ / "o"), std::set<std::string>{"s1.nii.gz"});
}

// A directory of images may hold subdirectories of its own (originals, thumbnails): only one that
// holds a DICOM file makes it a directory of volumes.
TEST_F(VolumeCli, ImageDirectoriesWithSubdirectoriesStayImageDirectories) {
  for (const char* sub : {"a/thumbs", "f/originals"}) std::filesystem::create_directories(dir_ / sub);
  const cv::Mat grey(24, 24, CV_8UC1, cv::Scalar(90)), colour(24, 24, CV_8UC3, cv::Scalar(10, 80, 200));
  ASSERT_TRUE(cv::imwrite(dir_ / "a/x.png", grey));
  ASSERT_TRUE(cv::imwrite(dir_ / "a/thumbs/x.png", grey));
  ASSERT_TRUE(cv::imwrite(dir_ / "f/x.png", colour));
  EXPECT_FALSE(directory_holds_volumes(dir_ / "a"));
  const std::string args = "fuse --method y-average --anatomical-dir " + quoted(dir_ / "a") + " --functional-dir " +
                           quoted(dir_ / "f") + " --output-dir ";
  Result r = run(args + quoted(dir_ / "o"));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "fused 1, failed 0, unpaired 0")) << r.err;
  EXPECT_EQ(list_dir(dir_ / "o"), std::set<std::string>{"x.png"});

  // A DICOM Part 10 file (the "DICM" marker after the 128-byte preamble) makes it a series.
  std::ofstream(dir_ / "a/thumbs/slice.dcm", std::ios::binary) << std::string(128, '\0') << "DICM";
  EXPECT_TRUE(directory_holds_volumes(dir_ / "a"));
  r = run(args + quoted(dir_ / "o2"));
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "holds volumes but")) << r.err;
}

// bench-volume's report: every stage of the volume path, and the same slices as 2D pairs.
TEST_F(VolumeCli, BenchVolumeReportsTheVolumePathsOverhead) {
  const Result r = run("bench-volume --size 32 --slices 4 --threads 1 --output " + quoted(dir_ / "bench.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto report = nlohmann::json::parse(testing::slurp(dir_ / "bench.json"));
  const auto& volume = report.at("volume");
  EXPECT_EQ(volume.at("anatomical"), nlohmann::json({32, 32, 4}));
  EXPECT_EQ(volume.at("fused_slices"), report.at("pairs_2d").at("pairs"));
  double stages = 0;
  for (const char* stage : {"read_s", "resample_window_colour_s", "slicing_s", "network_s", "write_s"}) {
    EXPECT_GT(volume.at(stage).get<double>(), 0) << stage;
    stages += volume.at(stage).get<double>();
  }
  EXPECT_NEAR(volume.at("total_s").get<double>(), stages, 1e-9);
  EXPECT_NEAR(volume.at("overhead_fraction_of_network").get<double>(),
              (stages - volume.at("network_s").get<double>()) / volume.at("network_s").get<double>(), 1e-9);
}

TEST_F(VolumeCli, HelpExplainsEveryVolumeOption) {
  const Result r = run("fuse --help");
  ASSERT_EQ(r.status, 0);
  for (const char* option : {"--frame", "--anatomical-window", "--functional-window", "--colormap", "--plane",
                             "--slices-dir", "--montage", "hot-iron", "RGB24", "DICOM series", "--allow-uneven-slices"})
    EXPECT_TRUE(contains(r.out, option)) << option;
}

}  // namespace
}  // namespace efcnet
