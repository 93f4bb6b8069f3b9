// Fusion methods side by side on one dataset (what `efcnet compare` runs), apart from its command
// line: the methods, the scoring of every pair, and the report files (compare_report.h).
#pragma once

#include <cstddef>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "efcnet/metrics.h"
#include "efcnet/pipeline.h"

namespace efcnet::cli {

// A method to compare: either one run here (`fuse`) or a directory of its existing results.
struct MethodSpec {
  std::string name;         // as the report shows it; also a folder name (see valid_method_name)
  std::string description;  // one line for the report: what the method is
  PairFusion fuse;          // run here: results go to <output>/<name>/<pair>.png
  std::string results_dir;  // otherwise: <results_dir>/<pair>.<any image extension>, paired by stem
};

// Letters, digits, '.', '_' and '-', not starting with '.', and neither "anatomical" nor
// "functional" (the report's picture folders for the inputs); empty when `name` is usable,
// else why not.
std::string method_name_problem(const std::string& name);

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
// `output_dir` (created if missing; existing files replaced, atomically): <method>/<pair>.png for
// the methods run here, and the pictures the report shows, pictures/{anatomical,functional}/ and
// pictures/<method>/ (PNG copies of the inputs and of each results directory's images, so that
// the report is self-contained and every browser shows them). `log` gets a progress bar over the
// pairs (progress.h) and one line per problem (an unpaired input, a missing result, an unreadable
// file, a failed fusion); the other pairs and methods go on. Every image is read (decoded once)
// with `read_options`. Throws only IoError, for an unusable directory, and OptionError, for an
// unusable or repeated method name.
Comparison run_comparison(const std::string& anatomical_dir, const std::string& functional_dir,
                          const std::vector<MethodSpec>& methods, const std::string& output_dir,
                          const ImageReadOptions& read_options = {}, std::FILE* log = stderr);

}  // namespace efcnet::cli
