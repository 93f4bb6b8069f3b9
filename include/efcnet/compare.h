// Fusion methods side by side on one dataset, what `efcnet compare` does (libefcnet): the
// network and the classical baselines fused here, other methods' results read from directories,
// every result scored with the twelve metrics, and the report (report.html, scores.csv,
// scores.json) written.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

#include "efcnet/error.h"
#include "efcnet/metrics.h"
#include "efcnet/pipeline.h"

namespace efcnet {

struct CompareOptions {
  bool efcnet = true;     // the network, fused here into <output>/efcnet/
  FuserOptions fuser;     // its weights, SEEM, device and precision
  bool baselines = true;  // y-average and y-max, fused here
  // Other methods' existing results: (name, directory holding <stem>.<image extension> per pair).
  std::vector<std::pair<std::string, std::string>> results;
  bool overwrite = false;  // replace an existing report; otherwise OutputExistsError before any work
  ImageReadOptions read;   // every image (decoded once)
  int threads = 0;         // the report's note of LibTorch's threads (thread_count); set by the caller
  OptionNamer option_name{};
};

// What happens, for a caller's progress display and log.
struct CompareEvent {
  enum class Kind {
    problem,    // `message`: "unpaired: ...", "ignored: ...", "missing: ...", "failed: ..."
    pair_done,  // `done` of `total` pairs fused and scored by every method
  } kind = Kind::problem;
  std::string message;
  std::size_t done = 0, total = 0;
};
using CompareCallback = std::function<void(const CompareEvent&)>;

// Letters, digits, '.', '_' and '-', not starting with '.', and neither "anatomical" nor
// "functional" (the report's picture folders for the inputs); empty when `name` is usable,
// else why not.
std::string method_name_problem(const std::string& name);

// What the report says about the run besides the scores.
struct ReportContext {
  std::string weights, seem_weights;  // the network's weight files; empty when it did not run
  std::string machine;                // the CPU model
  int threads = 0;                    // LibTorch threads the network used
  std::string date;                   // when the run started, "YYYY-MM-DD HH:MM UTC"
  double seconds = 0;                 // the whole run, wall time
};

struct PairOutcome {
  enum class Status { scored, missing, failed };
  Status status = Status::missing;
  metrics::FusionMetrics scores;  // when scored
  std::string problem;            // when missing or failed: one line naming the file
  std::string picture;            // relative to the output directory; empty when there is none
};

struct MethodResult {
  std::string name, description;
  bool ran = false;                // fused here, else read from a directory
  double fusion_seconds = 0;       // time spent in its fusion, when ran
  std::size_t fused = 0;           // pairs it fused, when ran
  std::vector<PairOutcome> pairs;  // one per Comparison::pairs entry, in that order

  std::size_t scored() const;
  // Each metric's mean over the scored pairs, in pair order: what `efcnet evaluate` gives for the
  // same files. None when nothing was scored.
  std::optional<metrics::FusionMetrics> mean() const;
};

struct ComparedPair {
  std::string name, anatomical, functional;            // the stem and the input files
  std::string anatomical_picture, functional_picture;  // relative to the output directory
  std::string problem;                                 // when the inputs cannot be used
};

struct Comparison {
  std::string anatomical_dir, functional_dir;
  std::vector<std::string> unpaired;  // "path (why)" for input files without a partner
  std::vector<ComparedPair> pairs;    // sorted by name
  std::vector<MethodResult> methods;  // in the order given

  // Unpaired input files, unusable pairs and missing or failed results together.
  std::size_t problem_count() const;
};

// The pairs of `anatomical_dir` and `functional_dir` (pair_by_name), each fused by every method
// run here or looked up in every results directory, and scored with the twelve metrics as
// `efcnet evaluate` scores files (metrics::read_grey of the files as written). Writes into
// `output_dir` (created if missing; existing images replaced, atomically): <method>/<pair>.png for
// the methods run here, the pictures the report shows, pictures/{anatomical,functional}/ and
// pictures/<method>/ (PNG copies of the inputs and of each results directory's images, so that
// the report is self-contained and every browser shows them), and report.html, scores.csv and
// scores.json, replaced together (replace_files_together). Each problem (an unpaired input, a
// missing result, an unreadable file, a failed fusion) is reported to `callback` and the other
// pairs and methods go on. Refused before any work, with OptionError: an unusable or repeated
// method name, no methods, a results directory that is not one, the output directory among the
// inputs or above one; with OutputExistsError: an existing report without overwrite. Throws
// IoError for an unusable directory, and what loading the network throws.
struct ComparisonReport {
  Comparison comparison;
  ReportContext context;
};
ComparisonReport compare_methods(const std::string& anatomical_dir, const std::string& functional_dir,
                                 const std::string& output_dir, const CompareOptions& options,
                                 const CompareCallback& callback = {});

// The refusals compare_methods makes before any work (OptionError, OutputExistsError), for a caller
// that has more to prepare first (a model to look up, weights to load).
void check_compare_options(const std::string& anatomical_dir, const std::string& functional_dir,
                           const std::string& output_dir, const CompareOptions& options);

// The report's files, as compare_methods writes them. scores_csv: `method,file,EN,...,MSE`, one row
// per method and pair (empty cells where the result is missing or failed), then a `mean` row per
// method, values in the shortest text that reads back to the same double. scores_json: the same
// with the run's context and each missing or failed result's reason. report_html: one
// self-contained page (no script, font or style from elsewhere): the context, a table of means with
// each metric's direction and the best marked, an inline SVG bar chart per metric, and a gallery of
// every pair; picture paths relative to the page.
std::string scores_csv(const Comparison& comparison);
std::string scores_json(const Comparison& comparison, const ReportContext& context);
std::string report_html(const Comparison& comparison, const ReportContext& context);

}  // namespace efcnet
