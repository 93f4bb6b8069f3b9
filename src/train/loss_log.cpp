#include "loss_log.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "efcnet/files.h"
#include "efcnet/train.h"

#if EFCNET_IMAGE_IO
#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"
#endif

namespace efcnet {
namespace {

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

void LossLog::restore(int last_epoch) {
  const std::string path = directory_ + "/loss.csv";
  std::ifstream in(path);
  if (!in) return;  // a run resumed without its log starts a new one
  std::string line;
  if (!std::getline(in, line) || line != header()) {
    throw TrainingError(path + ": not a loss log of this kind of training (unexpected header)");
  }
  const size_t columns = term_names_.size() + 3;
  while (std::getline(in, line)) {
    const auto fields = split_csv(line);
    if (fields.size() != columns) continue;  // a torn last line cannot happen with atomic writes, but be lenient
    LossRow row;
    try {
      row.epoch = std::stoi(fields[0]);
      row.step = std::stoi(fields[1]);
      for (size_t i = 0; i < term_names_.size(); ++i) row.terms.push_back(std::stod(fields[2 + i]));
      row.seconds = std::stod(fields.back());
    } catch (const std::exception&) {
      throw TrainingError(path + ": malformed row '" + line + "'");
    }
    if (row.epoch <= last_epoch) rows_.push_back(std::move(row));
  }
}

void LossLog::append(LossRow row) { rows_.push_back(std::move(row)); }

void LossLog::write_csv() const {
  std::string text = header() + "\n";
  char buffer[64];
  for (const auto& row : rows_) {
    text += std::to_string(row.epoch) + "," + std::to_string(row.step);
    for (double v : row.terms) {
      std::snprintf(buffer, sizeof buffer, ",%.8g", v);
      text += buffer;
    }
    std::snprintf(buffer, sizeof buffer, ",%.3f\n", row.seconds);
    text += buffer;
  }
  write_file_atomic(directory_ + "/loss.csv", text);
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
