// Entry point of libefcnet_commands.so: the LibTorch subcommands, loaded by main.cpp on demand.
#include <cstring>

#include "commands.h"

extern "C" const char* efcnet_register_plugin_commands(CLI::App& app, const char* abi_tag) {
  using namespace efcnet::cli;
  if (abi_tag == nullptr || std::strcmp(abi_tag, kPluginAbiTag) != 0) return kPluginAbiTag;
  add_fuse_command(app);
  add_train_command(app);
  add_train_seem_command(app);
  add_export_weights_command(app);
  add_bench_command(app);
  return nullptr;
}
