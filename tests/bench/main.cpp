// The main() of every benchmark program: Google Benchmark's, after choosing OpenBLAS's kernels.
#include <benchmark/benchmark.h>

#include "efcnet/runtime.h"

int main(int argc, char** argv) {
  // OpenBLAS is loaded before main (LibTorch and OpenCV link it): start again with its kernels chosen.
  efcnet::reexec_with_blas_kernels(argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
