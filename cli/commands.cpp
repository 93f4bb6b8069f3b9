#include "commands.h"

#include <cstdio>
#include <stdexcept>

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

int report_error(const char* message) {
  std::fprintf(stderr, "efcnet: error: %s\n", message);
  return 1;
}

}  // namespace efcnet::cli
