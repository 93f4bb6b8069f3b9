#include "efcnet/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace efcnet {
namespace {

std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

constexpr int kBarWidth = 30;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
constexpr auto kPlainLineInterval = std::chrono::seconds(10);

}  // namespace

ProgressBar::ProgressBar(std::size_t total, std::FILE* out) : ProgressBar(total, out, ::isatty(::fileno(out)) == 1) {}

ProgressBar::ProgressBar(std::size_t total, std::FILE* out, bool terminal)
    : out_(out), terminal_(terminal), total_(total) {
  std::lock_guard<std::mutex> lock(mutex_);
  draw(true);
}

std::string ProgressBar::status() const {
  const double fraction = total_ == 0 ? 1.0 : static_cast<double>(done_) / total_;
  std::string text = std::to_string(done_) + "/" + std::to_string(total_) + "  " +
                     std::to_string(static_cast<int>(fraction * 100)) + "%";
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  if (done_ > 0 && done_ < total_) {
    text += "  ETA " + format_duration(elapsed / done_ * (total_ - done_));
  } else if (done_ == total_) {
    text += "  in " + format_duration(elapsed);
  }
  return text;
}

void ProgressBar::draw(bool force) {
  const auto now = Clock::now();
  if (terminal_) {
    if (!force && now - last_draw_ < kRedrawInterval) return;
    const int filled = total_ == 0 ? kBarWidth : static_cast<int>(kBarWidth * done_ / total_);
    std::fprintf(out_, "\r\033[K[%s%s]  %s", std::string(filled, '#').c_str(),
                 std::string(kBarWidth - filled, '.').c_str(), status().c_str());
    bar_visible_ = true;
  } else {
    const std::size_t decile = total_ == 0 ? 10 : done_ * 10 / total_;
    const bool new_decile = decile > last_reported_decile_;
    if (!force && !new_decile && now - last_draw_ < kPlainLineInterval) return;
    if (done_ == 0) return;  // nothing to say before the first item
    std::fprintf(out_, "progress: %s\n", status().c_str());
    last_reported_decile_ = decile;
  }
  last_draw_ = now;
  std::fflush(out_);
}

void ProgressBar::advance() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (done_ == total_) return;
  ++done_;
  draw(done_ == total_);
}

void ProgressBar::message(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (bar_visible_) std::fputs("\r\033[K", out_);
  std::fprintf(out_, "%s\n", line.c_str());
  bar_visible_ = false;
  if (terminal_ && !finished_) draw(true);
  std::fflush(out_);
}

void ProgressBar::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (terminal_) {
    if (done_ != total_) draw(true);  // the last advance() already drew the complete bar
    std::fputc('\n', out_);
    bar_visible_ = false;
  }
  std::fflush(out_);
}

}  // namespace efcnet
