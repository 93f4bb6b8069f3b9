// What the benchmarks share (internal): stopwatch seconds, a scratch directory, and the load
// average their reports carry (timings on a busy machine say so).
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "efcnet/files.h"

namespace efcnet {

using BenchClock = std::chrono::steady_clock;

inline double seconds_since(BenchClock::time_point start) {
  return std::chrono::duration<double>(BenchClock::now() - start).count();
}

// A fresh directory named like <tmp>/<prefix>-XXXXXX, removed with its contents afterwards.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw IoError("cannot create a directory like " + pattern);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The 1, 5 and 15 minute load averages as a JSON array; null where /proc/loadavg is unreadable.
template <class Json>
Json load_average() {
  std::ifstream in("/proc/loadavg");
  double one = 0, five = 0, fifteen = 0;
  if (in >> one >> five >> fifteen) return {one, five, fifteen};
  return nullptr;
}

}  // namespace efcnet
