// The split of `efcnet` into a LibTorch-free executable and efcnet-torch (the LibTorch commands,
// commands.h): evaluate, phantom, --help and --version never load LibTorch, every command line
// naming a LibTorch command runs efcnet-torch, and its errors and exit status reach the caller.
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"
#include "efcnet/runtime.h"
#include "support/command.h"
#include "support/required.h"
#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using efcnet::testing::TempDir;

const std::string kBinary = EFCNET_BINARY;
const std::string kTorchBinary = (fs::path(kBinary).parent_path() / "efcnet-torch").string();

using efcnet::testing::contains;
using efcnet::testing::quoted;
using Result = efcnet::testing::CommandResult;

class TwoExecutables : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kBinary)) << kBinary;
    ASSERT_TRUE(fs::exists(kTorchBinary)) << kTorchBinary;
  }

  // Runs `shell_prefix COMMAND` through the shell, COMMAND's output captured.
  Result run_shell(const std::string& command, const std::string& shell_prefix = "") {
    return efcnet::testing::run_command(shell_prefix + " " + command, dir_);
  }
  Result run(const std::string& args, const std::string& shell_prefix = "") {
    return run_shell(quoted(kBinary) + " " + args, shell_prefix);
  }

  // A 64x64 phantom pair and its naive average: a valid triple for evaluate and fuse.
  void write_triple() {
    const efcnet::Phantom p = efcnet::make_phantom(64, efcnet::PhantomKind::spect);
    for (const char* d : {"A", "B", "F"}) fs::create_directories(dir_.path() / d);
    ASSERT_TRUE(cv::imwrite(dir_ / "A/x.png", p.anatomical));
    ASSERT_TRUE(cv::imwrite(dir_ / "B/x.png", p.functional));
    ASSERT_TRUE(cv::imwrite(dir_ / "F/x.png", p.anatomical));
  }
  std::string evaluate_args() {
    return "evaluate --anatomical " + quoted(dir_ / "A/x.png") + " --functional " + quoted(dir_ / "B/x.png") +
           " --fused " + quoted(dir_ / "F/x.png") + " --format json";
  }

  TempDir dir_;
};

const std::string kNoTorchExecutable = "EFCNET_TORCH_EXE=/nonexistent/efcnet-torch";

TEST_F(TwoExecutables, EfcnetDoesNotLinkLibTorchButEfcnetTorchDoes) {
  const Result exe = run_shell("ldd " + quoted(kBinary));
  ASSERT_EQ(exe.status, 0) << exe.err;
  EXPECT_FALSE(contains(exe.out, "libtorch")) << exe.out;
  EXPECT_FALSE(contains(exe.out, "libc10")) << exe.out;
  // The same check on efcnet-torch shows that it would notice LibTorch.
  const Result torch = run_shell("ldd " + quoted(kTorchBinary));
  ASSERT_EQ(torch.status, 0) << torch.err;
  EXPECT_TRUE(contains(torch.out, "libtorch")) << torch.out;
}

TEST_F(TwoExecutables, EvaluateHelpAndVersionLoadNoLibTorch) {
  write_triple();
  // LD_DEBUG=libs makes the dynamic loader name on stderr every library it loads.
  for (const std::string& args : {evaluate_args(), std::string("--help"), std::string("--version")}) {
    SCOPED_TRACE("efcnet " + args);
    const Result r = run(args, "LD_DEBUG=libs");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "libopencv_core")) << "LD_DEBUG output missing:\n" << r.err;
    EXPECT_FALSE(contains(r.err, "libtorch")) << r.err;
  }
  const Result fuse_help = run("fuse --help", "LD_DEBUG=libs");
  ASSERT_EQ(fuse_help.status, 0) << fuse_help.err;
  EXPECT_TRUE(contains(fuse_help.err, "libtorch")) << fuse_help.err;
  EXPECT_TRUE(contains(fuse_help.out, "--anatomical-dir")) << fuse_help.out;
}

TEST_F(TwoExecutables, EvaluatePhantomHelpAndVersionWorkWithoutEfcnetTorch) {
  write_triple();
  const Result evaluate = run(evaluate_args(), kNoTorchExecutable);
  EXPECT_EQ(evaluate.status, 0) << evaluate.err;
  EXPECT_TRUE(contains(evaluate.out, "\"Qabf\"")) << evaluate.out;

  const Result help = run("evaluate --help", kNoTorchExecutable);
  EXPECT_EQ(help.status, 0) << help.err;
  EXPECT_TRUE(contains(help.out, "--anatomical-dir")) << help.out;

  const Result phantom = run("phantom --out-dir " + quoted(dir_ / "phantom"), kNoTorchExecutable);
  EXPECT_EQ(phantom.status, 0) << phantom.err;
  EXPECT_TRUE(fs::exists(dir_ / "phantom/anatomical.png"));
  EXPECT_TRUE(fs::exists(dir_ / "phantom/functional.png"));

  const Result version = run("--version", kNoTorchExecutable);
  EXPECT_EQ(version.status, 0) << version.err;
  EXPECT_TRUE(contains(version.out, "efcnet ")) << version.out;

  const Result all_help = run("--help", kNoTorchExecutable);
  EXPECT_EQ(all_help.status, 0) << all_help.err;
  EXPECT_TRUE(contains(all_help.out, "train-seem")) << all_help.out;
}

TEST_F(TwoExecutables, TorchCommandsFailInOneLineNamingTheMissingExecutable) {
  for (const char* args : {"fuse --help", "train --help", "export-weights --help", "bench"}) {
    SCOPED_TRACE(std::string("efcnet ") + args);
    const Result r = run(args, kNoTorchExecutable);
    EXPECT_NE(r.status, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("efcnet: error: cannot run /nonexistent/efcnet-torch: ", 0), 0u) << r.err;
  }
}

TEST_F(TwoExecutables, HelpListsTheCommandsOfBothSides) {
  const Result r = run("--help");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* command :
       {"fuse", "evaluate", "phantom", "train", "train-seem", "identity-seem", "export-weights", "bench"}) {
    EXPECT_TRUE(contains(r.out, std::string("\n  ") + command + " ")) << command << " missing from:\n" << r.out;
  }
}

TEST_F(TwoExecutables, IdentitySeemWritesSeemWeightsOrNamesWhereItCannot) {
  const std::string seem = dir_ / "seem_identity.pth";
  const Result r = run("identity-seem --output " + quoted(seem));
  ASSERT_EQ(r.status, 0) << r.err;
  // The file is SEEM's state dict (export-weights recognises it); what it computes: model_test.
  const Result exported = run("export-weights --input " + quoted(seem) + " --output " + quoted(dir_ / "copy.pth"));
  EXPECT_EQ(exported.status, 0) << exported.err;
  EXPECT_TRUE(contains(exported.out, "wrote SEEM weights")) << exported.out;

  const std::string nowhere = dir_ / "missing/seem.pth";
  const Result refused = run("identity-seem --output " + quoted(nowhere));
  EXPECT_EQ(refused.status, 1);
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  EXPECT_TRUE(contains(refused.err, nowhere)) << refused.err;
  EXPECT_FALSE(fs::exists(nowhere));
}

TEST_F(TwoExecutables, ErrorsAndExitStatusOfTheTorchCommandsReachTheCaller) {
  write_triple();
  const Result missing = run("fuse --method y-average --anatomical " + quoted(dir_ / "A/missing.png") +
                             " --functional " + quoted(dir_ / "B/x.png") + " --output " + quoted(dir_ / "out.png"));
  EXPECT_EQ(missing.status, 1) << missing.err;
  EXPECT_EQ(missing.err.rfind("efcnet: error: ", 0), 0u) << missing.err;
  EXPECT_TRUE(contains(missing.err, "missing.png")) << missing.err;

  // An unpaired file: exit status 1 without an "error:" line, the pairs that exist fused.
  fs::copy_file(dir_ / "A/x.png", dir_ / "A/unpaired.png");
  const Result unpaired = run("fuse --method y-average --anatomical-dir " + quoted(dir_ / "A") + " --functional-dir " +
                              quoted(dir_ / "B") + " --output-dir " + quoted(dir_ / "out"));
  EXPECT_EQ(unpaired.status, 1) << unpaired.err;
  EXPECT_TRUE(contains(unpaired.err, "unpaired")) << unpaired.err;
  EXPECT_FALSE(contains(unpaired.err, "efcnet: error")) << unpaired.err;
  EXPECT_TRUE(fs::exists(dir_ / "out/x.png"));

  // A training refusal speaks of the flags, not of the library's option fields.
  const Result frozen = run("train --anatomical-dir " + quoted(dir_ / "A") + " --functional-dir " + quoted(dir_ / "B") +
                            " --out-dir " + quoted(dir_ / "run") + " --freeze-batchnorm-statistics --no-progress");
  EXPECT_EQ(frozen.status, 1) << frozen.err;
  EXPECT_TRUE(contains(frozen.err, "--freeze-batchnorm-statistics needs --init-weights")) << frozen.err;
  EXPECT_FALSE(fs::exists(dir_ / "run/model_1.pth"));

  // A network goes on training only with its own SEEM: --init-weights alone is refused.
  const Result lone =
      run("train --anatomical-dir " + quoted(dir_ / "A") + " --functional-dir " + quoted(dir_ / "B") + " --out-dir " +
          quoted(dir_ / "run") + " --init-weights " + quoted(dir_ / "A/x.png") + " --no-progress");
  EXPECT_EQ(lone.status, 1) << lone.err;
  EXPECT_TRUE(contains(lone.err, "--init-weights needs --seem-weights")) << lone.err;
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

TEST_F(TwoExecutables, FindsEfcnetTorchBesideItselfAndNamesItWhenMissing) {
  const fs::path bin = dir_.path() / "prefix" / "bin";
  fs::create_directories(bin);
  fs::copy_file(kBinary, bin / "efcnet");
  const Result missing = run_shell(quoted((bin / "efcnet").string()) + " fuse --help");
  EXPECT_NE(missing.status, 0);
  EXPECT_TRUE(contains(missing.err, (bin / "efcnet-torch").string())) << missing.err;

  fs::copy_file(kTorchBinary, bin / "efcnet-torch");
  const Result installed = run_shell(quoted((bin / "efcnet").string()) + " fuse --help");
  EXPECT_EQ(installed.status, 0) << installed.err;
  EXPECT_TRUE(contains(installed.out, "--anatomical-dir")) << installed.out;
}

}  // namespace

// efcnet chooses OpenBLAS's kernels before it runs efcnet-torch (which loads LibTorch and OpenBLAS),
// so the LibTorch commands run with them: what OpenBLAS reports in `efcnet bench` is that choice.
TEST_F(TwoExecutables, LibTorchCommandsRunWithTheBlasKernelsChosenForThisCpu) {
  const Result r =
      run("bench --size 32 --pairs 1 --warmup 0 --no-eager --threads 1 --format json", "env -u OPENBLAS_CORETYPE");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto reported = nlohmann::json::parse(r.out)["blas_kernels"];
  if (reported.is_null()) GTEST_SKIP() << "the system BLAS is not OpenBLAS";
  unsetenv("OPENBLAS_CORETYPE");
  const std::string expected = efcnet::select_blas_kernels();
  if (expected.empty()) GTEST_SKIP() << "no AVX2 on this CPU: OpenBLAS keeps its own choice (" << reported << ")";
  EXPECT_EQ(reported.get<std::string>(), expected);
}

TEST_F(TwoExecutables, AnOpenBlasCoreTypeGivenByTheUserIsKept) {
  const Result r =
      run("bench --size 32 --pairs 1 --warmup 0 --no-eager --threads 1 --format json", "OPENBLAS_CORETYPE=Prescott");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto reported = nlohmann::json::parse(r.out)["blas_kernels"];
  if (reported.is_null()) GTEST_SKIP() << "the system BLAS is not OpenBLAS";
  EXPECT_EQ(reported.get<std::string>(), "Prescott");
}

// The optimised/eager timing JSON of `efcnet bench`, printed into the suite's log
// (ctest -V -R BenchJson): the command succeeds, the report is complete, and the optimised path
// stays within the 1 level of the eager (reference) path that README and --help promise for float32.
TEST_F(TwoExecutables, BenchJsonIsCompleteAndTheOptimisedPathWithinOneLevel) {
  const Result r = run("bench --size 64 --pairs 1 --format json");
  std::printf("%s\n", r.out.c_str());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  ASSERT_EQ(report["runs"].size(), 1u);
  const auto& run_64 = report["runs"][0];
  ASSERT_FALSE(run_64.contains("error")) << run_64.dump();
  ASSERT_TRUE(run_64["eager"].is_object()) << run_64.dump();
  EXPECT_GT(run_64["seconds_per_pair"].get<double>(), 0.0);
  EXPECT_GT(run_64["eager"]["speedup_networks"].get<double>(), 0.0);
  EXPECT_LE(run_64["eager"]["max_level_difference"].get<int>(), 1);
}

// The bench report says which of oneDNN's own kernels the optimised path ran, and the switches
// that turn them off do.
TEST_F(TwoExecutables, BenchReportsTheOneDnnKernelsInUse) {
  const std::string bench = "bench --size 32 --pairs 1 --warmup 0 --no-eager --threads 1 --format json";
  const Result on = run(bench);
  ASSERT_EQ(on.status, 0) << on.err;
  const auto run_on = nlohmann::json::parse(on.out)["runs"].at(0);
  const Result off = run(bench + " --no-winograd --no-dnnl-linear");
  ASSERT_EQ(off.status, 0) << off.err;
  const auto report_off = nlohmann::json::parse(off.out);
  EXPECT_FALSE(report_off["winograd"].get<bool>());
  EXPECT_FALSE(report_off["dnnl_linear"].get<bool>());
  EXPECT_EQ(report_off["runs"].at(0)["winograd_layers"].get<int>(), 0);
  EXPECT_EQ(report_off["runs"].at(0)["dnnl_linear_layers"].get<int>(), 0);
  if (run_on["dnnl_linear_layers"].get<int>() == 0)
    EFCNET_SKIP_UNLESS_CI() << "this build has no oneDNN 2.x (libdnnl-dev)";
  EXPECT_EQ(run_on["dnnl_linear_layers"].get<int>(), 24);
  __builtin_cpu_init();
  EXPECT_EQ(run_on["winograd_layers"].get<int>(), __builtin_cpu_supports("avx512f") ? 18 : 0);
}
