// The training log: loss.csv (one row per optimizer step, appended as one whole line per step, so
// the bytes written grow with the steps, not with their square) and loss.png (the curves, rewritten
// atomically each epoch). A build without image I/O (EFCNET_IMAGE_IO=OFF) writes loss.csv alone.
#pragma once

#include <string>
#include <vector>

namespace efcnet {

struct LossRow {
  int epoch = 0;
  int step = 0;               // global optimizer step, 1-based
  std::vector<double> terms;  // one value per term column
  double seconds = 0.0;       // wall time of the step
};

class LossLog {
 public:
  // Columns: epoch, step, <term_names...>, seconds.
  LossLog(std::string directory, std::vector<std::string> term_names);
  ~LossLog();
  LossLog(const LossLog&) = delete;
  LossLog& operator=(const LossLog&) = delete;

  // Opens loss.csv for appending. last_epoch 0 starts a new log (the header alone). Otherwise (a
  // resume) the rows of epochs <= last_epoch are kept and the file is cut in place after them:
  // rows of a later epoch that no checkpoint holds, and a line torn by a crash, go; a missing file
  // starts a new log. A file that is not a loss.csv with these columns is an error naming it.
  void open(int last_epoch);

  // Keeps the row and appends it to loss.csv with one write() of the whole line.
  void append(LossRow row);
  // loss.csv on disk (fsync): before a checkpoint, so the log holds every step the checkpoint does.
  void sync() const;
  void write_plot() const;

  // Mean of the last term (the total) over the rows of `epoch`.
  double epoch_mean_total(int epoch) const;

 private:
  std::string header() const;
  std::string path() const;
  void write_line(const std::string& line);
  std::string directory_;
  std::vector<std::string> term_names_;
  std::vector<LossRow> rows_;
  int fd_ = -1;
};

}  // namespace efcnet
