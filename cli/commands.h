// Each `efcnet` subcommand lives in its own file and registers itself on the app here.
//
// Two sides (see CMakeLists.txt): the `efcnet` executable does not link LibTorch, so that commands
// that need none start in milliseconds instead of ~0.4 s.
//   executable (cli/main.cpp adds them): evaluate, phantom. Only LibTorch-free code; listed in
//     EFCNET_CLI_EXE_SOURCES and in main.cpp's kExecutableCommands.
//   plugin libefcnet_commands.so (cli/plugin_entry.cpp adds them): fuse, train, train-seem,
//     export-weights, and any new cli/*.cpp by default. main.cpp loads it for every other command
//     line. Register new LibTorch commands in efcnet_register_plugin_commands().
#pragma once

#include <CLI/CLI.hpp>

#define EFCNET_CLI_STRINGIFY_(x) #x
#define EFCNET_CLI_STRINGIFY(x) EFCNET_CLI_STRINGIFY_(x)

namespace efcnet::cli {

// Executable side.
void add_evaluate_command(CLI::App& app);
void add_phantom_command(CLI::App& app);

// Plugin side.
void add_fuse_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_train_seem_command(CLI::App& app);
void add_export_weights_command(CLI::App& app);
void add_bench_command(CLI::App& app);

// The executable and the plugin share CLI::App objects, so both must be compiled from the same
// CLI11 headers by the same compiler; a plugin left over from another build refuses to register.
inline constexpr const char* kPluginAbiTag =
    "CLI11 " CLI11_VERSION ", compiler " __VERSION__ ", cxx11abi " EFCNET_CLI_STRINGIFY(_GLIBCXX_USE_CXX11_ABI);

}  // namespace efcnet::cli

// The plugin's one exported function (dlsym'd by name by main.cpp). Registers the LibTorch
// subcommands on `app` and returns nullptr, or, when `abi_tag` differs from the plugin's
// kPluginAbiTag, registers nothing and returns the plugin's tag.
// Passing CLI::App& across is sound: CLI11 is header-only and both sides compile the same headers
// with the same flags, so they agree on its layout; exceptions and RTTI work across too, because
// both use the same libstdc++, which compares type_info by name.
extern "C" const char* efcnet_register_plugin_commands(CLI::App& app, const char* abi_tag);
