// compare_methods (compare.h): the methods, the scoring of every pair, and the report's files
// (report.cpp writes their text).
#include "efcnet/compare.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include "efcnet/error.h"
#include "efcnet/files.h"
#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "efcnet/runtime.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A method to compare: either one run here (`fuse`) or a directory of its existing results.
struct MethodSpec {
  std::string name;         // as the report shows it; also a folder name (method_name_problem)
  std::string description;  // one line for the report: what the method is
  PairFusion fuse;          // run here: results go to <output>/<name>/<pair>.png
  std::string results_dir;  // otherwise: <results_dir>/<pair>.<any image extension>, paired by stem
};

// Problems and progress, to a callback that may be empty.
class Reporter {
 public:
  explicit Reporter(const CompareCallback& callback) : callback_(callback) {}
  void problem(const std::string& message) const {
    if (callback_) callback_({CompareEvent::Kind::problem, message, 0, 0});
  }
  void pair_done(std::size_t done, std::size_t total) const {
    if (callback_) callback_({CompareEvent::Kind::pair_done, "", done, total});
  }

 private:
  const CompareCallback& callback_;
};

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
                         const std::set<std::string>& dataset, const Reporter& progress) {
  const Pairing pairing = pair_by_name(anatomical_dir, method.results_dir);
  ResultFiles files;
  for (const ImagePair& pair : pairing.pairs) {
    if (dataset.count(pair.name)) {
      files.by_name[pair.name] = pair.functional;
    } else {
      progress.problem("ignored: " + pair.functional + " (" + pair.name + " is not a pair of the dataset)");
    }
  }
  for (const std::string& path : pairing.unpaired_functional) {
    progress.problem("ignored: " + path + " (" + stem_of(path) + " is not a pair of the dataset)");
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

// Every pair through every method, scored; images written into output_dir.
Comparison run_comparison(const std::string& anatomical_dir, const std::string& functional_dir,
                          const std::vector<MethodSpec>& methods, const std::string& output_dir,
                          const ImageReadOptions& read_options, const Reporter& progress) {
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

  auto unpaired = [&](const std::string& path, const std::string& why) {
    comparison.unpaired.push_back(path + " (" + why + ")");
    progress.problem("unpaired: " + comparison.unpaired.back());
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
      progress.problem("failed: " + pair.name + ": " + compared.problem);
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
          progress.problem("missing: " + method.name + ": " + pair.name + " (" + outcome.problem + ")");
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
        progress.problem("failed: " + method.name + ": " + pair.name + ": " + outcome.problem);
      }
    }
    progress.pair_done(comparison.pairs.size(), pairing.pairs.size());
  }
  return comparison;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &utc);
  return text;
}

// Whether `inner` is `outer` or lies below it, links and ".." resolved (`outer` need not exist).
bool is_within(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  auto resolved = [&ec](const fs::path& path) {
    const fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
    return p.has_filename() ? p : p.parent_path();  // "dir/" as "dir"
  };
  const fs::path in = resolved(inner), out = resolved(outer);
  return std::mismatch(out.begin(), out.end(), in.begin(), in.end()).first == out.end();
}

// The methods of `options`, every refusal that needs no image made: names, results directories,
// the output directory among the inputs, an existing report.
std::vector<MethodSpec> checked_methods(const std::string& anatomical_dir, const std::string& functional_dir,
                                        const std::string& output_dir, const CompareOptions& options) {
  std::vector<MethodSpec> methods;
  if (options.efcnet) methods.push_back({"efcnet", "the EFCNet network, fused here", nullptr, ""});
  if (options.baselines) {
    methods.push_back(
        {"y-average", "(Y + anatomical) / 2, rounded: a classical baseline, fused here",
         [](const cv::Mat& a, const cv::Mat& f) { return fuse_baseline(a, f, BaselineMethod::y_average); }, ""});
    methods.push_back({"y-max", "max(Y, anatomical): a classical baseline, fused here",
                       [](const cv::Mat& a, const cv::Mat& f) { return fuse_baseline(a, f, BaselineMethod::y_max); },
                       ""});
  }
  std::error_code ec;
  for (const auto& result : options.results) {
    const std::string& name = result.first;
    const std::string& dir = result.second;
    if (const std::string problem = method_name_problem(name); !problem.empty()) {
      throw OptionError(name + ": " + problem);
    }
    const bool taken = std::any_of(methods.begin(), methods.end(), [&](const MethodSpec& m) { return m.name == name; });
    if (taken) throw OptionError(name + ": " + name + " is already a method of this comparison");
    if (!fs::is_directory(dir, ec)) throw OptionError(dir + ": not a directory (given for method " + name + ")");
    methods.push_back({name, "results in " + dir, nullptr, dir});
  }
  if (methods.empty()) throw OptionError("no methods to compare");

  const std::string output_option = option_name(options.option_name, "output_dir");
  std::vector<std::string> inputs{anatomical_dir, functional_dir};
  for (const auto& result : options.results) inputs.push_back(result.second);
  for (const std::string& input : inputs) {
    if (fs::equivalent(output_dir, input, ec)) {
      throw OptionError(output_dir + ": is an input directory; choose another " + output_option);
    }
    if (is_within(input, output_dir)) {
      throw OptionError(input + ": is inside " + output_option + " " + output_dir +
                        ", which compare writes into; choose another " + output_option);
    }
  }
  for (const char* file : {"report.html", "scores.csv", "scores.json"}) {
    const fs::path path = fs::path(output_dir) / file;
    if (!options.overwrite && fs::exists(fs::symlink_status(path, ec))) throw OutputExistsError(path.string());
  }
  return methods;
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

void check_compare_options(const std::string& anatomical_dir, const std::string& functional_dir,
                           const std::string& output_dir, const CompareOptions& options) {
  checked_methods(anatomical_dir, functional_dir, output_dir, options);
}

ComparisonReport compare_methods(const std::string& anatomical_dir, const std::string& functional_dir,
                                 const std::string& output_dir, const CompareOptions& options,
                                 const CompareCallback& callback) {
  const auto start = Clock::now();
  ComparisonReport report;
  report.context.date = utc_now();
  report.context.machine = cpu_model();
  report.context.threads = thread_count(options.threads);
  std::vector<MethodSpec> methods = checked_methods(anatomical_dir, functional_dir, output_dir, options);
  if (options.efcnet) {
    report.context.weights = options.fuser.weights;
    report.context.seem_weights = options.fuser.seem_weights;
    auto fuser = std::make_shared<const Fuser>(options.fuser);
    methods.front().fuse = [fuser](const cv::Mat& a, const cv::Mat& f) { return fuser->fuse_pair(a, f); };
  }
  report.comparison =
      run_comparison(anatomical_dir, functional_dir, methods, output_dir, options.read, Reporter(callback));
  if (report.comparison.pairs.empty()) {
    throw IoError("no pairs in " + anatomical_dir + " and " + functional_dir);
  }
  report.context.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const fs::path dir(output_dir);
  replace_files_together({{(dir / "scores.csv").string(), scores_csv(report.comparison)},
                          {(dir / "scores.json").string(), scores_json(report.comparison, report.context)},
                          {(dir / "report.html").string(), report_html(report.comparison, report.context)}});
  return report;
}

}  // namespace efcnet
