// efcnet.fuse_volume / efcnet.fuse_volume_dirs: keyword arguments into FuseVolumeOptions, the
// library's events into a Python callback. Bindings only: the work is fuse_volume_files /
// fuse_volume_dirs, the same calls `efcnet fuse` makes.
#include "volumes.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "arrays.h"
#include "efcnet/models.h"
#include "efcnet/runtime.h"
#include "efcnet/volume_fusion.h"

namespace efcnet::python {
namespace {

namespace py = pybind11;
namespace fs = std::filesystem;

// Library messages name options by field; Python's keyword for the field `registration` is `register`.
std::string keyword_of(std::string_view field) { return field == "registration" ? "register" : std::string(field); }

// frame: an int (from 0) or "mean"; windows: "low:high" or a (low, high) pair.
std::string frame_text(const py::object& frame) {
  if (py::isinstance<py::int_>(frame)) return std::to_string(frame.cast<long long>());
  return py::str(frame).cast<std::string>();
}
Window window_of(const char* keyword, const py::object& window) {
  if (py::isinstance<py::str>(window)) return parsed(keyword, window.cast<std::string>(), parse_window);
  const auto pair = window.cast<std::pair<double, double>>();
  return parsed(keyword, std::to_string(pair.first) + ":" + std::to_string(pair.second), parse_window);
}

struct Keywords {
  std::optional<std::string> model;
  std::optional<fs::path> weights, seem_weights;
  std::string method, device, precision;
  int threads;
  py::object frame, anatomical_window, functional_window;
  std::optional<std::string> colormap, plane, registration;
  std::optional<fs::path> transform;
  std::string output_format;
  bool overwrite, allow_uneven_slices;
  std::optional<fs::path> slices_dir, montage, save_transform, qc;
};

FuseVolumeOptions options_of(const Keywords& k) {
  FuseVolumeOptions options;
  options.method = k.method;
  if (k.precision != "float32" && k.precision != "bfloat16") {
    throw py::value_error("precision must be \"float32\" or \"bfloat16\", got \"" + k.precision + "\"");
  }
  if (k.threads < 0) throw py::value_error("threads must be 0 (leave LibTorch's setting) or positive");
  if (k.method == "efcnet") {
    const Model chosen = resolve_model(
        {k.model.value_or(""), k.weights ? k.weights->string() : "", k.seem_weights ? k.seem_weights->string() : ""},
        {"model=", "weights=", "seem_weights="});
    options.fuser.weights = chosen.network;
    options.fuser.seem_weights = chosen.seem;
    options.model_name = chosen.name;
  }
  options.fuser.device = k.device;
  options.fuser.inference.precision = k.precision == "bfloat16" ? Precision::bfloat16 : Precision::float32;
  VolumeFusionOptions& volume = options.volume;
  volume.read.allow_uneven_slices = k.allow_uneven_slices;
  if (!k.frame.is_none()) volume.read.frame = parsed("frame", frame_text(k.frame), parse_frame);
  if (!k.anatomical_window.is_none()) volume.anatomical_window = window_of("anatomical_window", k.anatomical_window);
  if (!k.functional_window.is_none()) volume.functional_window = window_of("functional_window", k.functional_window);
  if (k.colormap) volume.colormap = parsed("colormap", *k.colormap, parse_colormap);
  if (k.plane) volume.plane = parsed("plane", *k.plane, parse_plane);
  if (k.registration) options.registration = parsed("register", *k.registration, parse_registration_kind);
  if (k.transform) options.transform_file = k.transform->string();
  if (k.output_format != "nifti" && k.output_format != "dicom") {
    throw py::value_error("output_format must be \"nifti\" or \"dicom\", got \"" + k.output_format + "\"");
  }
  options.output_format = k.output_format == "dicom" ? VolumeOutputFormat::dicom : VolumeOutputFormat::nifti;
  options.threads = k.threads;
  options.overwrite = k.overwrite;
  const auto text = [](const std::optional<fs::path>& path) { return path ? path->string() : std::string(); };
  options.slices_dir = text(k.slices_dir);
  options.montage = text(k.montage);
  options.save_transform = text(k.save_transform);
  options.qc = text(k.qc);
  options.option_name = keyword_of;
  return options;
}

// The library's events as dicts {"kind", "pair", "index", "count", "message", ...} to `progress`,
// with the GIL held; an exception it raises (KeyboardInterrupt too) ends the work.
VolumeFusionCallback callback_of(const py::object& progress) {
  if (progress.is_none()) return {};
  return [progress](const VolumeFusionEvent& event) {
    static const std::map<VolumeFusionEvent::Kind, const char*> kinds = {
        {VolumeFusionEvent::Kind::pair_started, "pair_started"},
        {VolumeFusionEvent::Kind::registering, "registering"},
        {VolumeFusionEvent::Kind::registered, "registered"},
        {VolumeFusionEvent::Kind::slice_done, "slice_done"},
        {VolumeFusionEvent::Kind::note, "note"},
        {VolumeFusionEvent::Kind::pair_failed, "pair_failed"}};
    py::gil_scoped_acquire gil;
    progress(py::dict(py::arg("kind") = kinds.at(event.kind), py::arg("pair") = event.pair,
                      py::arg("index") = event.index, py::arg("count") = event.count,
                      py::arg("message") = event.message));
  };
}

// ---- arrays with affines (nibabel's convention: voxel (i, j, k) to RAS+ mm) <-> volumes (LPS) ----

VolumeGeometry geometry_of(const py::ssize_t* shape, const py::array_t<double>& affine, const char* role) {
  if (affine.ndim() != 2 || affine.shape(0) != 4 || affine.shape(1) != 4) {
    throw py::value_error(std::string(role) + "_affine: expected a (4, 4) array");
  }
  const auto a = affine.unchecked<2>();
  VolumeGeometry geometry;
  constexpr double kRasToLps[3] = {-1, -1, 1};
  for (int c = 0; c < 3; ++c) {
    geometry.size[c] = shape[c];
    const double column[3] = {kRasToLps[0] * a(0, c), kRasToLps[1] * a(1, c), kRasToLps[2] * a(2, c)};
    const double length = std::sqrt(column[0] * column[0] + column[1] * column[1] + column[2] * column[2]);
    geometry.spacing[c] = length;
    for (int r = 0; r < 3; ++r) geometry.direction[r * 3 + c] = length > 0 ? column[r] / length : 0.0;
    geometry.origin[c] = kRasToLps[c] * a(c, 3);
  }
  if (const std::string problem = geometry_problem(geometry); !problem.empty()) {
    throw py::value_error(std::string(role) + "_affine with shape " + geometry.text() + ": " + problem);
  }
  return geometry;
}

py::array_t<double> affine_of(const VolumeGeometry& geometry) {
  py::array_t<double> affine({4, 4});
  auto a = affine.mutable_unchecked<2>();
  constexpr double kLpsToRas[3] = {-1, -1, 1};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) a(r, c) = r == c && r == 3 ? 1.0 : 0.0;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) a(r, c) = kLpsToRas[r] * geometry.direction[r * 3 + c] * geometry.spacing[c];
    a(r, 3) = kLpsToRas[r] * geometry.origin[r];
  }
  return affine;
}

// A scalar volume from a 3-D array of any real dtype (converted to float32, as a file's values are).
Volume volume_of(const py::array& array, const py::array_t<double>& affine, const char* role) {
  if (array.ndim() != 3) {
    throw py::value_error(std::string(role) + ": expected a 3-D (X, Y, Z) array of intensities, got " +
                          std::to_string(array.ndim()) + " dimensions");
  }
  const auto values = py::array_t<float, py::array::f_style | py::array::forcecast>::ensure(array);
  if (!values) throw py::type_error(std::string(role) + ": expected an array of numbers");
  Volume volume;
  volume.geometry = geometry_of(array.shape(), affine, role);
  volume.voxels.assign(values.data(), values.data() + values.size());  // Fortran order: i fastest
  return volume;
}

// (X, Y, Z) uint8 for grey, (X, Y, Z, 3) RGB for colour, i fastest in memory (as nibabel reads).
py::array array_of(const ByteVolume& volume) {
  const auto& size = volume.geometry.size;
  const py::ssize_t c = volume.channels;
  std::vector<py::ssize_t> shape{size[0], size[1], size[2]};
  std::vector<py::ssize_t> strides{c, c * size[0], c * size[0] * size[1]};
  if (c == 3) {
    shape.push_back(3);
    strides.push_back(1);
  }
  py::array out(py::dtype::of<std::uint8_t>(), shape, strides);
  auto* bytes = static_cast<std::uint8_t*>(out.mutable_data());
  std::memcpy(bytes, volume.voxels.data(), volume.voxels.size());
  if (c == 3) {
    for (std::size_t v = 0; v < volume.voxels.size(); v += 3) std::swap(bytes[v], bytes[v + 2]);  // BGR -> RGB
  }
  return out;
}

#define EFCNET_VOLUME_KEYWORDS                                                                                         \
  py::kw_only(), py::arg("model") = py::none(), py::arg("weights") = py::none(), py::arg("seem_weights") = py::none(), \
                 py::arg("method") = "efcnet", py::arg("device") = "cpu", py::arg("precision") = "float32",            \
                 py::arg("threads") = 0, py::arg("frame") = py::none(), py::arg("anatomical_window") = py::none(),     \
                 py::arg("functional_window") = py::none(), py::arg("colormap") = py::none(),                          \
                 py::arg("plane") = py::none(), py::arg("register") = py::none(), py::arg("transform") = py::none(),   \
                 py::arg("output_format") = "nifti", py::arg("overwrite") = false,                                     \
                 py::arg("allow_uneven_slices") = false

}  // namespace

void def_volume_functions(py::module_& m) {
  m.def(
      "fuse_volume",
      [](const fs::path& anatomical, const fs::path& functional, const fs::path& output,
         const std::optional<std::string>& model, const std::optional<fs::path>& weights,
         const std::optional<fs::path>& seem_weights, const std::string& method, const std::string& device,
         const std::string& precision, int threads, const py::object& frame, const py::object& anatomical_window,
         const py::object& functional_window, const std::optional<std::string>& colormap,
         const std::optional<std::string>& plane, const std::optional<std::string>& registration,
         const std::optional<fs::path>& transform, const std::string& output_format, bool overwrite,
         bool allow_uneven_slices, const std::optional<fs::path>& slices_dir, const std::optional<fs::path>& montage,
         const std::optional<fs::path>& save_transform, const std::optional<fs::path>& qc, const py::object& progress) {
        const FuseVolumeOptions options = options_of(
            {model,         weights,           seem_weights,        method,     device,  precision,      threads,
             frame,         anatomical_window, functional_window,   colormap,   plane,   registration,   transform,
             output_format, overwrite,         allow_uneven_slices, slices_dir, montage, save_transform, qc});
        const VolumeFusionCallback callback = callback_of(progress);
        VolumeFusionSummary summary;
        {
          py::gil_scoped_release release;
          if (threads > 0) set_threads(threads);  // a process setting, changed only because the caller asked
          summary = fuse_volume_files(anatomical.string(), functional.string(), output.string(), options, callback);
        }
        return py::dict(py::arg("fused_slices") = summary.fused_slices, py::arg("empty_slices") = summary.empty_slices);
      },
      py::arg("anatomical"), py::arg("functional"), py::arg("output"), EFCNET_VOLUME_KEYWORDS,
      py::arg("slices_dir") = py::none(), py::arg("montage") = py::none(), py::arg("save_transform") = py::none(),
      py::arg("qc") = py::none(), py::arg("progress") = py::none(),
      R"(Fuses a pair of volumes and writes the fused volume, exactly as `efcnet fuse` does (byte for byte
with as many threads).

anatomical, functional: NIfTI files (.nii, .nii.gz), DICOM series directories or DICOM files.
output: a .nii/.nii.gz file, or with output_format="dicom" a directory for one DICOM series.
The functional volume is resampled onto the anatomical grid (physical space, through transform=
or register= when given), both are windowed, the functional one coloured, and each slice of
plane= fused as Fuser.fuse fuses an image pair.

model, weights, seem_weights, device, precision, threads: as for Fuser. method: "efcnet" (the
network) or a baseline ("y-average", "y-max", ... as `efcnet fuse --help` lists).
frame: an int (from 0) or "mean", for 4D inputs. anatomical_window, functional_window: "low:high"
or (low, high) in the volume's values (default: robust percentiles). colormap: "jet", "hot",
"pet", "grey", ... (`efcnet fuse --help`). plane: "axial" (default), "coronal" or "sagittal".
register: "rigid" or "affine" to estimate the functional volume's placement first; transform: an
ITK transform file (.tfm, .txt, .mat, .h5) to use instead. allow_uneven_slices: resample a DICOM
series with missing or uneven slices instead of refusing it.
overwrite: replace existing outputs (otherwise efcnet.Error, and nothing is written).
slices_dir, montage (.png), save_transform, qc (.png): the extra outputs of `efcnet fuse`.
progress: a callable given each event as a dict {"kind", "pair", "index", "count", "message"}:
"registering", "registered", "slice_done" (index of count slices), "note".

Returns {"fused_slices", "empty_slices"}. Problems raise efcnet.Error (one line naming the file)
before anything is written; the GIL is released while the work runs.)");

  m.def(
      "fuse_volume_dirs",
      [](const fs::path& anatomical_dir, const fs::path& functional_dir, const fs::path& output_dir,
         const std::optional<std::string>& model, const std::optional<fs::path>& weights,
         const std::optional<fs::path>& seem_weights, const std::string& method, const std::string& device,
         const std::string& precision, int threads, const py::object& frame, const py::object& anatomical_window,
         const py::object& functional_window, const std::optional<std::string>& colormap,
         const std::optional<std::string>& plane, const std::optional<std::string>& registration,
         const std::optional<fs::path>& transform, const std::string& output_format, bool overwrite,
         bool allow_uneven_slices, const py::object& progress) {
        const FuseVolumeOptions options = options_of({model,
                                                      weights,
                                                      seem_weights,
                                                      method,
                                                      device,
                                                      precision,
                                                      threads,
                                                      frame,
                                                      anatomical_window,
                                                      functional_window,
                                                      colormap,
                                                      plane,
                                                      registration,
                                                      transform,
                                                      output_format,
                                                      overwrite,
                                                      allow_uneven_slices,
                                                      std::nullopt,
                                                      std::nullopt,
                                                      std::nullopt,
                                                      std::nullopt});
        const VolumeFusionCallback callback = callback_of(progress);
        VolumeBatchSummary summary;
        {
          py::gil_scoped_release release;
          if (threads > 0) set_threads(threads);
          summary = fuse_volume_dirs(anatomical_dir.string(), functional_dir.string(), output_dir.string(), options,
                                     callback);
        }
        const Pairing& p = summary.pairing;
        return py::dict(
            py::arg("fused") = summary.fused, py::arg("failed") = summary.failed,
            py::arg("unpaired") = p.unpaired_anatomical.size() + p.unpaired_functional.size() + p.ambiguous.size());
      },
      py::arg("anatomical_dir"), py::arg("functional_dir"), py::arg("output_dir"), EFCNET_VOLUME_KEYWORDS,
      py::arg("progress") = py::none(),
      R"(Fuses every pair of volumes of two directories paired by name, as `efcnet fuse --anatomical-dir`
does: output_dir/<name>.nii.gz (or output_dir/<name>/ for DICOM). Keywords as fuse_volume. A pair that
fails is reported to progress ({"kind": "pair_failed", "pair", "message"}) and the rest go on.
Returns {"fused", "failed", "unpaired"}.)");

  m.def(
      "read_volume",
      [](const fs::path& path, const py::object& frame, bool allow_uneven_slices) {
        VolumeReadOptions read;
        read.allow_uneven_slices = allow_uneven_slices;
        if (!frame.is_none()) read.frame = parsed("frame", frame_text(frame), parse_frame);
        std::optional<ByteVolume> fused;  // an RGB volume, as fuse writes them
        Volume volume;
        {
          py::gil_scoped_release release;
          if (read_volume_info(path.string(), read).components == 3) {
            fused = read_byte_volume(path.string());
          } else {
            volume = read_volume(path.string(), read);
          }
        }
        if (fused) return py::make_tuple(array_of(*fused), affine_of(fused->geometry));
        const auto& size = volume.geometry.size;
        py::array_t<float> voxels({size[0], size[1], size[2]}, {py::ssize_t{4}, 4 * size[0], 4 * size[0] * size[1]});
        std::memcpy(voxels.mutable_data(), volume.voxels.data(), volume.voxels.size() * sizeof(float));
        return py::make_tuple(voxels, affine_of(volume.geometry));
      },
      py::arg("path"), py::kw_only(), py::arg("frame") = py::none(), py::arg("allow_uneven_slices") = false,
      R"(Reads a volume as `efcnet fuse` reads it: NIfTI (.nii, .nii.gz), a DICOM series directory or file.

Returns (array, affine): float32 (X, Y, Z) in the file's units (NIfTI scaling and DICOM rescale
applied; a 4D file's frame= int or "mean"), or for a fused RGB volume uint8 (X, Y, Z, 3) RGB; the
affine maps voxel (i, j, k, 1) to RAS+ millimetres, nibabel's convention. Problems raise efcnet.Error.)");

  m.def(
      "fuse_volume_arrays",
      [](const py::array& anatomical, const py::array_t<double>& anatomical_affine, const py::array& functional,
         const py::array_t<double>& functional_affine, const std::optional<std::string>& model,
         const std::optional<fs::path>& weights, const std::optional<fs::path>& seem_weights, const std::string& method,
         const std::string& device, const std::string& precision, int threads, const py::object& anatomical_window,
         const py::object& functional_window, const std::optional<std::string>& colormap,
         const std::optional<std::string>& plane, const std::optional<std::string>& registration,
         const std::optional<fs::path>& transform, const py::object& progress) {
        const FuseVolumeOptions options = options_of({model,
                                                      weights,
                                                      seem_weights,
                                                      method,
                                                      device,
                                                      precision,
                                                      threads,
                                                      py::none(),
                                                      anatomical_window,
                                                      functional_window,
                                                      colormap,
                                                      plane,
                                                      registration,
                                                      transform,
                                                      "nifti",
                                                      false,
                                                      false,
                                                      std::nullopt,
                                                      std::nullopt,
                                                      std::nullopt,
                                                      std::nullopt});
        const Volume a = volume_of(anatomical, anatomical_affine, "anatomical");
        const Volume f = volume_of(functional, functional_affine, "functional");
        const VolumeFusionCallback callback = callback_of(progress);
        FusedVolume fused;
        {
          py::gil_scoped_release release;
          if (threads > 0) set_threads(threads);
          fused = fuse_volumes(a, f, options, callback);
        }
        return py::make_tuple(array_of(fused.fused), affine_of(fused.fused.geometry));
      },
      py::arg("anatomical"), py::arg("anatomical_affine"), py::arg("functional"), py::arg("functional_affine"),
      py::kw_only(), py::arg("model") = py::none(), py::arg("weights") = py::none(),
      py::arg("seem_weights") = py::none(), py::arg("method") = "efcnet", py::arg("device") = "cpu",
      py::arg("precision") = "float32", py::arg("threads") = 0, py::arg("anatomical_window") = py::none(),
      py::arg("functional_window") = py::none(), py::arg("colormap") = py::none(), py::arg("plane") = py::none(),
      py::arg("register") = py::none(), py::arg("transform") = py::none(), py::arg("progress") = py::none(),
      R"(fuse_volume on arrays in memory, as nibabel gives them: (X, Y, Z) intensities of any real dtype
and their 4x4 affines (voxel to RAS+ mm). The functional volume is resampled onto the anatomical
grid as fuse_volume does; the keywords are fuse_volume's. Returns (fused, affine): uint8 (X, Y, Z, 3)
RGB (or (X, Y, Z) for colormap="grey") on the anatomical grid, and its affine. Fused from
read_volume's arrays, the result equals fuse_volume's file voxel for voxel.)");
}

}  // namespace efcnet::python
