#include "loss_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "efcnet/files.h"
#include "efcnet/train.h"

#if EFCNET_IMAGE_IO
#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"
#endif

namespace efcnet {
namespace {

std::string row_line(const LossRow& row) {
  char buffer[64];
  std::string line = std::to_string(row.epoch) + "," + std::to_string(row.step);
  for (double v : row.terms) {
    std::snprintf(buffer, sizeof buffer, ",%.8g", v);
    line += buffer;
  }
  std::snprintf(buffer, sizeof buffer, ",%.3f\n", row.seconds);
  return line + buffer;
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream stream(line);
  std::string field;
  while (std::getline(stream, field, ',')) fields.push_back(field);
  return fields;
}

#if EFCNET_IMAGE_IO
// Moving average so that per-step noise does not hide the trend (loss.png's curves).
std::vector<double> smoothed(const std::vector<double>& values, size_t window) {
  std::vector<double> out(values.size());
  double sum = 0.0;
  for (size_t i = 0; i < values.size(); ++i) {
    sum += values[i];
    if (i >= window) sum -= values[i - window];
    out[i] = sum / static_cast<double>(std::min(i + 1, window));
  }
  return out;
}
#endif

}  // namespace

LossLog::LossLog(std::string directory, std::vector<std::string> term_names)
    : directory_(std::move(directory)), term_names_(std::move(term_names)) {}

std::string LossLog::header() const {
  std::string h = "epoch,step";
  for (const auto& name : term_names_) h += "," + name;
  return h + ",seconds";
}

LossLog::~LossLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::string LossLog::path() const { return directory_ + "/loss.csv"; }

void LossLog::open(int last_epoch) {
  const std::string path = this->path();
  std::string text;
  if (last_epoch > 0) {
    std::ifstream in(path, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // Bytes of `text` to keep: the header and the whole lines of epochs <= last_epoch.
  size_t keep = 0;
  if (!text.empty()) {
    const size_t header_end = text.find('\n');
    if (header_end == std::string::npos || text.compare(0, header_end, header()) != 0) {
      throw TrainingError(path + ": not a loss log of this kind of training (unexpected header)");
    }
    keep = header_end + 1;
    const size_t columns = term_names_.size() + 3;
    for (size_t end; (end = text.find('\n', keep)) != std::string::npos; keep = end + 1) {
      const std::string line = text.substr(keep, end - keep);
      const auto fields = split_csv(line);
      LossRow row;
      try {
        if (fields.size() != columns) throw std::invalid_argument("columns");
        row.epoch = std::stoi(fields[0]);
        row.step = std::stoi(fields[1]);
        for (size_t i = 0; i < term_names_.size(); ++i) row.terms.push_back(std::stod(fields[2 + i]));
        row.seconds = std::stod(fields.back());
      } catch (const std::exception&) {
        throw TrainingError(path + ": malformed row '" + line + "'");
      }
      if (row.epoch > last_epoch) break;
      rows_.push_back(std::move(row));
    }
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd_ < 0) throw TrainingError(path + ": cannot open: " + std::strerror(errno));
  if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0) {
    throw TrainingError(path + ": cannot cut to its checkpointed rows: " + std::strerror(errno));
  }
  if (keep == 0) write_line(header() + "\n");
}

void LossLog::write_line(const std::string& line) {
  // One write() of the whole line; a short write (a full disk) continues where it stopped, and a
  // line a crash tears stays the last one, which open() cuts on resume.
  for (size_t done = 0; done < line.size();) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw TrainingError(path() + ": cannot append: " + std::strerror(n < 0 ? errno : ENOSPC));
    done += static_cast<size_t>(n);
  }
}

void LossLog::append(LossRow row) {
  write_line(row_line(row));
  rows_.push_back(std::move(row));
}

void LossLog::sync() const {
  if (fd_ >= 0 && ::fsync(fd_) != 0) throw TrainingError(path() + ": cannot sync: " + std::strerror(errno));
}

void LossLog::write_plot() const {
#if EFCNET_IMAGE_IO
  const int width = 900, height = 520, left = 70, right = 190, top = 30, bottom = 50;
  cv::Mat canvas(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  const cv::Rect area(left, top, width - left - right, height - top - bottom);
  cv::rectangle(canvas, area, cv::Scalar(0, 0, 0), 1);
  cv::putText(canvas, "training loss (moving average) vs step", {left, top - 10}, cv::FONT_HERSHEY_SIMPLEX, 0.5,
              cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  if (!rows_.empty()) {
    const size_t window = std::max<size_t>(1, rows_.size() / 50);
    std::vector<std::vector<double>> curves;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t t = 0; t < term_names_.size(); ++t) {
      std::vector<double> values;
      for (const auto& row : rows_) values.push_back(row.terms[t]);
      curves.push_back(smoothed(values, window));
      for (double v : curves.back()) {
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
      }
    }
    if (!(hi > lo)) hi = lo + 1.0;
    const double first = rows_.front().step, last = std::max<double>(rows_.back().step, first + 1);
    const auto to_point = [&](double step, double value) {
      return cv::Point(area.x + static_cast<int>((step - first) / (last - first) * (area.width - 1)),
                       area.y + area.height - 1 - static_cast<int>((value - lo) / (hi - lo) * (area.height - 1)));
    };
    const cv::Scalar colours[] = {{200, 80, 0}, {0, 140, 0}, {0, 0, 200}, {160, 0, 160}, {0, 0, 0}, {0, 140, 200}};
    for (size_t t = 0; t < curves.size(); ++t) {
      const auto colour = colours[t % 6];
      std::vector<cv::Point> points;
      for (size_t i = 0; i < rows_.size(); ++i) {
        if (std::isfinite(curves[t][i])) points.push_back(to_point(rows_[i].step, curves[t][i]));
      }
      cv::polylines(canvas, points, false, colour, t + 1 == curves.size() ? 2 : 1, cv::LINE_AA);
      cv::putText(canvas, term_names_[t], {width - right + 10, top + 20 + 22 * static_cast<int>(t)},
                  cv::FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv::LINE_AA);
    }
    char label[64];
    std::snprintf(label, sizeof label, "%.4g", hi);
    cv::putText(canvas, label, {5, top + 10}, cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    std::snprintf(label, sizeof label, "%.4g", lo);
    cv::putText(canvas, label, {5, top + area.height}, cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(0, 0, 0), 1,
                cv::LINE_AA);
    std::snprintf(label, sizeof label, "step %d .. %d", rows_.front().step, rows_.back().step);
    cv::putText(canvas, label, {left, height - 20}, cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(0, 0, 0), 1,
                cv::LINE_AA);
  }
  write_image_atomic(directory_ + "/loss.png", canvas);
#endif
}

double LossLog::epoch_mean_total(int epoch) const {
  double sum = 0.0;
  int count = 0;
  for (const auto& row : rows_) {
    if (row.epoch == epoch) sum += row.terms.back(), ++count;
  }
  return count ? sum / count : 0.0;
}

}  // namespace efcnet
