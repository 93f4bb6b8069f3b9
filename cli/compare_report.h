// The files a comparison (compare.h) is reported in: scores.csv, scores.json and report.html.
#pragma once

#include <string>

#include "compare.h"

namespace efcnet::cli {

// What the report says about the run besides the scores.
struct ReportContext {
  std::string weights, seem_weights;  // the network's weight files; empty when it did not run
  std::string machine;                // the CPU model
  int threads = 0;                    // LibTorch threads the network used
  std::string date;                   // when the run started, "YYYY-MM-DD HH:MM UTC"
  double seconds = 0;                 // the whole run, wall time
};

// `method,file,EN,...,MSE`: one row per method and pair (empty cells where the result is missing
// or failed), then a `mean` row per method (empty when it scored nothing). Values in the shortest
// text that reads back to the same double, as `efcnet evaluate --format csv`.
std::string scores_csv(const Comparison& comparison);

// The same scores, with the run's context and each missing or failed result's reason.
std::string scores_json(const Comparison& comparison, const ReportContext& context);

// One self-contained page (no script, font or style from elsewhere): the context, a table of
// means with each metric's direction and the best marked, an inline SVG bar chart per metric, and
// a gallery of every pair (inputs and each method's result at one size, linked to the full-size
// file, with the pair's scores). Picture paths are relative to the page.
std::string report_html(const Comparison& comparison, const ReportContext& context);

// Writes report.html, scores.csv and scores.json into `output_dir`, each atomically.
void write_report(const std::string& output_dir, const Comparison& comparison, const ReportContext& context);

}  // namespace efcnet::cli
