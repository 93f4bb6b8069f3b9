// Small helpers that several commands share: stopwatch seconds (fuse, bench, bench-volume), files
// replaced together (compare's report), and for the benchmarks a scratch directory and the load
// average their reports carry (timings on a busy machine say so).
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "efcnet/files.h"

namespace efcnet::cli {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Replaces several files together: each (path, bytes) is first written in full (write_file_atomic)
// under a hidden name beside its target, and only when all are there are they renamed into place.
// A failure before that (a full disk, say) removes the hidden files and leaves every old file.
inline void replace_together(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<std::string> staged;
  try {
    for (const auto& [path, bytes] : files) {
      const std::filesystem::path target(path);
      staged.push_back(
          (target.parent_path() / ("." + target.filename().string() + ".staged-" + std::to_string(::getpid())))
              .string());
      write_file_atomic(staged.back(), bytes);
    }
  } catch (...) {
    std::error_code ec;
    for (const std::string& path : staged) std::filesystem::remove(path, ec);
    throw;
  }
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::error_code ec;
    std::filesystem::rename(staged[i], files[i].first, ec);
    if (ec) {
      std::error_code ignored;
      for (std::size_t j = i; j < files.size(); ++j) std::filesystem::remove(staged[j], ignored);
      throw IoError(files[i].first + ": cannot rename into place: " + ec.message());
    }
  }
}

// A fresh directory named like <tmp>/<prefix>-XXXXXX, removed with its contents afterwards.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a directory like " + pattern);
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

}  // namespace efcnet::cli
