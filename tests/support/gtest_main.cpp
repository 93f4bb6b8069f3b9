// The main() of every test program: GoogleTest's, after choosing OpenBLAS's kernels, so that the
// suite's Linear layers run as fast as the efcnet command's (efcnet/runtime.h).
#include <gtest/gtest.h>

#include "efcnet/runtime.h"

int main(int argc, char** argv) {
  efcnet::reexec_with_blas_kernels(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
