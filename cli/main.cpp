// efcnet: multimodal medical image fusion (EFCNet) from the command line.
//
// This executable does not link LibTorch (see commands.h): the LibTorch subcommands come from
// libefcnet_commands.so, loaded only when the command line may need them.
#include <dlfcn.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "efcnet/blas.h"

namespace {

namespace fs = std::filesystem;

constexpr const char* kPluginFile = "libefcnet_commands.so";
constexpr std::array<std::string_view, 2> kExecutableCommands{"evaluate", "phantom"};

// The plugin is skipped only when the subcommand is one of this executable's own, or for a bare
// --version. Everything else (another subcommand, --help, no subcommand, an unknown option) gets
// the full app, so that help and error messages list every subcommand.
bool needs_plugin(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.empty() || arg.front() != '-') {
      for (const std::string_view command : kExecutableCommands) {
        if (arg == command) return false;
      }
      return true;
    }
    if (arg != "--version") return true;
  }
  return argc <= 1;
}

// Loads the plugin and registers its subcommands on `app`. Returns an empty string, or the
// one-line reason it could not. $EFCNET_PLUGIN names the file; otherwise it is looked for beside
// this executable (build tree) and in <exe dir>/../lib/efcnet (installed).
std::string load_plugin(CLI::App& app) {
  fs::path path;
  if (const char* env = std::getenv("EFCNET_PLUGIN"); env != nullptr && *env != '\0') {
    path = env;
  } else {
    std::error_code ec;
    const fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
    if (ec) return "cannot locate " + std::string(kPluginFile) + ": /proc/self/exe: " + ec.message();
    const fs::path beside = exe_dir / kPluginFile;
    const fs::path installed = (exe_dir / ".." / "lib" / "efcnet" / kPluginFile).lexically_normal();
    if (fs::exists(beside, ec)) {
      path = beside;
    } else if (fs::exists(installed, ec)) {
      path = installed;
    } else {
      return "cannot find " + beside.string() + " or " + installed.string() +
             " (the LibTorch subcommands; set EFCNET_PLUGIN to its path)";
    }
  }
  // Never dlclose()d: the registered callbacks are its code. RTLD_NOW reports a missing symbol
  // here, not in the middle of a command.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return "cannot load " + path.string() + ": " + dlerror();
  using RegisterFn = const char* (*)(CLI::App&, const char*);
  auto* register_commands = reinterpret_cast<RegisterFn>(dlsym(handle, "efcnet_register_plugin_commands"));
  if (register_commands == nullptr) return "cannot load " + path.string() + ": " + dlerror();
  if (const char* plugin_tag = register_commands(app, efcnet::cli::kPluginAbiTag); plugin_tag != nullptr) {
    return path.string() + " was built with " + plugin_tag + ", this executable with " +
           efcnet::cli::kPluginAbiTag + " (rebuild both)";
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "efcnet - fuse an anatomical image (MRI, CT, phase contrast) with a functional one\n"
      "(SPECT, PET, GFP) into one image that keeps the anatomy's detail and the functional colour."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "efcnet 0.1.0");

  if (needs_plugin(argc, argv)) {
    // OpenCV's dependencies have loaded OpenBLAS already: start again with its kernels chosen
    // (children, e.g. --nproc-per-node ranks, inherit the choice).
    efcnet::reexec_with_blas_kernels(argv);
    if (const std::string problem = load_plugin(app); !problem.empty()) {
      std::fprintf(stderr, "efcnet: error: %s\n", problem.c_str());
      return 1;
    }
  }
  efcnet::cli::add_evaluate_command(app);
  efcnet::cli::add_phantom_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "efcnet: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
