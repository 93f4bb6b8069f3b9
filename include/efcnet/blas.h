// Which kernels the system BLAS runs LibTorch's linear layers with (LibTorch-free).
#pragma once

#include <string>

namespace efcnet {

// OpenBLAS picks its kernels from the CPU model when it is loaded, and a release older than the
// CPU falls back to its generic SSE3 ("Prescott") kernels: Debian 12's OpenBLAS 0.3.21 does so on
// Emerald Rapids Xeons (family 6, model 207), where every Linear layer then runs ~5x slower.
// Unless OPENBLAS_CORETYPE is already set, this sets it from the instruction sets the CPU reports
// (SkylakeX with AVX-512, Haswell with AVX2 + FMA; otherwise OpenBLAS's own choice stands). It
// only counts when called before OpenBLAS is loaded, i.e. before LibTorch is.
// Returns the value in effect ("" when the choice is left to OpenBLAS).
std::string select_blas_kernels();

// For executables that load OpenBLAS before main (LibTorch and OpenCV link it): when select_blas_kernels()
// changed the environment, runs this program again with it (execv of /proc/self/exe), so that
// OpenBLAS starts with those kernels. Returns only if nothing changed or the exec failed.
void reexec_with_blas_kernels(char** argv);

}  // namespace efcnet
