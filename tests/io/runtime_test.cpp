#include "efcnet/runtime.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace {

TEST(Threads, ZeroAndNegativeMeanEveryCore) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_EQ(efcnet::core_count(), cores);
  EXPECT_EQ(efcnet::thread_count(0), cores);
  EXPECT_EQ(efcnet::thread_count(-3), cores);
}

TEST(Threads, PositiveRequestStands) {
  EXPECT_EQ(efcnet::thread_count(1), 1);
  EXPECT_EQ(efcnet::thread_count(7), 7);
}

// The kernel's own list of the first CPU's flags.
std::string cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) return " " + line.substr(line.find(':') + 1) + " ";
  }
  return {};
}

TEST(CpuFeatures, AgreeWithTheKernelsFlags) {
  const std::string flags = cpuinfo_flags();
  if (flags.empty()) GTEST_SKIP() << "/proc/cpuinfo has no flags line on this system";
  const auto has = [&](const char* flag) { return flags.find(std::string(" ") + flag + " ") != std::string::npos; };
  const efcnet::CpuFeatures& cpu = efcnet::cpu_features();
  EXPECT_EQ(cpu.avx2_fma, has("avx2") && has("fma"));
  EXPECT_EQ(cpu.avx512, has("avx512f") && has("avx512cd") && has("avx512bw") && has("avx512dq") && has("avx512vl"));
  EXPECT_EQ(cpu.avx512_bf16, has("avx512_bf16"));
  EXPECT_EQ(cpu.amx, has("amx_bf16"));
}

}  // namespace
