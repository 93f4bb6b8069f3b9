// The split of `efcnet` into a LibTorch-free executable and libefcnet_commands.so (the LibTorch
// subcommands): evaluate and phantom never load LibTorch, every other command line loads the plugin,
// and what the plugin throws still reaches main's handlers.
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

#include "efcnet/blas.h"
#include "efcnet/image.h"
#include "support/command.h"
#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using efcnet::testing::TempDir;

const std::string kBinary = EFCNET_BINARY;
const std::string kPlugin = (fs::path(kBinary).parent_path() / "libefcnet_commands.so").string();




using efcnet::testing::contains;
using efcnet::testing::quoted;
using Result = efcnet::testing::CommandResult;

class PluginCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kBinary)) << kBinary;
    ASSERT_TRUE(fs::exists(kPlugin)) << kPlugin;
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

const std::string kNoPlugin = "EFCNET_PLUGIN=/nonexistent/libefcnet_commands.so";

TEST_F(PluginCli, ExecutableDoesNotLinkLibTorchButThePluginDoes) {
  const Result exe = run_shell("ldd " + quoted(kBinary));
  ASSERT_EQ(exe.status, 0) << exe.err;
  EXPECT_FALSE(contains(exe.out, "libtorch")) << exe.out;
  EXPECT_FALSE(contains(exe.out, "libc10")) << exe.out;
  // The same check on the plugin shows that it would notice LibTorch.
  const Result plugin = run_shell("ldd " + quoted(kPlugin));
  ASSERT_EQ(plugin.status, 0) << plugin.err;
  EXPECT_TRUE(contains(plugin.out, "libtorch")) << plugin.out;
}

TEST_F(PluginCli, EvaluateLoadsNeitherThePluginNorLibTorch) {
  write_triple();
  // LD_DEBUG=libs makes the dynamic loader name on stderr every library it loads.
  const Result r = run(evaluate_args(), "LD_DEBUG=libs");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "\"SSIM\"")) << r.out;
  EXPECT_TRUE(contains(r.err, "libopencv_core")) << "LD_DEBUG output missing:\n" << r.err;
  EXPECT_FALSE(contains(r.err, "libefcnet_commands")) << r.err;
  EXPECT_FALSE(contains(r.err, "libtorch")) << r.err;

  const Result fuse_help = run("fuse --help", "LD_DEBUG=libs");
  ASSERT_EQ(fuse_help.status, 0) << fuse_help.err;
  EXPECT_TRUE(contains(fuse_help.err, "libefcnet_commands")) << fuse_help.err;
  EXPECT_TRUE(contains(fuse_help.err, "libtorch")) << fuse_help.err;
}

TEST_F(PluginCli, EvaluatePhantomAndVersionWorkWithoutThePlugin) {
  write_triple();
  const Result evaluate = run(evaluate_args(), kNoPlugin);
  EXPECT_EQ(evaluate.status, 0) << evaluate.err;
  EXPECT_TRUE(contains(evaluate.out, "\"Qabf\"")) << evaluate.out;

  const Result help = run("evaluate --help", kNoPlugin);
  EXPECT_EQ(help.status, 0) << help.err;
  EXPECT_TRUE(contains(help.out, "--anatomical-dir")) << help.out;

  const Result phantom = run("phantom --out-dir " + quoted(dir_ / "phantom"), kNoPlugin);
  EXPECT_EQ(phantom.status, 0) << phantom.err;
  EXPECT_TRUE(fs::exists(dir_ / "phantom/anatomical.png"));
  EXPECT_TRUE(fs::exists(dir_ / "phantom/functional.png"));

  const Result version = run("--version", kNoPlugin);
  EXPECT_EQ(version.status, 0) << version.err;
  EXPECT_TRUE(contains(version.out, "efcnet ")) << version.out;
}

TEST_F(PluginCli, EveryOtherCommandLineFailsNamingTheMissingPlugin) {
  for (const std::string args : {"fuse --help", "train --help", "export-weights --help", "--help", ""}) {
    SCOPED_TRACE("efcnet " + args);
    const Result r = run(args, kNoPlugin);
    EXPECT_NE(r.status, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("efcnet: error: cannot load /nonexistent/libefcnet_commands.so: ", 0), 0u) << r.err;
  }
}

TEST_F(PluginCli, HelpListsTheCommandsOfBothSides) {
  const Result r = run("--help");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* command : {"fuse", "evaluate", "phantom", "train", "train-seem", "export-weights"}) {
    EXPECT_TRUE(contains(r.out, std::string("\n  ") + command + " ")) << command << " missing from:\n" << r.out;
  }
}

TEST_F(PluginCli, ExceptionsThrownInThePluginReachMain) {
  write_triple();
  // std::runtime_error from fuse: main's std::exception handler prints it.
  const Result missing = run("fuse --method y-average --anatomical " + quoted(dir_ / "A/missing.png") +
                             " --functional " + quoted(dir_ / "B/x.png") + " --output " + quoted(dir_ / "out.png"));
  EXPECT_EQ(missing.status, 1) << missing.err;
  EXPECT_TRUE(contains(missing.err, "efcnet: error: ")) << missing.err;
  EXPECT_TRUE(contains(missing.err, "missing.png")) << missing.err;

  // CLI::RuntimeError(1) for an unpaired file: its type_info exists in both the plugin and the
  // executable; only if they match does main's CLI::ParseError handler exit silently with 1
  // (otherwise the std::exception handler would print "efcnet: error: ...").
  fs::copy_file(dir_ / "A/x.png", dir_ / "A/unpaired.png");
  const Result unpaired = run("fuse --method y-average --anatomical-dir " + quoted(dir_ / "A") + " --functional-dir " +
                              quoted(dir_ / "B") + " --output-dir " + quoted(dir_ / "out"));
  EXPECT_EQ(unpaired.status, 1) << unpaired.err;
  EXPECT_TRUE(contains(unpaired.err, "unpaired")) << unpaired.err;
  EXPECT_FALSE(contains(unpaired.err, "efcnet: error")) << unpaired.err;
  EXPECT_TRUE(fs::exists(dir_ / "out/x.png"));
}

TEST_F(PluginCli, FindsThePluginInTheInstalledLayoutAndNamesBothPlacesWhenMissing) {
  const fs::path prefix = dir_.path() / "prefix";
  fs::create_directories(prefix / "bin");
  fs::create_directories(prefix / "lib" / "efcnet");
  fs::copy_file(kBinary, prefix / "bin" / "efcnet");
  const Result missing = run_shell(quoted((prefix / "bin" / "efcnet").string()) + " fuse --help");
  EXPECT_NE(missing.status, 0);
  EXPECT_TRUE(contains(missing.err, (prefix / "bin" / "libefcnet_commands.so").string())) << missing.err;
  EXPECT_TRUE(contains(missing.err, (prefix / "lib" / "efcnet" / "libefcnet_commands.so").string())) << missing.err;

  fs::copy_file(kPlugin, prefix / "lib" / "efcnet" / "libefcnet_commands.so");
  const Result installed = run_shell(quoted((prefix / "bin" / "efcnet").string()) + " fuse --help");
  EXPECT_EQ(installed.status, 0) << installed.err;
  EXPECT_TRUE(contains(installed.out, "--anatomical-dir")) << installed.out;
}

}  // namespace

// main() chooses OpenBLAS's kernels before it loads the plugin (and with it LibTorch and OpenBLAS),
// so the LibTorch commands run with them: what OpenBLAS reports in `efcnet bench` is that choice.
TEST_F(PluginCli, LibTorchCommandsRunWithTheBlasKernelsChosenForThisCpu) {
  const Result r = run("bench --size 32 --pairs 1 --warmup 0 --no-eager --threads 1 --format json", "env -u OPENBLAS_CORETYPE");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto reported = nlohmann::json::parse(r.out)["blas_kernels"];
  if (reported.is_null()) GTEST_SKIP() << "the system BLAS is not OpenBLAS";
  unsetenv("OPENBLAS_CORETYPE");
  const std::string expected = efcnet::select_blas_kernels();
  if (expected.empty()) GTEST_SKIP() << "no AVX2 on this CPU: OpenBLAS keeps its own choice (" << reported << ")";
  EXPECT_EQ(reported.get<std::string>(), expected);
}

TEST_F(PluginCli, AnOpenBlasCoreTypeGivenByTheUserIsKept) {
  const Result r = run("bench --size 32 --pairs 1 --warmup 0 --no-eager --threads 1 --format json",
                       "OPENBLAS_CORETYPE=Prescott");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto reported = nlohmann::json::parse(r.out)["blas_kernels"];
  if (reported.is_null()) GTEST_SKIP() << "the system BLAS is not OpenBLAS";
  EXPECT_EQ(reported.get<std::string>(), "Prescott");
}

// The bench report says which of oneDNN's own kernels the optimised path ran, and the switches
// that turn them off do.
TEST_F(PluginCli, BenchReportsTheOneDnnKernelsInUse) {
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
  if (run_on["dnnl_linear_layers"].get<int>() == 0) GTEST_SKIP() << "this build has no oneDNN 2.x (libdnnl-dev)";
  EXPECT_EQ(run_on["dnnl_linear_layers"].get<int>(), 24);
  __builtin_cpu_init();
  EXPECT_EQ(run_on["winograd_layers"].get<int>(), __builtin_cpu_supports("avx512f") ? 18 : 0);
}
