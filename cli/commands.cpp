#include "commands.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

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

OptionNamer flags_named(std::initializer_list<std::pair<std::string_view, std::string_view>> renamed) {
  std::vector<std::pair<std::string, std::string>> exceptions(renamed.begin(), renamed.end());
  return [exceptions](std::string_view field) {
    for (const auto& [name, flag] : exceptions) {
      if (name == field) return flag;
    }
    std::string flag = "--" + std::string(field.substr(field.rfind('.') + 1));
    std::replace(flag.begin(), flag.end(), '_', '-');
    return flag;
  };
}

void add_model_options(CLI::App* cmd, ModelChoice& choice) {
  cmd->add_option("--model", choice.model,
                  "A shipped model by name: its network and SEEM (default: \"default\"; `efcnet models` lists them)");
  cmd->add_option("--weights", choice.weights,
                  "Instead of --model: the fusion network's weights (.pth state dict); needs --seem-weights");
  cmd->add_option("--seem-weights", choice.seem_weights,
                  "Instead of --model: the weights of the SEEM that network was trained with; needs --weights");
}

void add_models_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("models", "List the shipped models, one line each: name and what it is");
  cmd->footer(R"(A model is a fusion network and the SEEM it was trained with: `efcnet fuse --model NAME`.
Shipped models are efcnet_NAME.pth + seem_NAME.pth, listed with their description in models.tsv
(NAME, a tab, one line), in $EFCNET_MODELS_DIR (your own models, searched first),
<exe dir>/../share/efcnet/models, <exe dir>/../models or the source tree's models/; a listed
model whose files are missing is not shown. models/README.md is the shipped models' card.)");
  cmd->callback([] {
    const auto models = shipped_models();
    if (models.empty()) throw std::runtime_error("no shipped models found (models.tsv with its .pth files)");
    std::size_t width = 0;
    for (const auto& m : models) width = std::max(width, m.name.size());
    for (const auto& m : models)
      std::printf("%-*s  %s\n", static_cast<int>(width), m.name.c_str(), m.description.c_str());
  });
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
