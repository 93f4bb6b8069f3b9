// Process-wide settings: threads, the heap's policy, the BLAS kernels, and the CPU's features.
//
// The library never changes a process-wide setting by itself: constructing a Fuser or training
// leaves threads, malloc and the environment as the program set them. A program opts in by calling
// these, as the `efcnet` command does; a Python process or another host program keeps its own.
// LibTorch-free declarations; set_threads() is defined in the LibTorch part (libefcnet).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace efcnet {

inline constexpr std::size_t kEveryBlock = std::numeric_limits<std::size_t>::max();

// ---- CPU features (probed once, cached) ----

struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 and FMA: OpenBLAS's Haswell kernels
  bool avx512 = false;       // AVX-512 F, CD, BW, DQ and VL: oneDNN's Winograd and bfloat16
                             // convolutions, OpenBLAS's SkylakeX kernels
  bool avx512_bf16 = false;  // native bfloat16 dot products (AVX512_BF16)
  bool amx = false;          // AMX tiles (AMX-BF16), Intel Sapphire Rapids and later
};
const CpuFeatures& cpu_features();

// The CPU's model name as /proc/cpuinfo gives it ("unknown" where it does not), for reports.
std::string cpu_model();

// ---- threads ----

// Cores the system reports (std::thread::hardware_concurrency), at least 1.
int core_count();

// A thread-count option resolved: `requested` when positive, else core_count().
int thread_count(int requested);

// Sets LibTorch's intra-op threads to thread_count(threads). LibTorch's own default counts
// physical cores through cpuinfo, which finds one on some 2-vCPU machines.
void set_threads(int threads);

// ---- memory ----

// Memory this process can still use, in bytes: /proc/meminfo's MemAvailable plus the freed
// blocks its own heap holds for reuse. -1 where /proc/meminfo cannot be read.
int64_t available_memory_bytes();

// "1.93 GiB", for messages.
std::string gibibytes(int64_t bytes);

// ---- heap ----

// glibc malloc: blocks come from the heap and freed memory is kept for reuse instead of being
// unmapped and page-faulted in anew on the next forward pass (a 256² pair allocates several GiB of
// short-lived tensors). By default every block, and memory is returned to the OS at exit only;
// with `largest_block`, blocks up to that size, and a heap top over twice it is given back.
void keep_freed_memory_for_reuse(std::size_t largest_block = kEveryBlock);

// Whether this process called keep_freed_memory_for_reuse() for every block (what memory
// estimates that depend on the heap's policy, such as a training step's, need to know).
bool heap_keeps_every_freed_block();

// ---- BLAS kernels ----

// OpenBLAS picks its kernels from the CPU model when it is loaded, and a release older than the
// CPU falls back to its generic SSE3 ("Prescott") kernels: Debian 12's OpenBLAS 0.3.21 does so on
// Emerald Rapids Xeons, where every Linear layer then runs ~5x slower. Unless OPENBLAS_CORETYPE is
// already set, this sets it from cpu_features() (SkylakeX with AVX-512, Haswell with AVX2 + FMA;
// otherwise OpenBLAS's own choice stands). It only counts when called before OpenBLAS is loaded,
// i.e. before LibTorch is. Returns the value in effect ("" when the choice is left to OpenBLAS).
std::string select_blas_kernels();

// For executables that load OpenBLAS before main (LibTorch and OpenCV link it): when
// select_blas_kernels() changed the environment, runs this program again with it (execv of
// /proc/self/exe), so that OpenBLAS starts with those kernels. Returns only if nothing changed or
// the exec failed.
void reexec_with_blas_kernels(char** argv);

// ---- child processes ----

// This process's command line as the kernel keeps it (/proc/self/cmdline), argv[0] included.
// Throws Error when it cannot be read.
std::vector<std::string> own_command_line();

// Runs `executable` with `args` (its argv, argv[0] included) with this process's stderr, waits
// for it and returns what it wrote to stdout: e.g. a benchmark's size measured in a process of its
// own. Throws Error when it cannot start or does not exit with 0.
std::string run_capturing_stdout(const std::string& executable, const std::vector<std::string>& args);

}  // namespace efcnet
