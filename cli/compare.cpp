#include "compare.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

#include "efcnet/error.h"
#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "efcnet/progress.h"

namespace efcnet::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string stem_of(const std::string& path) { return fs::path(path).stem().string(); }

std::string picture_path(const std::string& folder, const std::string& pair) {
  return (fs::path(folder) / (pair + ".png")).string();
}

void make_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) {
    throw IoError(dir.string() + ": cannot create the directory" + (ec ? ": " + ec.message() : ""));
  }
}

// Where a results directory holds each pair's image: stem -> path, or the reason there is none
// for a stem that cannot be told apart.
struct ResultFiles {
  std::map<std::string, std::string> by_name;
  std::map<std::string, std::string> ambiguous;
};

// Pairs the results directory with the anatomical one (pair_by_name: the same stem rule as
// everywhere), and names its images that belong to no pair of the dataset.
ResultFiles find_results(const MethodSpec& method, const std::string& anatomical_dir,
                         const std::set<std::string>& dataset, ProgressBar& progress) {
  const Pairing pairing = pair_by_name(anatomical_dir, method.results_dir);
  ResultFiles files;
  for (const ImagePair& pair : pairing.pairs) {
    if (dataset.count(pair.name)) {
      files.by_name[pair.name] = pair.functional;
    } else {
      progress.message("ignored: " + pair.functional + " (" + pair.name + " is not a pair of the dataset)");
    }
  }
  for (const std::string& path : pairing.unpaired_functional) {
    progress.message("ignored: " + path + " (" + stem_of(path) + " is not a pair of the dataset)");
  }
  std::error_code ec;
  for (const std::string& path : pairing.ambiguous) {
    if (fs::equivalent(fs::path(path).parent_path(), method.results_dir, ec)) {
      files.ambiguous[stem_of(path)] = "another image in " + method.results_dir + " is also named " + stem_of(path);
    }
  }
  return files;
}

// A fused image, checked against the size of the pair's inputs.
cv::Mat read_fused(const std::string& path, const cv::Mat& input, const ImageReadOptions& options) {
  cv::Mat fused = read_functional(path, options);
  if (fused.size() != input.size()) {
    throw IoError(path + " (" + size_text(fused) + ") differs in size from the pair's inputs (" + size_text(input) +
                  ")");
  }
  return fused;
}

struct PairInputs {
  cv::Mat anatomical, functional;            // as fusion reads them (image.h)
  cv::Mat anatomical_grey, functional_grey;  // as the evaluator reads them (metrics.h)
};

// The evaluator's grey is read_functional's image through metrics::to_grey, so each file is
// decoded once; only a colour anatomical file is decoded twice, fusion wanting its codec's grey.
PairInputs read_inputs(const ImagePair& pair, const ImageReadOptions& options) {
  const cv::Mat anatomical_as_stored = read_functional(pair.anatomical, options);
  PairInputs in{anatomical_as_stored.channels() == 1 ? anatomical_as_stored : read_anatomical(pair.anatomical, options),
                read_functional(pair.functional, options),
                {},
                {}};
  if (in.anatomical.size() != in.functional.size()) {
    throw IoError(pair.anatomical + " (" + size_text(in.anatomical) + ") and " + pair.functional + " (" +
                  size_text(in.functional) + ") differ in size");
  }
  in.anatomical_grey = metrics::to_grey(anatomical_as_stored);
  in.functional_grey = metrics::to_grey(in.functional);
  return in;
}

}  // namespace

std::string method_name_problem(const std::string& name) {
  if (name.empty()) return "a method needs a name";
  if (name.front() == '.') return "a method name may not start with '.'";
  for (const char c : name) {
    const bool allowed =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!allowed) return "a method name holds only letters, digits, '.', '_' and '-'";
  }
  if (name == "anatomical" || name == "functional") return "\"" + name + "\" names the report's input pictures";
  return {};
}

std::size_t MethodResult::scored() const {
  std::size_t count = 0;
  for (const PairOutcome& outcome : pairs) count += outcome.status == PairOutcome::Status::scored;
  return count;
}

std::optional<metrics::FusionMetrics> MethodResult::mean() const {
  std::vector<metrics::FusionMetrics> rows;
  for (const PairOutcome& outcome : pairs) {
    if (outcome.status == PairOutcome::Status::scored) rows.push_back(outcome.scores);
  }
  if (rows.empty()) return std::nullopt;
  return metrics::mean_metrics(rows);
}

std::size_t Comparison::problem_count() const {
  std::size_t count = unpaired.size();
  for (std::size_t p = 0; p < pairs.size(); ++p) {
    if (!pairs[p].problem.empty()) {
      ++count;  // once, not once per method
      continue;
    }
    for (const MethodResult& method : methods) count += method.pairs[p].status != PairOutcome::Status::scored;
  }
  return count;
}

Comparison run_comparison(const std::string& anatomical_dir, const std::string& functional_dir,
                          const std::vector<MethodSpec>& methods, const std::string& output_dir,
                          const ImageReadOptions& read_options, std::FILE* log) {
  std::set<std::string> names;
  for (const MethodSpec& method : methods) {
    if (const std::string problem = method_name_problem(method.name); !problem.empty()) {
      throw OptionError(method.name + ": " + problem);
    }
    if (!names.insert(method.name).second) throw OptionError(method.name + ": two methods of that name");
  }
  Comparison comparison;
  comparison.anatomical_dir = anatomical_dir;
  comparison.functional_dir = functional_dir;
  const Pairing pairing = pair_by_name(anatomical_dir, functional_dir);
  std::set<std::string> dataset;
  for (const ImagePair& pair : pairing.pairs) dataset.insert(pair.name);

  const fs::path out(output_dir);
  const fs::path anatomical_pictures = out / "pictures" / "anatomical",
                 functional_pictures = out / "pictures" / "functional";
  make_directory(anatomical_pictures);
  make_directory(functional_pictures);
  for (const MethodSpec& method : methods) {
    make_directory(method.fuse ? out / method.name : out / "pictures" / method.name);
  }

  ProgressBar progress(pairing.pairs.size(), log);
  auto unpaired = [&](const std::string& path, const std::string& why) {
    comparison.unpaired.push_back(path + " (" + why + ")");
    progress.message("unpaired: " + comparison.unpaired.back());
  };
  for (const std::string& path : pairing.unpaired_anatomical) {
    unpaired(path, "no single functional image named " + stem_of(path) + " in " + functional_dir);
  }
  for (const std::string& path : pairing.unpaired_functional) {
    unpaired(path, "no single anatomical image named " + stem_of(path) + " in " + anatomical_dir);
  }
  for (const std::string& path : pairing.ambiguous) {
    unpaired(path, "another image in its directory is also named " + stem_of(path));
  }

  std::vector<ResultFiles> results(methods.size());
  for (std::size_t m = 0; m < methods.size(); ++m) {
    comparison.methods.push_back(
        {methods[m].name, methods[m].description, static_cast<bool>(methods[m].fuse), 0, 0, {}});
    if (!methods[m].fuse) results[m] = find_results(methods[m], anatomical_dir, dataset, progress);
  }

  for (const ImagePair& pair : pairing.pairs) {
    ComparedPair& compared = comparison.pairs.emplace_back();
    compared.name = pair.name;
    compared.anatomical = pair.anatomical;
    compared.functional = pair.functional;
    PairInputs in;
    try {
      in = read_inputs(pair, read_options);
      compared.anatomical_picture = picture_path("pictures/anatomical", pair.name);
      compared.functional_picture = picture_path("pictures/functional", pair.name);
      write_image_atomic((out / compared.anatomical_picture).string(), in.anatomical);
      write_image_atomic((out / compared.functional_picture).string(), in.functional);
    } catch (const std::exception& e) {
      compared.problem = e.what();
      progress.message("failed: " + pair.name + ": " + compared.problem);
    }

    for (std::size_t m = 0; m < methods.size(); ++m) {
      const MethodSpec& method = methods[m];
      MethodResult& result = comparison.methods[m];
      PairOutcome& outcome = result.pairs.emplace_back();
      if (!compared.problem.empty()) {
        outcome.status = PairOutcome::Status::failed;
        outcome.problem = "the pair's inputs cannot be used";
        continue;
      }
      std::string fused_path;
      if (!method.fuse) {
        const ResultFiles& files = results[m];
        if (const auto it = files.by_name.find(pair.name); it != files.by_name.end()) {
          fused_path = it->second;
        } else {
          const auto ambiguous = files.ambiguous.find(pair.name);
          outcome.problem = ambiguous != files.ambiguous.end()
                                ? ambiguous->second
                                : "no image named " + pair.name + " in " + method.results_dir;
          progress.message("missing: " + method.name + ": " + pair.name + " (" + outcome.problem + ")");
          continue;
        }
      }
      try {
        cv::Mat fused_grey;
        if (method.fuse) {
          const auto start = Clock::now();
          cv::Mat fused;
          try {
            fused = method.fuse(in.anatomical, in.functional);
          } catch (const std::exception& e) {
            throw FusionError(pair.anatomical + " + " + pair.functional + ": " + e.what());
          }
          result.fusion_seconds += std::chrono::duration<double>(Clock::now() - start).count();
          ++result.fused;
          outcome.picture = picture_path(method.name, pair.name);
          fused_path = (out / outcome.picture).string();
          write_image_atomic(fused_path, fused);
          // Scored from the file as written, exactly as `efcnet evaluate` would read it.
          fused_grey = metrics::to_grey(read_fused(fused_path, in.anatomical, read_options));
        } else {
          const cv::Mat fused = read_fused(fused_path, in.anatomical, read_options);
          fused_grey = metrics::to_grey(fused);
          const std::string picture = picture_path("pictures/" + method.name, pair.name);
          write_image_atomic((out / picture).string(), fused);
          outcome.picture = picture;
        }
        try {
          outcome.scores = metrics::evaluate_fusion(in.anatomical_grey, in.functional_grey, fused_grey);
        } catch (const metrics::MetricsError& e) {
          throw metrics::MetricsError(fused_path + ": " + e.what());
        }
        outcome.status = PairOutcome::Status::scored;
      } catch (const std::exception& e) {
        outcome.status = PairOutcome::Status::failed;
        outcome.problem = e.what();
        progress.message("failed: " + method.name + ": " + pair.name + ": " + outcome.problem);
      }
    }
    progress.advance();
  }
  progress.finish();
  return comparison;
}

}  // namespace efcnet::cli
