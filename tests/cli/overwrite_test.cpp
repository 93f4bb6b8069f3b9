// No command replaces an existing file without --overwrite: each one that writes a named file
// refuses an existing one in one line before doing any work, and leaves it as it was.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"
#include "support/command.h"
#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using efcnet::testing::contains;
using efcnet::testing::quoted;
using efcnet::testing::slurp;
using efcnet::testing::TempDir;
using Result = efcnet::testing::CommandResult;

const std::string kBinary = EFCNET_BINARY;
const std::string kKept = "an earlier file";

class NoSilentOverwrite : public ::testing::Test {
 protected:
  Result run(const std::string& args) { return efcnet::testing::run_command(quoted(kBinary) + " " + args, dir_); }
  void write_file(const std::string& path, const std::string& text = kKept) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }
  // The one line a refusal prints for `path`.
  static std::string refusal(const std::string& path) {
    return path + ": already exists (pass --overwrite to replace it)\n";
  }
  static void expect_refused(const Result& r, const std::string& path) {
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(contains(r.err, refusal(path))) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // A 32x32 pair A/x.png, F/x.png.
  void write_pair() {
    const efcnet::Phantom p = efcnet::make_phantom(32, efcnet::PhantomKind::spect);
    for (const char* d : {"A", "F"}) fs::create_directories(dir_.path() / d);
    ASSERT_TRUE(cv::imwrite(dir_ / "A/x.png", p.anatomical));
    ASSERT_TRUE(cv::imwrite(dir_ / "F/x.png", p.functional));
  }

  TempDir dir_;
};

TEST_F(NoSilentOverwrite, PhantomKeepsAnExistingPairWithoutOverwrite) {
  ASSERT_EQ(run("phantom --size 32 --out-dir " + quoted(dir_ / "p")).status, 0);
  const std::string anatomical = slurp(dir_ / "p/anatomical.png"), functional = slurp(dir_ / "p/functional.png");
  expect_refused(run("phantom --size 40 --out-dir " + quoted(dir_ / "p")), dir_ / "p/anatomical.png");
  EXPECT_EQ(slurp(dir_ / "p/anatomical.png"), anatomical);
  EXPECT_EQ(slurp(dir_ / "p/functional.png"), functional);
  // Either file alone is enough to refuse; nothing is written beside it.
  fs::remove(dir_ / "p/anatomical.png");
  expect_refused(run("phantom --size 40 --out-dir " + quoted(dir_ / "p")), dir_ / "p/functional.png");
  EXPECT_FALSE(fs::exists(dir_ / "p/anatomical.png"));

  write_file(dir_ / "v/functional.nii.gz");
  expect_refused(run("phantom --volume --size 32 --slices 4 --out-dir " + quoted(dir_ / "v")),
                 dir_ / "v/functional.nii.gz");
  EXPECT_EQ(slurp(dir_ / "v/functional.nii.gz"), kKept);
  EXPECT_FALSE(fs::exists(dir_ / "v/anatomical.nii.gz"));

  const Result replaced = run("phantom --size 40 --overwrite --out-dir " + quoted(dir_ / "p"));
  ASSERT_EQ(replaced.status, 0) << replaced.err;
  EXPECT_EQ(cv::imread(dir_ / "p/functional.png").rows, 40);
}

TEST_F(NoSilentOverwrite, IdentitySeemAndExportWeightsKeepAnExistingFileWithoutOverwrite) {
  const std::string seem = dir_ / "seem.pth", copy = dir_ / "copy.pth";
  ASSERT_EQ(run("identity-seem --output " + quoted(seem)).status, 0);
  const std::string written = slurp(seem);
  write_file(copy);

  expect_refused(run("identity-seem --output " + quoted(copy)), copy);
  EXPECT_EQ(slurp(copy), kKept);
  expect_refused(run("export-weights --input " + quoted(seem) + " --output " + quoted(copy)), copy);
  EXPECT_EQ(slurp(copy), kKept);

  const Result exported = run("export-weights --input " + quoted(seem) + " --output " + quoted(copy) + " --overwrite");
  ASSERT_EQ(exported.status, 0) << exported.err;
  EXPECT_NE(slurp(copy), kKept);
  const Result identity = run("identity-seem --overwrite --output " + quoted(seem));
  ASSERT_EQ(identity.status, 0) << identity.err;
  EXPECT_EQ(slurp(seem), written);
  for (const char* command : {"identity-seem", "export-weights", "pack-pairs", "phantom"}) {
    const Result help = run(std::string(command) + " --help");
    EXPECT_TRUE(contains(help.out, "--overwrite")) << command << " --help: " << help.out;
  }
}

TEST_F(NoSilentOverwrite, PackPairsRefusesAnExistingOutputBeforeReadingThePairs) {
  write_pair();
  write_file(dir_ / "F/y.png", "not a PNG");  // reading the pairs would fail on this file
  write_file(dir_ / "A/y.png", "not a PNG");
  const std::string packed = dir_ / "pairs.pth";
  write_file(packed);
  expect_refused(run("pack-pairs --anatomical-dir " + quoted(dir_ / "A") + " --functional-dir " + quoted(dir_ / "F") +
                     " --output " + quoted(packed)),
                 packed);
  EXPECT_EQ(slurp(packed), kKept);

  fs::remove(dir_ / "A/y.png");
  fs::remove(dir_ / "F/y.png");
  const Result replaced = run("pack-pairs --anatomical-dir " + quoted(dir_ / "A") + " --functional-dir " +
                              quoted(dir_ / "F") + " --output " + quoted(packed) + " --overwrite");
  ASSERT_EQ(replaced.status, 0) << replaced.err;
  EXPECT_NE(slurp(packed), kKept);
}

// A loss log left in --out-dir belongs to a run (one interrupted in its first epoch leaves only
// that): a new run there is refused, before the images are read, as for checkpoints.
TEST_F(NoSilentOverwrite, TrainSeemRefusesAnOutDirHoldingALossLogBeforeReadingTheImages) {
  write_pair();
  write_file(dir_ / "F/y.png", "not a PNG");
  for (const char* log : {"loss.csv", "loss.png"}) {
    const std::string run_dir = dir_ / (std::string("run-") + log);
    write_file(run_dir + "/" + log);
    const Result r = run("train-seem --functional-dir " + quoted(dir_ / "F") + " --out-dir " + quoted(run_dir) +
                         " --epochs 1 --batch-size 1 --no-progress");
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(contains(r.err, run_dir + " already holds a training run (" + log + "); set --resume")) << r.err;
    EXPECT_EQ(slurp(run_dir + "/" + log), kKept);
    EXPECT_EQ(efcnet::testing::list_dir(run_dir).size(), 1u) << run_dir;
  }
}

class FuseVolumePictures : public NoSilentOverwrite {
 protected:
  // 16 slices: coronal slices of 32x16, large enough to fuse (11x11 at least).
  void SetUp() override {
    const Result phantom = run("phantom --volume --size 32 --slices 16 --out-dir " + quoted(dir_ / "in"));
    ASSERT_EQ(phantom.status, 0) << phantom.err;
  }
  Result fuse(const std::string& args) {
    return run("fuse --method y-average --anatomical " + quoted(dir_ / "in/anatomical.nii.gz") + " --functional " +
               quoted(dir_ / "in/functional.nii.gz") + " --output " + quoted(dir_ / "fused.nii.gz") + " " + args);
  }
};

TEST_F(FuseVolumePictures, AnExistingMontageIsRefusedBeforeFusing) {
  const std::string montage = dir_ / "montage.png";
  write_file(montage);
  expect_refused(fuse("--montage " + quoted(montage)), montage);
  EXPECT_EQ(slurp(montage), kKept);
  EXPECT_FALSE(fs::exists(dir_ / "fused.nii.gz"));

  const Result replaced = fuse("--montage " + quoted(montage) + " --overwrite");
  ASSERT_EQ(replaced.status, 0) << replaced.err;
  EXPECT_FALSE(cv::imread(montage).empty());
}

TEST_F(FuseVolumePictures, ASlicesDirHoldingSlicesIsRefusedBeforeFusing) {
  const std::string slice = dir_ / "slices/axial_02.png";  // 16 axial slices: two digits
  write_file(slice);
  write_file(dir_ / "slices/notes.txt");
  expect_refused(fuse("--slices-dir " + quoted(dir_ / "slices")), slice);
  EXPECT_EQ(slurp(slice), kKept);
  EXPECT_EQ(efcnet::testing::list_dir(dir_ / "slices").size(), 2u);
  EXPECT_FALSE(fs::exists(dir_ / "fused.nii.gz"));

  // Other files, and slices of another plane, are no reason to refuse.
  const Result coronal = fuse("--slices-dir " + quoted(dir_ / "slices") + " --plane coronal");
  ASSERT_EQ(coronal.status, 0) << coronal.err;
  EXPECT_EQ(slurp(slice), kKept);
  fs::remove(dir_ / "fused.nii.gz");
  const Result replaced = fuse("--slices-dir " + quoted(dir_ / "slices") + " --overwrite");
  ASSERT_EQ(replaced.status, 0) << replaced.err;
  EXPECT_FALSE(cv::imread(slice).empty());
}

}  // namespace
