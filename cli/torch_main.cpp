// efcnet-torch: the LibTorch commands of `efcnet` (commands.h). The `efcnet` executable runs it with
// its own arguments for these commands; run directly, it behaves the same. A build without image
// I/O (EFCNET_IMAGE_IO=OFF) has only `train` (from packed pairs), `identity-seem` and `export-weights`.

#include <CLI/CLI.hpp>

#include "commands.h"
#include "efcnet/runtime.h"

namespace efcnet::cli {

void use_fusion_runtime(int threads, const std::string& device) {
  set_threads(threads);
  if (device == "cpu") keep_freed_memory_for_reuse();
}

}  // namespace efcnet::cli

int main(int argc, char** argv) {
  // `efcnet` chose OpenBLAS's kernels before running this; run directly, choose them here (and
  // start again, because LibTorch has loaded OpenBLAS before main).
  efcnet::reexec_with_blas_kernels(argv);

  CLI::App app{efcnet::cli::kAppDescription, "efcnet"};
#if EFCNET_IMAGE_IO
  efcnet::cli::add_fuse_command(app);
#endif
  efcnet::cli::add_train_command(app);
#if EFCNET_IMAGE_IO
  efcnet::cli::add_train_seem_command(app);
  efcnet::cli::add_pack_pairs_command(app);
#endif
  efcnet::cli::add_identity_seem_command(app);
  efcnet::cli::add_export_weights_command(app);
#if EFCNET_IMAGE_IO
  efcnet::cli::add_bench_command(app);
  efcnet::cli::add_bench_volume_command(app);
  efcnet::cli::add_compare_command(app);
#endif
  return efcnet::cli::run_app(app, argc, argv);
}
