#include "efcnet/blas.h"

#include <unistd.h>

#include <cstdlib>

namespace efcnet {
namespace {

constexpr const char* kCoreTypeVariable = "OPENBLAS_CORETYPE";

const char* kernels_for_this_cpu() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // OpenBLAS's SkylakeX kernels need AVX-512 F, CD, BW, DQ and VL.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

bool is_set(const char* value) { return value != nullptr && *value != '\0'; }

}  // namespace

std::string select_blas_kernels() {
  if (const char* current = std::getenv(kCoreTypeVariable); is_set(current)) return current;
  const char* chosen = kernels_for_this_cpu();
  if (chosen == nullptr || setenv(kCoreTypeVariable, chosen, 1) != 0) return {};
  return chosen;
}

void reexec_with_blas_kernels(char** argv) {
  if (is_set(std::getenv(kCoreTypeVariable)) || select_blas_kernels().empty()) return;
  execv("/proc/self/exe", argv);
}

}  // namespace efcnet
