// The LibTorch-free half of runtime.h (set_threads is in src/model/inference.cpp).
#include "efcnet/runtime.h"
#include "efcnet/error.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace efcnet {
namespace {

constexpr const char* kCoreTypeVariable = "OPENBLAS_CORETYPE";

CpuFeatures probe_cpu_features() {
  CpuFeatures features;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  features.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  features.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                    __builtin_cpu_supports("avx512vl");
  features.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
  // GCC 12's __builtin_cpu_supports does not know AMX: CPUID leaf 7, EDX bit 22 (AMX-BF16).
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    features.amx = (edx >> 22) & 1u;
  }
#endif
  return features;
}

const char* blas_kernels_for_this_cpu() {
  const CpuFeatures& cpu = cpu_features();
  if (cpu.avx512) return "SkylakeX";
  if (cpu.avx2_fma) return "Haswell";
  return nullptr;
}

bool is_set(const char* value) { return value != nullptr && *value != '\0'; }

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = probe_cpu_features();
  return features;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

int core_count() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

int thread_count(int requested) { return requested > 0 ? requested : core_count(); }

int64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::istringstream fields(line);
    std::string key;
    int64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") {
      // Freed blocks this process's heap keeps count as available to it.
      return kib * 1024 + static_cast<int64_t>(mallinfo2().fordblks);
    }
  }
  return -1;
}

std::string gibibytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (int64_t{1} << 30));
  return text;
}

namespace {
std::atomic<bool> every_freed_block_kept{false};
}  // namespace

bool heap_keeps_every_freed_block() { return every_freed_block_kept; }

void keep_freed_memory_for_reuse(std::size_t largest_block) {
  every_freed_block_kept = largest_block == kEveryBlock;
  if (largest_block == kEveryBlock) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, -1);  // never give the heap's top back (the value is unsigned: max)
    return;
  }
  constexpr std::size_t kIntMax = static_cast<std::size_t>(std::numeric_limits<int>::max());
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(std::min(largest_block, kIntMax)));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(std::min(2 * largest_block, kIntMax)));
}

std::string select_blas_kernels() {
  if (const char* current = std::getenv(kCoreTypeVariable); is_set(current)) return current;
  const char* chosen = blas_kernels_for_this_cpu();
  if (chosen == nullptr || setenv(kCoreTypeVariable, chosen, 1) != 0) return {};
  return chosen;
}

void reexec_with_blas_kernels(char** argv) {
  if (is_set(std::getenv(kCoreTypeVariable)) || select_blas_kernels().empty()) return;
  execv("/proc/self/exe", argv);
}

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string arg; std::getline(in, arg, '\0');) args.push_back(arg);
  if (args.empty()) throw Error("cannot read this process's command line from /proc/self/cmdline");
  return args;
}

std::string run_capturing_stdout(const std::string& executable, const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw Error(executable + ": cannot create a pipe: " + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw Error(executable + ": cannot start: " + std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::execv(executable.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw Error(executable + " " + (args.size() > 1 ? args[1] : "") + " failed (its message is above)");
  }
  return text;
}

}  // namespace efcnet
