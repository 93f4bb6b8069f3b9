// `efcnet fuse` and `efcnet phantom` run as a user runs them: the built binary, real files.
// Tests that fuse need the golden weights in ../shared and skip with a message without them.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"
#include "efcnet/inference.h"
#include "support/command.h"
#include "support/required.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using efcnet::testing::contains;
using efcnet::testing::list_dir;
using efcnet::testing::quoted;
using efcnet::testing::slurp;
using efcnet::testing::TempDir;
using Result = efcnet::testing::CommandResult;

const std::string kBinary = EFCNET_BINARY;
const std::string kWeights = std::string(EFCNET_SHARED_DIR) + "/golden/efcnet_random.pth";
const std::string kSeemWeights = std::string(EFCNET_SHARED_DIR) + "/golden/seem_authors.pth";

std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Small images keep a CPU fuse well under a second; 32x48 also checks a non-square size.
Phantom small_pair(PhantomKind kind, cv::Size size = {48, 32}) {
  const Phantom p = make_phantom(64, kind);
  Phantom small;
  cv::resize(p.anatomical, small.anatomical, size, 0, 0, cv::INTER_AREA);
  cv::resize(p.functional, small.functional, size, 0, 0, cv::INTER_AREA);
  return small;
}

void write_png_cut(const std::string& path, const cv::Mat& image) {
  std::vector<unsigned char> bytes;
  ASSERT_TRUE(cv::imencode(".png", image, bytes));
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size() / 2);
}

class FuseCli : public ::testing::Test {
 protected:
  // Runs `efcnet ARGS` through the shell (so tests can prefix environment or ulimit).
  Result run(const std::string& args, const std::string& shell_prefix = "") {
    return testing::run_command(shell_prefix + " exec " + quoted(kBinary) + " " + args, dir_);
  }

  static bool have_weights() { return std::filesystem::exists(kWeights) && std::filesystem::exists(kSeemWeights); }
  static std::string weights_args() {
    return "--weights " + quoted(kWeights) + " --seem-weights " + quoted(kSeemWeights);
  }

  std::string write(const std::string& name, const cv::Mat& image) {
    const std::string path = dir_ / name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    EXPECT_TRUE(cv::imwrite(path, image)) << path;
    return path;
  }

  std::string single_args(const std::string& a, const std::string& f, const std::string& o) {
    return "fuse --anatomical " + quoted(a) + " --functional " + quoted(f) + " --output " + quoted(o) + " " +
           weights_args();
  }

  void SetUp() override { ASSERT_TRUE(std::filesystem::exists(kBinary)) << kBinary; }

  TempDir dir_;
};

#define REQUIRE_WEIGHTS()                                                    \
  if (!have_weights())                                                       \
  EFCNET_SKIP_UNLESS_CI() << "needs " << kWeights << " and " << kSeemWeights \
                          << " (../shared/golden is absent); the fusing CLI tests are skipped"

TEST_F(FuseCli, HelpDocumentsEveryOptionThePairingRuleAndColours) {
  const Result r = run("fuse --help");
  EXPECT_EQ(r.status, 0);
  for (const char* text : {"--anatomical ",
                           "--functional ",
                           "--output ",
                           "--anatomical-dir",
                           "--functional-dir",
                           "--output-dir",
                           "--format",
                           "--weights",
                           "--seem-weights",
                           "--threads",
                           "--device",
                           "--overwrite",
                           "stem",
                           "letter case",
                           "unpaired",
                           "YUV",
                           "grey",
                           "GFP",
                           "EFCNET_WEIGHTS",
                           "EFCNET_SEEM_WEIGHTS",
                           "share/efcnet/models",
                           "16-bit",
                           "alpha",
                           "atomically"}) {
    EXPECT_TRUE(contains(r.out, text)) << "fuse --help lacks '" << text << "'";
  }
}

TEST_F(FuseCli, PhantomCommandWritesARegisteredPair) {
  const Result r = run("phantom --out-dir " + quoted(dir_ / "demo") + " --size 40");
  ASSERT_EQ(r.status, 0) << r.err;
  const cv::Mat a = cv::imread(dir_ / "demo/anatomical.png", cv::IMREAD_UNCHANGED);
  const cv::Mat f = cv::imread(dir_ / "demo/functional.png", cv::IMREAD_UNCHANGED);
  EXPECT_EQ(a.type(), CV_8UC1);
  EXPECT_EQ(f.type(), CV_8UC3);
  EXPECT_EQ(a.size(), cv::Size(40, 40));
  const Phantom expected = make_phantom(40);
  EXPECT_EQ(cv::norm(a, expected.anatomical, cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(f, expected.functional, cv::NORM_INF), 0);
  EXPECT_EQ(run("phantom --out-dir " + quoted(dir_ / "ct") + " --size 40 --kind ct").status, 0);
  EXPECT_EQ(cv::imread(dir_ / "ct/functional.png", cv::IMREAD_UNCHANGED).type(), CV_8UC1);
}

TEST_F(FuseCli, NoModeOrMixedModesAreRefused) {
  for (const std::string& args : {std::string("fuse"), "fuse --anatomical a.png --output-dir " + quoted(dir_ / "o")}) {
    const Result r = run(args);
    EXPECT_NE(r.status, 0) << args;
    EXPECT_TRUE(contains(r.err, "give either")) << r.err;
  }
  EXPECT_TRUE(list_dir(dir_.path()).empty());
}

TEST_F(FuseCli, SinglePairInputErrorsAreNamedAndWriteNothing) {
  const Phantom p = small_pair(PhantomKind::spect);
  const std::string a = write("a.png", p.anatomical), f = write("f.png", p.functional);
  const std::string big = write("big.png", small_pair(PhantomKind::spect, {48, 40}).functional);
  const std::string cut = dir_ / "cut.png";
  write_png_cut(cut, p.functional);
  const std::string out = dir_ / "out.png";

  struct Case {
    std::string args, must_name, problem;
  };
  const std::vector<Case> cases{
      {single_args(dir_ / "none.png", f, out), dir_ / "none.png", "no such file"},
      {single_args(a, dir_.path().string(), out), dir_.path().string(), "is a directory"},
      {single_args(a, cut, out), cut, "truncated PNG"},
      {single_args(a, big, out), big, "differ in size"},
      {single_args(a, f, dir_ / "missing/out.png"), dir_ / "missing/out.png", "does not exist"},
      {single_args(a, f, dir_ / "out.gif"), dir_ / "out.gif", "unsupported output extension"},
  };
  for (const Case& c : cases) {
    const Result r = run(c.args);
    EXPECT_EQ(r.status, 1) << c.args;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_TRUE(contains(r.err, c.must_name) && contains(r.err, c.problem)) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.gif"));
}

TEST_F(FuseCli, ExistingOutputIsKeptWithoutOverwrite) {
  const Phantom p = small_pair(PhantomKind::spect);
  const std::string a = write("a.png", p.anatomical), f = write("f.png", p.functional);
  const std::string out = dir_ / "out.png";
  std::ofstream(out) << "precious";
  const Result r = run(single_args(a, f, out));
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, out + ": already exists (pass --overwrite")) << r.err;
  EXPECT_EQ(slurp(out), "precious");
}

TEST_F(FuseCli, WeightsNamedByEnvironmentButMissingAreNamed) {
  const Phantom p = small_pair(PhantomKind::spect);
  const std::string a = write("a.png", p.anatomical), f = write("f.png", p.functional);
  const std::string out = dir_ / "out.png";
  const Result r = run("fuse --anatomical " + quoted(a) + " --functional " + quoted(f) + " --output " + quoted(out),
                       "EFCNET_WEIGHTS=/nonexistent/net.pth EFCNET_SEEM_WEIGHTS=/nonexistent/seem.pth");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, "/nonexistent/net.pth: no such file (given by EFCNET_WEIGHTS)")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(FuseCli, BadWeightsFileIsNamed) {
  REQUIRE_WEIGHTS();
  const Phantom p = small_pair(PhantomKind::spect);
  const std::string a = write("a.png", p.anatomical), f = write("f.png", p.functional);
  const std::string bogus = dir_ / "bogus.pth", out = dir_ / "out.png";
  std::ofstream(bogus) << "not a zip archive";
  const Result r = run("fuse --anatomical " + quoted(a) + " --functional " + quoted(f) + " --output " + quoted(out) +
                       " --weights " + quoted(bogus) + " --seem-weights " + quoted(kSeemWeights));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, bogus)) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(FuseCli, SinglePairKeepsColourOrGreyOfTheFunctionalImage) {
  REQUIRE_WEIGHTS();
  for (const PhantomKind kind : {PhantomKind::spect, PhantomKind::ct, PhantomKind::gfp}) {
    const Phantom p = small_pair(kind);
    const std::string a = write("a.png", p.anatomical), f = write("f.png", p.functional);
    const std::string out = dir_ / ("out" + std::to_string(static_cast<int>(kind)) + ".png");
    const Result r = run(single_args(a, f, out));
    ASSERT_EQ(r.status, 0) << r.err;
    const cv::Mat fused = cv::imread(out, cv::IMREAD_UNCHANGED);
    EXPECT_EQ(fused.size(), p.functional.size());
    EXPECT_EQ(fused.channels(), p.functional.channels());
    if (fused.channels() == 3) {
      // Only Y may change: every output pixel must be YUV2BGR(y, U, V) for some y, with U and V
      // the functional image's own chroma.
      cv::Mat functional_yuv, matched(fused.size(), CV_8UC1, cv::Scalar(0));
      cv::cvtColor(p.functional, functional_yuv, cv::COLOR_BGR2YUV);
      std::vector<cv::Mat> yuv;
      cv::split(functional_yuv, yuv);
      for (int y = 0; y < 256; ++y) {
        cv::Mat candidate, difference;
        cv::merge(std::vector<cv::Mat>{cv::Mat(fused.size(), CV_8UC1, cv::Scalar(y)), yuv[1], yuv[2]}, candidate);
        cv::cvtColor(candidate, candidate, cv::COLOR_YUV2BGR);
        cv::absdiff(candidate, fused, difference);
        std::vector<cv::Mat> d;
        cv::split(difference, d);
        matched |= (d[0] == 0) & (d[1] == 0) & (d[2] == 0);
      }
      EXPECT_EQ(cv::countNonZero(matched), static_cast<int>(fused.total()));
    }
  }
}

TEST_F(FuseCli, BatchFusesGoodPairsNamesEveryProblemAndMatchesSingleFuse) {
  REQUIRE_WEIGHTS();
  const Phantom spect = small_pair(PhantomKind::spect), pet = small_pair(PhantomKind::pet);
  write("mri/good1.png", spect.anatomical);
  write("spect/good1.png", spect.functional);
  write("mri/good2.png", pet.anatomical);
  write("spect/good2.bmp", pet.functional);  // extensions may differ; the output follows the functional
  write("mri/cut.png", spect.anatomical);
  write_png_cut(dir_ / "spect/cut.png", spect.functional);
  write("mri/mismatch.png", spect.anatomical);
  write("spect/mismatch.png", small_pair(PhantomKind::spect, {48, 40}).functional);
  write("mri/exists.png", spect.anatomical);
  write("spect/exists.png", spect.functional);
  write("mri/only_mri.png", spect.anatomical);
  write("spect/only_spect.png", spect.functional);
  write("out/exists.png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(7)));
  const std::string stale = slurp(dir_ / "out/exists.png");

  const Result r = run("fuse --anatomical-dir " + quoted(dir_ / "mri") + " --functional-dir " + quoted(dir_ / "spect") +
                       " --output-dir " + quoted(dir_ / "out") + " " + weights_args());
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "unpaired: " + dir_ / "mri/only_mri.png")) << r.err;
  EXPECT_TRUE(contains(r.err, "unpaired: " + dir_ / "spect/only_spect.png")) << r.err;
  EXPECT_TRUE(contains(r.err, "failed: cut: " + dir_ / "spect/cut.png" + ": truncated PNG")) << r.err;
  EXPECT_TRUE(contains(r.err, "failed: mismatch: ") && contains(r.err, "differ in size")) << r.err;
  EXPECT_TRUE(contains(r.err, "failed: exists: " + dir_ / "out/exists.png" + ": already exists")) << r.err;
  EXPECT_TRUE(contains(r.err, "fused 2, failed 3, unpaired 2 in ")) << r.err;
  EXPECT_EQ(list_dir(dir_ / "out"), (std::set<std::string>{"exists.png", "good1.png", "good2.bmp"}));
  EXPECT_EQ(slurp(dir_ / "out/exists.png"), stale);

  // Batch output == fusing each pair alone, byte for byte.
  struct Pair {
    const char *anatomical, *functional, *batch_output, *single_output;
  };
  for (const Pair& pair : {Pair{"mri/good1.png", "spect/good1.png", "out/good1.png", "single1.png"},
                           Pair{"mri/good2.png", "spect/good2.bmp", "out/good2.bmp", "single2.bmp"}}) {
    const Result s = run(single_args(dir_ / pair.anatomical, dir_ / pair.functional, dir_ / pair.single_output));
    ASSERT_EQ(s.status, 0) << s.err;
    EXPECT_EQ(slurp(dir_ / pair.single_output), slurp(dir_ / pair.batch_output)) << pair.batch_output;
  }
}

TEST_F(FuseCli, BatchOverwriteAndFormat) {
  REQUIRE_WEIGHTS();
  const Phantom p = small_pair(PhantomKind::spect);
  write("mri/x.png", p.anatomical);
  write("spect/x.png", p.functional);
  const std::string dirs = "fuse --anatomical-dir " + quoted(dir_ / "mri") + " --functional-dir " +
                           quoted(dir_ / "spect") + " --output-dir " + quoted(dir_ / "out") + " " + weights_args();
  std::filesystem::create_directory(dir_ / "out");
  std::ofstream(dir_ / "out/x.tif") << "stale";

  Result r = run(dirs + " --format tif");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "fused 0, failed 1, unpaired 0")) << r.err;
  EXPECT_EQ(slurp(dir_ / "out/x.tif"), "stale");

  r = run(dirs + " --format tif --overwrite");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "fused 1, failed 0, unpaired 0")) << r.err;
  EXPECT_EQ(cv::imread(dir_ / "out/x.tif", cv::IMREAD_UNCHANGED).size(), p.functional.size());
  EXPECT_EQ(list_dir(dir_ / "out"), (std::set<std::string>{"x.tif"}));
}

TEST_F(FuseCli, BatchMissingDirectoryIsNamed) {
  std::filesystem::create_directory(dir_ / "spect");
  const Result r = run("fuse --anatomical-dir " + quoted(dir_ / "nope") + " --functional-dir " +
                       quoted(dir_ / "spect") + " --output-dir " + quoted(dir_ / "out") + " " + weights_args());
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, dir_ / "nope" + ": no such directory")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out"));
}

TEST_F(FuseCli, FuseKilledWhileWritingLeavesNoPartialOutput) {
  REQUIRE_WEIGHTS();
  // Noise makes the PNG (~7 KiB) larger than each file-size limit, so the kernel kills the process
  // (SIGXFSZ) in the middle of writing the output, after 0.5, 1, 2 or 4 KiB of it.
  cv::Mat noise(48, 48, CV_8UC3);
  cv::randu(noise, 0, 256);
  const std::string a = write("a.png", small_pair(PhantomKind::spect, {48, 48}).anatomical);
  const std::string f = write("f.png", noise);
  for (const int blocks : {1, 2, 4, 8}) {
    SCOPED_TRACE("ulimit -f " + std::to_string(blocks));
    const std::string name = "out" + std::to_string(blocks) + ".png";
    const Result r = run(single_args(a, f, dir_ / name), "ulimit -f " + std::to_string(blocks) + ";");
    EXPECT_EQ(r.status, 128 + SIGXFSZ) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir_ / name));
    bool saw_partial_temp = false;  // proves the kill happened mid-write, not before
    for (const auto& entry : list_dir(dir_.path())) saw_partial_temp |= entry.rfind("." + name + ".tmp-", 0) == 0;
    EXPECT_TRUE(saw_partial_temp);
  }
}

TEST_F(FuseCli, FuseKilledAtAnyMomentLeavesNothingOrTheWholeOutput) {
  REQUIRE_WEIGHTS();
  const Phantom p = small_pair(PhantomKind::spect);
  const std::string a = write("a.png", p.anatomical), f = write("f.png", p.functional);
  const auto start = std::chrono::steady_clock::now();
  const Result complete = run(single_args(a, f, dir_ / "complete.png"));
  const auto whole_run =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  ASSERT_EQ(complete.status, 0) << complete.err;
  const std::string expected = slurp(dir_ / "complete.png");

  // The kills must straddle the moment the output appears (some before it, some after), or they
  // prove nothing about the write. They are spread over the time a whole run took; when they all
  // missed on one side (a machine busier or quieter than during that run), they are retried later
  // or earlier.
  int killed_before = 0, killed_after = 0;
  std::vector<int> delays;
  for (const double fraction : {0.05, 0.3, 0.6, 0.8, 0.9, 1.0, 1.1, 1.4}) {
    delays.push_back(static_cast<int>(fraction * static_cast<double>(whole_run.count())));
  }
  for (int attempt = 0; attempt < 3 && (killed_before == 0 || killed_after == 0); ++attempt) {
    if (attempt > 0) {
      for (int& delay : delays)
        delay = killed_after == 0 ? delay * 2 : delay / 2;  // all too early: later; all too late: earlier
    }
    for (const int delay_ms : delays) {
      const std::string out = dir_ / ("killed" + std::to_string(attempt) + "_" + std::to_string(delay_ms) + ".png");
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::freopen("/dev/null", "w", stderr);
        ::execl(kBinary.c_str(), kBinary.c_str(), "fuse", "--anatomical", a.c_str(), "--functional", f.c_str(),
                "--output", out.c_str(), "--weights", kWeights.c_str(), "--seem-weights", kSeemWeights.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
      if (std::filesystem::exists(out)) {
        EXPECT_EQ(slurp(out), expected) << "partial output after " << delay_ms << " ms";
        ++killed_after;
      } else {
        ++killed_before;
      }
    }
  }
  EXPECT_GT(killed_before, 0) << "every kill came after the output was complete";
  EXPECT_GT(killed_after, 0) << "every kill came before the output was written";
}

// ---- the shipped default weights (models/) ----
const std::string kShippedWeights = std::string(EFCNET_SOURCE_DIR) + "/models/efcnet_default.pth";
const std::string kShippedSeemWeights = std::string(EFCNET_SOURCE_DIR) + "/models/seem_default.pth";

#define REQUIRE_SHIPPED_WEIGHTS()                                                                 \
  if (!std::filesystem::exists(kShippedWeights) || !std::filesystem::exists(kShippedSeemWeights)) \
  EFCNET_SKIP_UNLESS_CI() << "no shipped weights in " << EFCNET_SOURCE_DIR << "/models"

TEST_F(FuseCli, WithoutWeightsGivenTheShippedDefaultsAreUsed) {
  REQUIRE_SHIPPED_WEIGHTS();
  const Phantom p = small_pair(PhantomKind::spect);
  const std::string a = write("a.png", p.anatomical), f = write("f.png", p.functional);
  const std::string by_default = dir_ / "default.png", named = dir_ / "named.png";
  const std::string inputs = "fuse --anatomical " + quoted(a) + " --functional " + quoted(f);
  const Result r = run(inputs + " --output " + quoted(by_default), "unset EFCNET_WEIGHTS EFCNET_SEEM_WEIGHTS;");
  ASSERT_EQ(r.status, 0) << r.err;
  const Result n = run(inputs + " --output " + quoted(named) + " --weights " + quoted(kShippedWeights) +
                       " --seem-weights " + quoted(kShippedSeemWeights));
  ASSERT_EQ(n.status, 0) << n.err;
  EXPECT_EQ(slurp(by_default), slurp(named));
  // A trained network, not a constant: the fused brightness follows the inputs.
  cv::Mat fused = cv::imread(by_default, cv::IMREAD_GRAYSCALE);
  cv::Scalar mean, deviation;
  cv::meanStdDev(fused, mean, deviation);
  EXPECT_GT(deviation[0], 10.0);
}

TEST_F(FuseCli, ModelsAreChosenByNameAndOneWeightsFileAloneIsRefused) {
  REQUIRE_SHIPPED_WEIGHTS();
  const Phantom p = small_pair(PhantomKind::spect);
  const std::string a = write("a.png", p.anatomical), f = write("f.png", p.functional);
  const std::string inputs = "fuse --anatomical " + quoted(a) + " --functional " + quoted(f) + " --output ";
  const std::string by_name = dir_ / "named.png", by_default = dir_ / "default.png", lone = dir_ / "lone.png";
  const std::string no_env = "unset EFCNET_WEIGHTS EFCNET_SEEM_WEIGHTS EFCNET_MODELS_DIR;";
  ASSERT_EQ(run(inputs + quoted(by_name) + " --model default", no_env).status, 0);
  ASSERT_EQ(run(inputs + quoted(by_default), no_env).status, 0);
  EXPECT_EQ(slurp(by_name), slurp(by_default));

  // A network alone would be paired with another model's SEEM, silently: refused, nothing written.
  const Result network_only = run(inputs + quoted(lone) + " --weights " + quoted(kShippedWeights), no_env);
  EXPECT_EQ(network_only.status, 1);
  EXPECT_EQ(count_lines(network_only.err), 1u) << network_only.err;
  EXPECT_TRUE(contains(network_only.err,
                       "--weights without --seem-weights: a network fuses as trained only with its "
                       "own SEEM"))
      << network_only.err;
  const Result seem_only = run(inputs + quoted(lone) + " --seem-weights " + quoted(kShippedSeemWeights), no_env);
  EXPECT_EQ(seem_only.status, 1);
  EXPECT_TRUE(contains(seem_only.err, "--seem-weights without --weights")) << seem_only.err;
  const Result env_only =
      run(inputs + quoted(lone), "unset EFCNET_SEEM_WEIGHTS; EFCNET_WEIGHTS=" + quoted(kShippedWeights));
  EXPECT_EQ(env_only.status, 1);
  EXPECT_TRUE(contains(env_only.err, "EFCNET_WEIGHTS without EFCNET_SEEM_WEIGHTS")) << env_only.err;
  const Result unknown = run(inputs + quoted(lone) + " --model nonesuch", no_env);
  EXPECT_EQ(unknown.status, 1);
  EXPECT_TRUE(contains(unknown.err, "no model named \"nonesuch\" (given by --model); the shipped models: default"))
      << unknown.err;
  EXPECT_FALSE(std::filesystem::exists(lone));

  // `efcnet models`: one line per model, its name first.
  const Result listed = run("models", no_env);
  ASSERT_EQ(listed.status, 0) << listed.err;
  EXPECT_EQ(listed.out.rfind("default  ", 0), 0u) << listed.out;
  EXPECT_TRUE(contains(listed.out, "variant")) << listed.out;
}

TEST_F(FuseCli, ShippedWeightsAreFloat16FilesWellUnder20MiB) {
  REQUIRE_SHIPPED_WEIGHTS();
  for (const auto& path : {kShippedWeights, kShippedSeemWeights}) {
    EXPECT_LT(std::filesystem::file_size(path), std::uintmax_t{20} << 20) << path;
  }
  // 7,459,145 parameters + BatchNorm buffers at 2 bytes each, plus the archive's few kilobytes.
  EXPECT_LT(std::filesystem::file_size(kShippedWeights), std::uintmax_t{16} << 20);
}

TEST_F(FuseCli, Bfloat16PrecisionIsCloseToFloat32AndOtherPrecisionsAreRefused) {
  REQUIRE_SHIPPED_WEIGHTS();
  if (!efcnet::bfloat16_supported()) GTEST_SKIP() << "this CPU has no bfloat16 convolutions (AVX-512 BW, VL, DQ)";
  const Phantom p = small_pair(PhantomKind::pet, {64, 48});
  const std::string a = write("a.png", p.anatomical), f = write("f.png", p.functional);
  const std::string inputs = "fuse --anatomical " + quoted(a) + " --functional " + quoted(f) + " --output ";
  const std::string exact = dir_ / "float32.png", fast = dir_ / "bf16.png";
  ASSERT_EQ(run(inputs + quoted(exact)).status, 0);
  const Result r = run(inputs + quoted(fast) + " --precision bf16");
  ASSERT_EQ(r.status, 0) << r.err;
  cv::Mat difference;
  cv::absdiff(cv::imread(exact, cv::IMREAD_COLOR), cv::imread(fast, cv::IMREAD_COLOR), difference);
  double worst = 0;
  cv::minMaxLoc(difference.reshape(1), nullptr, &worst);
  EXPECT_GT(cv::countNonZero(difference.reshape(1)), 0);  // bfloat16 really ran
  EXPECT_LE(worst, 3.0);                                  // the documented bound (README, --precision)

  const Result refused = run(inputs + quoted(dir_ / "half.png") + " --precision float16");
  EXPECT_NE(refused.status, 0);
  EXPECT_TRUE(contains(refused.err, "--precision")) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "half.png"));
}

}  // namespace
}  // namespace efcnet
