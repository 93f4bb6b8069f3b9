// efcnet: multimodal medical image fusion (EFCNet) from the command line.
//
// This executable does not link LibTorch (commands.h): it runs evaluate, phantom, bench-register, models, --help and
// --version itself, and hands every command line that names a LibTorch command to efcnet-torch.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "efcnet/runtime.h"

namespace {

namespace fs = std::filesystem;

constexpr const char* kTorchExecutable = "efcnet-torch";

// The LibTorch command a command line names: its first argument that is not an option (the
// subcommand; options of this executable take no values), or empty.
std::string_view torch_command_of(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!arg.empty() && arg.front() != '-') return efcnet::cli::is_torch_command(arg) ? arg : std::string_view{};
  }
  return {};
}

// efcnet-torch: $EFCNET_TORCH_EXE if set, else beside this executable (build tree and installed bin/).
// Empty with `problem` set when it cannot be found.
fs::path find_torch_executable(std::string& problem) {
  if (const char* env = std::getenv("EFCNET_TORCH_EXE"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    problem = "cannot locate " + std::string(kTorchExecutable) + ": /proc/self/exe: " + ec.message();
    return {};
  }
  fs::path beside = exe.parent_path() / kTorchExecutable;
  if (!fs::exists(beside, ec)) {
    problem = "cannot find " + beside.string() + " (the LibTorch commands; set EFCNET_TORCH_EXE to its path)";
    return {};
  }
  return beside;
}

// Runs efcnet-torch in place of this process with the same arguments; returns only on failure.
int run_torch_command(char** argv) {
  std::string problem;
  const fs::path torch = find_torch_executable(problem);
  if (torch.empty()) return efcnet::cli::report_error(problem.c_str());
  // OpenBLAS picks its kernels when it is loaded: choose them before LibTorch loads it.
  efcnet::select_blas_kernels();
  argv[0] = const_cast<char*>(torch.c_str());
  ::execv(torch.c_str(), argv);
  const std::string message = "cannot run " + torch.string() + ": " + std::strerror(errno);
  return efcnet::cli::report_error(message.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (!torch_command_of(argc, argv).empty()) return run_torch_command(argv);

  CLI::App app{efcnet::cli::kAppDescription, "efcnet"};
  // Listed in --help; a command line naming one never gets here.
  for (const efcnet::cli::CommandSummary& command : efcnet::cli::kTorchCommands) {
    app.add_subcommand(command.name, command.description);
  }
  efcnet::cli::add_evaluate_command(app);
  efcnet::cli::add_phantom_command(app);
  efcnet::cli::add_bench_register_command(app);
  efcnet::cli::add_models_command(app);
  return efcnet::cli::run_app(app, argc, argv);
}
