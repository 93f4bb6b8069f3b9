// `efcnet evaluate` as library calls (LibTorch-free): the twelve metrics (metrics.h) of one triple
// of image files, of every triple of three directories matched by name, and of every slice of a
// fused volume with its inputs prepared as the fusion prepared them.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "efcnet/image.h"
#include "efcnet/metrics.h"
#include "efcnet/volume.h"

namespace efcnet {

struct ScoredItem {
  std::string name;  // a file stem, or a slice as <plane>_<k>
  metrics::FusionMetrics metrics;
};

// One triple of image files read with the evaluator's convention (metrics::read_grey). Throws
// Error naming the files: unreadable, refused by `read`, of different sizes, too small.
metrics::FusionMetrics evaluate_files(const std::string& anatomical, const std::string& functional,
                                      const std::string& fused, const ImageReadOptions& read = {});

struct DirectoryEvaluationOptions {
  int threads = 0;  // triples scored at once; 0: every core. (OpenCV's own threads compete with
                    // these: a caller that owns the process may call cv::setNumThreads(1).)
  ImageReadOptions read;
};

struct DirectoryEvaluation {
  std::vector<ScoredItem> scored;                           // by name
  metrics::FusionMetrics mean;                              // of `scored` (NaN where empty)
  std::vector<std::pair<std::string, std::string>> failed;  // name, the one-line reason
  std::map<std::string, std::string> left_out;              // path -> why it has no triple
};

// Every stem with exactly one image in each of the three directories (pair_by_name's rules),
// scored in parallel; a triple that fails is listed with its reason and the rest are scored;
// every other image file is listed in left_out. `progress` (if given) gets (done, total) after
// each triple, from the scoring threads one at a time. Throws Error for a directory that cannot
// be read.
DirectoryEvaluation evaluate_dirs(const std::string& anatomical_dir, const std::string& functional_dir,
                                  const std::string& fused_dir, const DirectoryEvaluationOptions& options = {},
                                  const std::function<void(std::size_t done, std::size_t total)>& progress = {});

struct VolumeEvaluation {
  std::vector<ScoredItem> slices;  // each slice with content, as <plane>_<k>
  metrics::FusionMetrics mean;
};

// A fused volume against its inputs prepared as `efcnet fuse` prepared them with `options`
// (resampled onto the anatomical grid, windowed, coloured, sliced in options.plane): each slice
// with content in either input is scored as a triple of images; slices empty in both are skipped,
// as the fusion skips them. Throws Error when the fused volume is not on the anatomical grid or
// both inputs are empty.
VolumeEvaluation evaluate_volume(const std::string& anatomical, const std::string& functional, const std::string& fused,
                                 const VolumeFusionOptions& options = {});

// ---- the scores as text (`efcnet evaluate --format`) ----

enum class ScoreFormat {
  table,  // aligned columns for a terminal
  csv,    // file,EN,...,MSE; a row per item and a row "mean"; names as RFC 4180 fields, never formulas
  json,   // {"files": [...], "mean": {...}} (one triple: the metrics object); non-UTF-8 bytes as U+FFFD
};

// One triple's metrics: a JSON object, or a table of one metric per line (csv: as table).
std::string metrics_text(const metrics::FusionMetrics& metrics, ScoreFormat format);

// Scored items and their mean.
std::string scores_text(const std::vector<ScoredItem>& rows, const metrics::FusionMetrics& mean, ScoreFormat format);

}  // namespace efcnet
