// `efcnet fuse --register/--transform/--save-transform/--qc` and `efcnet bench-register`, run as a
// user runs them (the built binary, real files): refusals are one line naming the file, exit 1,
// nothing written.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

bool on_path(const std::string& program) {
  return std::system(("command -v " + program + " >/dev/null 2>&1").c_str()) == 0;
}

int lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

class RegistrationCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const Result r = run("phantom --volume --size 64 --slices 16 --out-dir " + quoted(dir_ / "in"));
    ASSERT_EQ(r.status, 0) << r.err;
    std::filesystem::create_directory(dir_ / "out");
  }
  Result run(const std::string& args) { return testing::run_command("exec " + quoted(kBinary) + " " + args, dir_); }
  std::string fuse(const std::string& functional, const std::string& output) {
    return "fuse --threads 2 --anatomical " + quoted(anatomical_) + " --functional " + quoted(functional) +
           " --output " + quoted(output);
  }
  // Refused: exit 1, one line naming `parts`, nothing in out/.
  void expect_refused(const std::string& args, const std::vector<std::string>& parts) {
    const Result r = run(args);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    for (const std::string& part : parts) EXPECT_TRUE(contains(r.err, part)) << part << " not in: " << r.err;
    EXPECT_TRUE(list_dir(dir_ / "out").empty()) << args;
  }

  TempDir dir_;
  const std::string anatomical_ = dir_ / "in/anatomical.nii.gz", functional_ = dir_ / "in/functional.nii.gz";
};

TEST_F(RegistrationCli, AFourDFunctionalWithoutFrameIsRefused) {
  const Volume f = read_volume(functional_);
  std::vector<float> frames;
  for (int t = 0; t < 3; ++t) frames.insert(frames.end(), f.voxels.begin(), f.voxels.end());
  testing::write_nifti<float, 4>(dir_ / "in/dynamic.nii.gz", f.geometry, frames, 3);
  expect_refused(fuse(dir_ / "in/dynamic.nii.gz", dir_ / "out/o.nii.gz") + " --register rigid",
                 {"dynamic.nii.gz", "3 frames", "--frame"});
}

TEST_F(RegistrationCli, ATransformFileThatIsNotOneOrNotLinearIsRefused) {
  std::ofstream(dir_ / "in/notes.tfm") << "these are notes, not a transform\n";
  expect_refused(fuse(functional_, dir_ / "out/o.nii.gz") + " --transform " + quoted(dir_ / "in/notes.tfm"),
                 {dir_ / "in/notes.tfm"});
  {
    std::ofstream out(dir_ / "in/bspline.tfm");
    out << "#Insight Transform File V1.0\n#Transform 0\nTransform: BSplineTransform_double_3_3\nParameters:";
    for (int i = 0; i < 3 * 64; ++i) out << " 0";
    out << "\nFixedParameters: 4 4 4 -10 -10 -10 10 10 10 1 0 0 0 1 0 0 0 1\n";
  }
  expect_refused(fuse(functional_, dir_ / "out/o.nii.gz") + " --transform " + quoted(dir_ / "in/bspline.tfm"),
                 {dir_ / "in/bspline.tfm", "not a linear"});
}

TEST_F(RegistrationCli, ASavedTransformGivenBackGivesTheSameBytes) {
  Result r = run(fuse(functional_, dir_ / "out/registered.nii.gz") + " --register rigid --save-transform " +
                 quoted(dir_ / "out/t.tfm") + " --qc " + quoted(dir_ / "out/qc.png"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "Mattes MI")) << r.err;
  EXPECT_TRUE(contains(testing::slurp(dir_ / "out/t.tfm"), "VersorRigid3DTransform_double_3_3"));
  const cv::Mat qc = cv::imread(dir_ / "out/qc.png");
  ASSERT_FALSE(qc.empty());
  EXPECT_LT(qc.cols, qc.rows);  // before | after, one row per plane

  r = run(fuse(functional_, dir_ / "out/given.nii.gz") + " --transform " + quoted(dir_ / "out/t.tfm"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(testing::slurp(dir_ / "out/given.nii.gz"), testing::slurp(dir_ / "out/registered.nii.gz"));
  // A rerun of the registration gives the same bytes too.
  r = run(fuse(functional_, dir_ / "out/again.nii.gz") + " --register rigid");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(testing::slurp(dir_ / "out/again.nii.gz"), testing::slurp(dir_ / "out/registered.nii.gz"));
}

TEST_F(RegistrationCli, QcWritesAPictureOfAGivenTransform) {
  const Result r = run(fuse(functional_, dir_ / "out/o.nii.gz") + " --qc " + quoted(dir_ / "out/qc.png") +
                       " --transform " + quoted([&] {
                         const std::string path = dir_ / "in/identity.tfm";
                         std::ofstream(path) << "#Insight Transform File V1.0\n#Transform 0\n"
                                                "Transform: AffineTransform_double_3_3\n"
                                                "Parameters: 1 0 0 0 1 0 0 0 1 0 0 0\nFixedParameters: 0 0 0\n";
                         return path;
                       }()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(cv::imread(dir_ / "out/qc.png").empty());
  std::filesystem::remove_all(dir_ / "out");
  std::filesystem::create_directory(dir_ / "out");
  expect_refused(fuse(functional_, dir_ / "out/p.nii.gz") + " --register rigid --qc " + quoted(dir_ / "out/qc.jpg"),
                 {"qc.jpg", ".png"});
}

TEST_F(RegistrationCli, RegisteringAnAllZeroVolumeIsRefusedNamingBothFiles) {
  Volume zero = read_volume(functional_);
  std::fill(zero.voxels.begin(), zero.voxels.end(), 0.0f);
  write_volume_atomic(dir_ / "in/zero.nii.gz", zero);
  const Result r = run(fuse(dir_ / "in/zero.nii.gz", dir_ / "out/o.nii.gz") + " --register rigid --save-transform " +
                       quoted(dir_ / "out/t.tfm"));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, anatomical_)) << r.err;
  EXPECT_TRUE(contains(r.err, dir_ / "in/zero.nii.gz")) << r.err;
  EXPECT_TRUE(contains(r.err, "all zero")) << r.err;
  EXPECT_TRUE(list_dir(dir_ / "out").empty());
}

// A tiny pair data set in AANLIB's layout: the phantom's anatomical slices as MRI and a second
// contrast of them as SPECT, subject 7, slices 005..014.
void write_slice_dataset(const std::string& root) {
  const Volume anatomical = make_volume_phantom(64, 10).anatomical;
  const auto& size = anatomical.geometry.size;
  float peak = 0;
  for (const float v : anatomical.voxels) peak = std::max(peak, v);
  std::filesystem::create_directories(root + "/SPECT-MRI/MRI");
  std::filesystem::create_directories(root + "/SPECT-MRI/SPECT");
  for (int64_t k = 0; k < size[2]; ++k) {
    cv::Mat mri(static_cast<int>(size[1]), static_cast<int>(size[0]), CV_8UC1), spect = mri.clone();
    for (int r = 0; r < mri.rows; ++r) {
      for (int c = 0; c < mri.cols; ++c) {
        const double v = anatomical.voxels[static_cast<std::size_t>((k * size[1] + r) * size[0] + c)] / peak;
        mri.at<uint8_t>(r, c) = cv::saturate_cast<uint8_t>(255 * v);
        spect.at<uint8_t>(r, c) = cv::saturate_cast<uint8_t>(v > 0.1 ? 255 * (1 - std::abs(v - 0.5)) : 0);
      }
    }
    char name[32];
    std::snprintf(name, sizeof name, "7%03d.png", static_cast<int>(k) + 5);
    ASSERT_TRUE(cv::imwrite(root + "/SPECT-MRI/MRI/" + name, mri));
    ASSERT_TRUE(cv::imwrite(root + "/SPECT-MRI/SPECT/" + name, spect));
  }
}

TEST_F(RegistrationCli, BenchRegisterMeasuresAKnownMotion) {
  write_slice_dataset(dir_ / "data");
  std::string args = "bench-register --data " + quoted(dir_ / "data") +
                     " --pairs SPECT-MRI --cases-per-pair 1 --slice-mm 3 --threads 1 --qc-dir " + quoted(dir_ / "qc");
  const bool elastix = on_path("elastix");
  args += elastix ? " --elastix-parameters " + quoted(std::string(EFCNET_SOURCE_DIR) + "/scripts/elastix-rigid.txt")
                  : " --elastix none";
  const Result r = run(args + " --output " + quoted(dir_ / "bench.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto report = nlohmann::json::parse(testing::slurp(dir_ / "bench.json"));
  ASSERT_EQ(report.at("cases").size(), 1u);
  const auto& only = report.at("cases")[0];
  EXPECT_EQ(only.at("case"), "SPECT-7");
  EXPECT_EQ(only.at("slices"), 10);
  EXPECT_GT(only.at("motion_tre_mm").get<double>(), 3.0);
  EXPECT_LT(only.at("efcnet").at("tre_mm").get<double>(), 2.0) << only.dump();
  EXPECT_GT(only.at("efcnet").at("seconds").get<double>(), 0);
  if (elastix) {
    EXPECT_LT(only.at("elastix").at("tre_mm").get<double>(), 2.0) << only.dump();
  } else {
    EXPECT_TRUE(only.at("elastix").is_null());
  }
  EXPECT_EQ(list_dir(dir_ / "qc"), std::set<std::string>{"SPECT-7.png"});
  EXPECT_TRUE(contains(r.err, "SPECT-7")) << r.err;  // the table
}

TEST_F(RegistrationCli, BenchRegisterRefusesADirectoryThatIsNotAPairDataSet) {
  const Result r = run("bench-register --elastix none --data " + quoted(dir_ / "in") + " --pairs nothing");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_TRUE(contains(r.err, dir_ / "in/nothing")) << r.err;
}

}  // namespace
}  // namespace efcnet
