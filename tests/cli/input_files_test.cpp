// Hostile and odd input files given to the commands that read images: a PNG of a few MB that
// declares 32768x32768 pixels, a FIFO, a device. Each must end in one line naming the file and
// exit status 1, quickly and without decoding (peak memory of the child measured).
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"
#include "support/command.h"
#include "support/png_files.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using efcnet::testing::contains;
using efcnet::testing::quoted;
using efcnet::testing::TempDir;
using Result = efcnet::testing::CommandResult;

const std::string kBinary = EFCNET_BINARY;
const std::string kHugeMessage = ": 32768x32768 pixels exceeds the limit of 67108864";

std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// The largest resident set of any child this test process has waited for, in bytes. ctest runs
// each test in a process of its own, so this is the largest of this test's commands.
long peak_child_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_CHILDREN, &usage);
  return usage.ru_maxrss * 1024L;
}

class InputFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kBinary)) << kBinary;
    for (const char* side : {"a", "f", "r"}) std::filesystem::create_directory(dir_ / side);
    cv::Mat grey(32, 48, CV_8UC1, cv::Scalar(90)), colour(32, 48, CV_8UC3, cv::Scalar(10, 80, 200));
    ASSERT_TRUE(cv::imwrite(dir_ / "a/small.png", grey));
    ASSERT_TRUE(cv::imwrite(dir_ / "f/small.png", colour));
    ASSERT_TRUE(cv::imwrite(dir_ / "r/small.png", colour));
    // 32768x32768 RGB, every row present: 3 GiB once decoded.
    const auto bytes = efcnet::testing::zero_png(32768, 32768, 2);
    std::ofstream(dir_ / "f/huge.png", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(cv::imwrite(dir_ / "a/huge.png", grey));
    ASSERT_TRUE(cv::imwrite(dir_ / "r/huge.png", colour));
  }

  // Runs `efcnet ARGS` under a 20 s timeout, so a command that blocks fails instead of hanging.
  Result run(const std::string& args, double* seconds = nullptr) {
    const auto start = std::chrono::steady_clock::now();
    Result r = testing::run_command("exec timeout 20 " + quoted(kBinary) + " " + args, dir_);
    if (seconds) *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
  }

  void expect_one_line_naming(const Result& r, const std::string& text) {
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(contains(r.err, text)) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  }

  TempDir dir_;
};

TEST_F(InputFiles, FuseRefusesAHugeDeclaredImageBeforeDecoding) {
  const std::string huge = dir_ / "f/huge.png";
  const Result r = run("fuse --method y-average --anatomical " + quoted(dir_ / "a/huge.png") + " --functional " +
                       quoted(huge) + " --output " + quoted(dir_ / "o.png"));
  expect_one_line_naming(r, huge + kHugeMessage);
  EXPECT_LT(peak_child_rss_bytes(), 1L << 30);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "o.png"));
}

TEST_F(InputFiles, EvaluateRefusesAHugeDeclaredImageBeforeDecoding) {
  const std::string huge = dir_ / "f/huge.png";
  const Result r = run("evaluate --anatomical " + quoted(dir_ / "a/huge.png") + " --functional " + quoted(huge) +
                       " --fused " + quoted(dir_ / "r/huge.png"));
  expect_one_line_naming(r, huge + kHugeMessage);
  EXPECT_LT(peak_child_rss_bytes(), 1L << 30);
}

TEST_F(InputFiles, CompareRefusesAHugeDeclaredImageBeforeDecoding) {
  const std::string huge = dir_ / "f/huge.png";
  const Result r = run("compare --no-efcnet --anatomical-dir " + quoted(dir_ / "a") + " --functional-dir " +
                       quoted(dir_ / "f") + " --output-dir " + quoted(dir_ / "report"));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "failed: huge: " + huge + kHugeMessage)) << r.err;
  EXPECT_LT(peak_child_rss_bytes(), 1L << 30);
}

TEST_F(InputFiles, MaxImagePixelsRaisesOrLowersTheLimit) {
  const std::string a = dir_ / "a/small.png", f = dir_ / "f/small.png";
  const std::string pair = " --anatomical " + quoted(a) + " --functional " + quoted(f);
  Result r = run("fuse --method y-average --max-image-pixels 1535" + pair + " --output " + quoted(dir_ / "o.png"));
  expect_one_line_naming(r, a + ": 48x32 pixels exceeds the limit of 1535");
  r = run("fuse --method y-average --max-image-pixels 1536" + pair + " --output " + quoted(dir_ / "o.png"));
  EXPECT_EQ(r.status, 0) << r.err;
  r = run("evaluate --max-image-pixels 1535" + pair + " --fused " + quoted(dir_ / "r/small.png"));
  expect_one_line_naming(r, a + ": 48x32 pixels exceeds the limit of 1535");
  for (const char* command : {"fuse", "evaluate", "compare"}) {
    r = run(std::string(command) + " --help");
    EXPECT_TRUE(contains(r.out, "--max-image-pixels")) << command;
  }
}

// A FIFO would block open() until a writer comes: each command must refuse it at once.
TEST_F(InputFiles, FifoInputsAreRefusedWithoutBlocking) {
  const std::string fifo = dir_ / "pipe.png", weights_fifo = dir_ / "pipe.pth";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo(weights_fifo.c_str(), 0600), 0);
  const std::string f = dir_ / "f/small.png", output = " --output " + quoted(dir_ / "o.png");
  for (const std::string& args :
       {"fuse --method y-average --anatomical " + quoted(fifo) + " --functional " + quoted(f) + output,
        "evaluate --anatomical " + quoted(fifo) + " --functional " + quoted(f) + " --fused " + quoted(f)}) {
    double seconds = 0;
    const Result r = run(args, &seconds);
    expect_one_line_naming(r, fifo + ": is a FIFO, not a regular file");
    EXPECT_LT(seconds, 5) << args;
  }
  double seconds = 0;
  const Result r = run("fuse --weights " + quoted(weights_fifo) + " --seem-weights " + quoted(weights_fifo) +
                           " --anatomical " + quoted(dir_ / "a/small.png") + " --functional " + quoted(f) + output,
                       &seconds);
  expect_one_line_naming(r, weights_fifo + ": is a FIFO, not a regular file");
  EXPECT_LT(seconds, 5);
}

TEST_F(InputFiles, DeviceInputIsRefused) {
  const Result r = run("evaluate --anatomical /dev/zero --functional " + quoted(dir_ / "f/small.png") + " --fused " +
                       quoted(dir_ / "r/small.png"));
  expect_one_line_naming(r, "/dev/zero: is a character device, not a regular file");
}

}  // namespace
}  // namespace efcnet
