// efcnet.evaluate_dirs / efcnet.evaluate_volume: bindings of evaluate_dirs and evaluate_volume
// (evaluation.h), the calls `efcnet evaluate` makes.
#include "evaluation.h"

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "arrays.h"
#include "efcnet/compare.h"
#include "efcnet/evaluation.h"
#include "efcnet/image.h"
#include "efcnet/models.h"
#include "efcnet/runtime.h"

namespace efcnet::python {
namespace {

namespace py = pybind11;
namespace fs = std::filesystem;

py::list scored_list(const std::vector<ScoredItem>& items) {
  py::list rows;
  for (const ScoredItem& item : items) {
    py::dict row;
    row["file"] = item.name;
    row.attr("update")(metrics_dict(item.metrics));
    rows.append(row);
  }
  return rows;
}

}  // namespace

py::dict metrics_dict(const metrics::FusionMetrics& m) {
  py::dict result;
  for (std::size_t i = 0; i < metrics::kMetricNames.size(); ++i) result[metrics::kMetricNames[i]] = m[i];
  return result;
}

void def_evaluation_functions(py::module_& m) {
  m.def(
      "evaluate_dirs",
      [](const fs::path& anatomical_dir, const fs::path& functional_dir, const fs::path& fused_dir, int threads,
         std::int64_t max_image_pixels) {
        if (threads < 0) throw py::value_error("threads must be 0 (every core) or positive");
        if (max_image_pixels <= 0) throw py::value_error("max_image_pixels must be positive");
        DirectoryEvaluationOptions options;
        options.threads = threads;
        options.read.max_pixels = max_image_pixels;
        DirectoryEvaluation evaluation;
        {
          py::gil_scoped_release release;
          evaluation = evaluate_dirs(anatomical_dir.string(), functional_dir.string(), fused_dir.string(), options);
        }
        py::dict failed, unpaired;
        for (const auto& [name, why] : evaluation.failed) failed[py::str(name)] = why;
        for (const auto& [path, why] : evaluation.left_out) unpaired[py::str(path)] = why;
        return py::dict(py::arg("files") = scored_list(evaluation.scored),
                        py::arg("mean") = metrics_dict(evaluation.mean), py::arg("failed") = failed,
                        py::arg("unpaired") = unpaired);
      },
      py::arg("anatomical_dir"), py::arg("functional_dir"), py::arg("fused_dir"), py::kw_only(), py::arg("threads") = 0,
      py::arg("max_image_pixels") = kDefaultMaxImagePixels,
      R"(Scores every triple of three directories matched by file stem, as `efcnet evaluate --anatomical-dir`.

Returns {"files": [{"file": stem, "EN": ..., ..., "MSE": ...}, ...] (by name), "mean": {...},
"failed": {stem: reason}, "unpaired": {path: reason}}: a triple that cannot be read or differs in
size is listed in "failed" and the rest are scored; image files without a partner in "unpaired".
threads: triples scored at once (0: every core). A directory that cannot be read raises efcnet.Error.)");

  m.def(
      "evaluate_volume",
      [](const fs::path& anatomical, const fs::path& functional, const fs::path& fused,
         const std::optional<std::string>& frame, const std::optional<std::string>& anatomical_window,
         const std::optional<std::string>& functional_window, const std::optional<std::string>& colormap,
         const std::optional<std::string>& plane, bool allow_uneven_slices) {
        VolumeFusionOptions options;
        if (frame) options.read.frame = parsed("frame", *frame, parse_frame);
        if (anatomical_window)
          options.anatomical_window = parsed("anatomical_window", *anatomical_window, parse_window);
        if (functional_window)
          options.functional_window = parsed("functional_window", *functional_window, parse_window);
        if (colormap) options.colormap = parsed("colormap", *colormap, parse_colormap);
        if (plane) options.plane = parsed("plane", *plane, parse_plane);
        options.read.allow_uneven_slices = allow_uneven_slices;
        VolumeEvaluation evaluation;
        {
          py::gil_scoped_release release;
          evaluation = evaluate_volume(anatomical.string(), functional.string(), fused.string(), options);
        }
        return py::dict(py::arg("slices") = scored_list(evaluation.slices),
                        py::arg("mean") = metrics_dict(evaluation.mean));
      },
      py::arg("anatomical"), py::arg("functional"), py::arg("fused"), py::kw_only(), py::arg("frame") = py::none(),
      py::arg("anatomical_window") = py::none(), py::arg("functional_window") = py::none(),
      py::arg("colormap") = py::none(), py::arg("plane") = py::none(), py::arg("allow_uneven_slices") = false,
      R"(Scores a fused volume against its inputs, as `efcnet evaluate --anatomical A.nii.gz ...`.

The inputs are prepared as efcnet.fuse_volume prepared them (give the same frame, windows
"low:high", colormap and plane); each slice with content is scored as a triple of images.
Returns {"slices": [{"file": "<plane>_<k>", "EN": ..., ...}, ...], "mean": {...}}. A fused volume
not on the anatomical grid, or empty inputs, raise efcnet.Error.)");

  m.def(
      "compare",
      [](const fs::path& anatomical_dir, const fs::path& functional_dir, const fs::path& output_dir, bool efcnet,
         bool baselines, const std::map<std::string, fs::path>& results, const std::optional<std::string>& model,
         const std::optional<fs::path>& weights, const std::optional<fs::path>& seem_weights, const std::string& device,
         const std::string& precision, int threads, bool overwrite, std::int64_t max_image_pixels,
         const py::object& progress) {
        if (precision != "float32" && precision != "bfloat16") {
          throw py::value_error("precision must be \"float32\" or \"bfloat16\", got \"" + precision + "\"");
        }
        if (threads < 0) throw py::value_error("threads must be 0 (leave LibTorch's setting) or positive");
        if (max_image_pixels <= 0) throw py::value_error("max_image_pixels must be positive");
        CompareOptions options;
        options.efcnet = efcnet;
        options.baselines = baselines;
        for (const auto& [name, dir] : results) options.results.emplace_back(name, dir.string());
        options.overwrite = overwrite;
        options.read.max_pixels = max_image_pixels;
        options.threads = threads;
        options.fuser.device = device;
        options.fuser.inference.precision = precision == "bfloat16" ? Precision::bfloat16 : Precision::float32;
        if (efcnet) {
          check_compare_options(anatomical_dir.string(), functional_dir.string(), output_dir.string(), options);
          const Model chosen = resolve_model(
              {model.value_or(""), weights ? weights->string() : "", seem_weights ? seem_weights->string() : ""},
              {"model=", "weights=", "seem_weights="});
          options.fuser.weights = chosen.network;
          options.fuser.seem_weights = chosen.seem;
        }
        CompareCallback callback;
        if (!progress.is_none()) {
          callback = [progress](const CompareEvent& event) {
            py::gil_scoped_acquire gil;
            progress(py::dict(py::arg("kind") = event.kind == CompareEvent::Kind::problem ? "problem" : "pair_done",
                              py::arg("message") = event.message, py::arg("done") = event.done,
                              py::arg("total") = event.total));
          };
        }
        ComparisonReport report;
        {
          py::gil_scoped_release release;
          if (threads > 0) set_threads(threads);  // a process setting, changed only because the caller asked
          report =
              compare_methods(anatomical_dir.string(), functional_dir.string(), output_dir.string(), options, callback);
        }
        return py::dict(
            py::arg("methods") = report.comparison.methods.size(), py::arg("pairs") = report.comparison.pairs.size(),
            py::arg("problems") = report.comparison.problem_count(),
            py::arg("report") = (output_dir / "report.html").string(), py::arg("seconds") = report.context.seconds);
      },
      py::arg("anatomical_dir"), py::arg("functional_dir"), py::arg("output_dir"), py::kw_only(),
      py::arg("efcnet") = true, py::arg("baselines") = true, py::arg("results") = std::map<std::string, fs::path>{},
      py::arg("model") = py::none(), py::arg("weights") = py::none(), py::arg("seem_weights") = py::none(),
      py::arg("device") = "cpu", py::arg("precision") = "float32", py::arg("threads") = 0, py::arg("overwrite") = false,
      py::arg("max_image_pixels") = kDefaultMaxImagePixels, py::arg("progress") = py::none(),
      R"(Compares fusion methods on one dataset and writes the report, as `efcnet compare` does.

The pairs of anatomical_dir and functional_dir (matched by file stem) are fused by the network
(efcnet=True; model/weights/seem_weights/device/precision as for Fuser) and the classical
baselines y-average and y-max (baselines=True), and other methods' results are read from
results={"name": directory}; every result is scored with the twelve metrics. output_dir gets
report.html, scores.csv and scores.json (the same files as the command's), the fused images and
the report's pictures. An existing report is kept unless overwrite=True (efcnet.Error otherwise).
progress: a callable given {"kind": "problem", "message"} for each problem and
{"kind": "pair_done", "done", "total"} after each pair.
Returns {"methods", "pairs", "problems", "report", "seconds"}.)");
}

}  // namespace efcnet::python
