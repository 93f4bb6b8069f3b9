// Each `efcnet` subcommand lives in its own file and registers itself on the app here.
#pragma once

#include <CLI/CLI.hpp>

namespace efcnet::cli {

void add_fuse_command(CLI::App& app);
void add_evaluate_command(CLI::App& app);
void add_phantom_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_train_seem_command(CLI::App& app);
void add_export_weights_command(CLI::App& app);

}  // namespace efcnet::cli
