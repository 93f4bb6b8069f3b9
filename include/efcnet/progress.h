// A small progress reporter for long batches (no progress-bar library is packaged for Debian).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string>

namespace efcnet {

// On a terminal: one bar redrawn in place, "[#####.....]  12/40  30%  ETA 1:05".
// Otherwise (a log file, a pipe): a plain line about every 10% of the work or every 10 seconds.
// Thread-safe, so a reader or writer thread may report too.
class ProgressBar {
 public:
  explicit ProgressBar(std::size_t total, std::FILE* out = stderr);
  ProgressBar(std::size_t total, std::FILE* out, bool terminal);  // forces the mode (tests)
  ~ProgressBar() { finish(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // One more item done (successfully or not).
  void advance();
  // Prints a line of its own (an error, a warning) without tearing the bar.
  void message(const std::string& line);
  // Ends the bar's line on a terminal; idempotent.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  void draw(bool force);  // callers hold mutex_
  std::string status() const;

  std::mutex mutex_;
  std::FILE* out_;
  bool terminal_;
  std::size_t total_;
  std::size_t done_ = 0;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
  std::size_t last_reported_decile_ = 0;
  bool bar_visible_ = false;
  bool finished_ = false;
};

}  // namespace efcnet
