// efcnet: multimodal medical image fusion (EFCNet) from the command line.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "efcnet - fuse an anatomical image (MRI, CT, phase contrast) with a functional one\n"
      "(SPECT, PET, GFP) into one image that keeps the anatomy's detail and the functional colour."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "efcnet 0.1.0");

  efcnet::cli::add_fuse_command(app);
  efcnet::cli::add_evaluate_command(app);
  efcnet::cli::add_phantom_command(app);
  efcnet::cli::add_train_command(app);
  efcnet::cli::add_train_seem_command(app);
  efcnet::cli::add_export_weights_command(app);

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
