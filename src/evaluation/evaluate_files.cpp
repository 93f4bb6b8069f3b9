// evaluate_files, evaluate_dirs and evaluate_volume (evaluation.h): what `efcnet evaluate` scores,
// for the command, Python and embedding programs.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "efcnet/evaluation.h"
#include "efcnet/runtime.h"
#include "io/output_text.h"
#include "metrics/metrics_output.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;
using metrics::FusionMetrics;

struct Triple {
  std::string name, anatomical, functional, fused;
};

FusionMetrics mean_or_nan(const std::vector<ScoredItem>& items) {
  FusionMetrics mean;
  if (items.empty()) {
    for (std::size_t i = 0; i < metrics::kMetricNames.size(); ++i) mean[i] = std::numeric_limits<double>::quiet_NaN();
    return mean;
  }
  std::vector<FusionMetrics> rows;
  for (const ScoredItem& item : items) rows.push_back(item.metrics);
  return metrics::mean_metrics(rows);
}

// Triples whose stem has exactly one image in each directory; every other image file is named
// with the reason it was left out (the first reason found for a file is kept).
std::vector<Triple> match_triples(const std::string& anatomical_dir, const std::string& functional_dir,
                                  const std::string& fused_dir, std::map<std::string, std::string>& left_out) {
  const Pairing with_functional = pair_by_name(anatomical_dir, functional_dir);
  const Pairing with_fused = pair_by_name(anatomical_dir, fused_dir);
  std::map<std::string, const ImagePair*> fused_by_name;
  for (const ImagePair& pair : with_fused.pairs) fused_by_name[pair.name] = &pair;

  std::vector<Triple> triples;
  std::set<std::string> matched;
  for (const ImagePair& pair : with_functional.pairs) {
    const auto fused = fused_by_name.find(pair.name);
    if (fused == fused_by_name.end()) continue;
    triples.push_back({pair.name, pair.anatomical, pair.functional, fused->second->functional});
    matched.insert(pair.name);
  }

  const auto stem = [](const std::string& path) { return fs::path(path).stem().string(); };
  const auto missing = [&](const std::string& path, const char* role, const std::string& dir) {
    left_out.emplace(path, "no single " + std::string(role) + " image named " + stem(path) + " in " + dir);
  };
  for (const Pairing* pairing : {&with_functional, &with_fused})
    for (const std::string& path : pairing->ambiguous)
      left_out.emplace(path, "another image in its directory is also named " + stem(path));
  for (const ImagePair& pair : with_functional.pairs) {
    if (matched.count(pair.name)) continue;
    missing(pair.anatomical, "fused", fused_dir);
    missing(pair.functional, "fused", fused_dir);
  }
  for (const ImagePair& pair : with_fused.pairs) {
    if (matched.count(pair.name)) continue;
    missing(pair.anatomical, "functional", functional_dir);
    missing(pair.functional, "functional", functional_dir);
  }
  for (const std::string& path : with_functional.unpaired_anatomical) missing(path, "functional", functional_dir);
  for (const std::string& path : with_fused.unpaired_anatomical) missing(path, "fused", fused_dir);
  for (const std::string& path : with_functional.unpaired_functional) missing(path, "anatomical", anatomical_dir);
  for (const std::string& path : with_fused.unpaired_functional) missing(path, "anatomical", anatomical_dir);
  return triples;
}

}  // namespace

FusionMetrics evaluate_files(const std::string& anatomical, const std::string& functional, const std::string& fused,
                             const ImageReadOptions& read) {
  const cv::Mat a = metrics::read_grey(anatomical, read), b = metrics::read_grey(functional, read),
                f = metrics::read_grey(fused, read);
  if (a.size() != b.size() || a.size() != f.size()) {
    throw metrics::MetricsError(anatomical + " (" + size_text(a) + "), " + functional + " (" + size_text(b) + ") and " +
                                fused + " (" + size_text(f) + ") differ in size");
  }
  try {
    return metrics::evaluate_fusion(a, b, f);
  } catch (const metrics::MetricsError& e) {
    throw metrics::MetricsError(fused + ": " + e.what());
  }
}

DirectoryEvaluation evaluate_dirs(const std::string& anatomical_dir, const std::string& functional_dir,
                                  const std::string& fused_dir, const DirectoryEvaluationOptions& options,
                                  const std::function<void(std::size_t done, std::size_t total)>& progress) {
  DirectoryEvaluation evaluation;
  const std::vector<Triple> triples = match_triples(anatomical_dir, functional_dir, fused_dir, evaluation.left_out);
  std::vector<std::optional<FusionMetrics>> results(triples.size());
  std::vector<std::string> errors(triples.size());
  std::atomic<std::size_t> next{0};
  std::mutex progress_mutex;
  std::size_t done = 0;
  const auto work = [&] {
    for (std::size_t i = next++; i < triples.size(); i = next++) {
      try {
        results[i] = evaluate_files(triples[i].anatomical, triples[i].functional, triples[i].fused, options.read);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
      if (progress) {
        const std::lock_guard<std::mutex> lock(progress_mutex);
        progress(++done, triples.size());
      }
    }
  };
  const std::size_t workers = std::min(triples.size(), static_cast<std::size_t>(thread_count(options.threads)));
  std::vector<std::thread> pool;
  for (std::size_t w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();

  for (std::size_t i = 0; i < triples.size(); ++i) {
    if (results[i]) {
      evaluation.scored.push_back({triples[i].name, *results[i]});
    } else {
      evaluation.failed.emplace_back(triples[i].name, errors[i]);
    }
  }
  evaluation.mean = mean_or_nan(evaluation.scored);
  return evaluation;
}

VolumeEvaluation evaluate_volume(const std::string& anatomical, const std::string& functional, const std::string& fused,
                                 const VolumeFusionOptions& options) {
  const PreparedVolumes prepared = prepare_volumes(
      read_volume(anatomical, options.read), read_volume(functional, options.read), options, anatomical, functional);
  const ByteVolume fused_volume = read_byte_volume(fused);
  if (!same_geometry(fused_volume.geometry, prepared.anatomical.geometry, 1e-4)) {
    throw VolumeError(fused + " (" + fused_volume.geometry.text() + ") is not on the grid of " + anatomical + " (" +
                      prepared.anatomical.geometry.text() + ")");
  }
  VolumeEvaluation evaluation;
  const SliceLayout& layout = prepared.layout;
  const int digits = static_cast<int>(std::to_string(std::max(layout.slices - 1, 0)).size());
  for (int k = 0; k < layout.slices; ++k) {
    if (!slice_has_content(prepared, k)) continue;  // not fused either
    char name[64];
    std::snprintf(name, sizeof name, "%s_%0*d", plane_name(options.plane), digits, k);
    try {
      evaluation.slices.push_back(
          {name, metrics::evaluate_fusion(extract_slice(prepared.anatomical, layout, k),
                                          metrics::to_grey(extract_slice(prepared.functional, layout, k)),
                                          metrics::to_grey(extract_slice(fused_volume, layout, k)))});
    } catch (const metrics::MetricsError& e) {
      throw metrics::MetricsError(fused + ": slice " + std::to_string(k) + ": " + e.what());
    }
  }
  if (evaluation.slices.empty()) throw VolumeError(anatomical + " and " + functional + " are empty");
  evaluation.mean = mean_or_nan(evaluation.slices);
  return evaluation;
}

using metrics::FusionMetrics;
using metrics::kMetricNames;
using Json = nlohmann::ordered_json;

std::string metrics_text(const FusionMetrics& m, ScoreFormat format) {
  if (format == ScoreFormat::json) return json_text(metrics_json(m)) + "\n";
  std::string text;
  for (std::size_t i = 0; i < kMetricNames.size(); ++i) {
    const std::string name = kMetricNames[i], cell = table_cell(m[i]);
    text += name + std::string(6 - std::min<std::size_t>(name.size(), 5), ' ') +
            std::string(cell.size() < 14 ? 14 - cell.size() : 0, ' ') + cell + "\n";
  }
  return text;
}

std::string scores_text(const std::vector<ScoredItem>& rows, const FusionMetrics& mean, ScoreFormat format) {
  std::string text;
  if (format == ScoreFormat::json) {
    Json files = Json::array();
    for (const ScoredItem& row : rows) files.push_back(metrics_json(row.metrics, row.name));
    Json document = Json::object();
    document["files"] = std::move(files);
    document["mean"] = metrics_json(mean);
    return json_text(document) + "\n";
  }
  if (format == ScoreFormat::csv) {
    std::string header = "file";
    for (const char* name : kMetricNames) header += std::string(",") + name;
    text += header + "\n";
    auto add_row = [&text](const std::string& name, const FusionMetrics& m) {
      std::string line = csv_text_field(name);
      for (std::size_t i = 0; i < kMetricNames.size(); ++i) line += "," + number_text(m[i]);
      text += line + "\n";
    };
    for (const ScoredItem& row : rows) add_row(row.name, row.metrics);
    add_row("mean", mean);
    return text;
  }
  std::size_t name_width = 4;  // "mean"
  for (const ScoredItem& row : rows) name_width = std::max(name_width, row.name.size());
  auto add_row = [&](const std::string& name, auto cell) {
    std::string line = name + std::string(name_width - name.size(), ' ');
    for (std::size_t i = 0; i < kMetricNames.size(); ++i) {
      const std::string value = cell(i);
      line += std::string(value.size() < 11 ? 11 - value.size() : 1, ' ') + value;
    }
    text += line + "\n";
  };
  add_row("file", [](std::size_t i) { return std::string(kMetricNames[i]); });
  for (const ScoredItem& row : rows) add_row(row.name, [&](std::size_t i) { return table_cell(row.metrics[i]); });
  add_row("mean", [&](std::size_t i) { return table_cell(mean[i]); });
  return text;
}

}  // namespace efcnet
