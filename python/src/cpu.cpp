// efcnet._cpu: what the package needs before LibTorch (and with it OpenBLAS) is loaded. Links
// neither: only the library's OpenBLAS kernel choice (src/io/runtime.cpp, LibTorch-free).
#include <pybind11/pybind11.h>

#include "efcnet/runtime.h"

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "The OpenBLAS kernel choice, made before efcnet._efcnet loads OpenBLAS.";
  m.def("select_blas_kernels", &efcnet::select_blas_kernels,
        "Unless OPENBLAS_CORETYPE is set, sets it from the CPU's instruction sets (SkylakeX with AVX-512,\n"
        "Haswell with AVX2 + FMA). Returns the value in effect, \"\" when the choice is left to OpenBLAS.");
}
