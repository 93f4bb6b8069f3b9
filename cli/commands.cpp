#include "commands.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <stdexcept>

#if EFCNET_IMAGE_IO
#include "efcnet/volume.h"
#endif

namespace efcnet::cli {

bool is_torch_command(std::string_view name) {
  for (const CommandSummary& command : kTorchCommands) {
    if (name == command.name) return true;
  }
  return false;
}

CLI::App* add_torch_subcommand(CLI::App& app, std::string_view name) {
  for (const CommandSummary& command : kTorchCommands) {
    if (name == command.name) return app.add_subcommand(command.name, command.description);
  }
  throw std::logic_error("efcnet: no command named " + std::string(name) + " in kTorchCommands");
}

std::string existing_output_message(const std::string& path) {
  return path + ": already exists (pass --overwrite to replace it)";
}

void refuse_existing_output(const std::string& path, bool overwrite) {
  std::error_code ec;
  if (!overwrite && std::filesystem::exists(std::filesystem::symlink_status(path, ec))) {
    throw std::runtime_error(existing_output_message(path));
  }
}

int report_error(const char* message) {
  std::fprintf(stderr, "efcnet: error: %s\n", message);
  return 1;
}

int run_app(CLI::App& app, int argc, char** argv) {
#if EFCNET_IMAGE_IO
  // ITK's warnings are several lines each; the commands report problems in one line themselves.
  show_volume_library_warnings(false);
#endif
  app.require_subcommand(1);
  app.set_version_flag("--version", kVersion);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    return report_error(e.what());
  }
  return 0;
}

}  // namespace efcnet::cli
