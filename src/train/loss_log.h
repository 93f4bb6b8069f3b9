// The training log: loss.csv (one row per optimizer step) and loss.png (the curves), both
// rewritten atomically as training goes, so a killed run leaves the last complete version. A build
// without image I/O (EFCNET_IMAGE_IO=OFF) writes loss.csv alone.
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

  // Keeps the rows of epochs <= last_epoch from an existing loss.csv (for --resume). A file that
  // is not a loss.csv with these columns is an error naming it.
  void restore(int last_epoch);

  void append(LossRow row);
  void write_csv() const;
  void write_plot() const;

  // Mean of the last term (the total) over the rows of `epoch`.
  double epoch_mean_total(int epoch) const;

 private:
  std::string header() const;
  std::string directory_;
  std::vector<std::string> term_names_;
  std::vector<LossRow> rows_;
};

}  // namespace efcnet
