// efcnet._efcnet: the Python face of the library (fusion, metrics, weights, image reading).
// Bindings only: every computation is the library's. The GIL is released while the networks,
// the metrics and the weights reader run; library errors become efcnet.Error, bad arrays
// TypeError/ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "arrays.h"
#include "efcnet/error.h"
#include "efcnet/files.h"
#include "efcnet/image.h"
#include "efcnet/inference_options.h"
#include "efcnet/metrics.h"
#include "efcnet/models.h"
#include "efcnet/pipeline.h"
#include "efcnet/runtime.h"
#include "efcnet/weights.h"
#include "evaluation.h"
#include "volumes.h"

namespace efcnet::python {
namespace {

namespace fs = std::filesystem;
using metrics::FusionMetrics;
using metrics::kMetricNames;

efcnet::ImageReadOptions image_read_options(std::int64_t max_image_pixels) {
  if (max_image_pixels <= 0) throw py::value_error("max_image_pixels must be positive");
  efcnet::ImageReadOptions options;
  options.max_pixels = max_image_pixels;
  return options;
}

// efcnet.Error, created in the module init.
PyObject* error_type = nullptr;

// Every library error (efcnet::Error and its kinds) becomes efcnet.Error with its one-line message.
void translate_library_errors(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const OutputExistsError& e) {
    PyErr_SetString(error_type, (e.path() + ": already exists (pass overwrite=True to replace it)").c_str());
  } catch (const Error& e) {
    PyErr_SetString(error_type, e.what());
  }
}

// Raises KeyboardInterrupt (or whatever a signal handler raised) between units of work.
void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// ---- Fuser ----

Precision parse_precision(const std::string& precision) {
  if (precision == "float32") return Precision::float32;
  if (precision == "bfloat16") return Precision::bfloat16;
  throw py::value_error("precision must be \"float32\" or \"bfloat16\", got \"" + precision + "\"");
}

class PyFuser {
 public:
  PyFuser(const std::optional<fs::path>& weights, const std::optional<fs::path>& seem_weights,
          const std::string& device, int threads, const std::string& precision, const std::optional<std::string>& model)
      : device_(device), precision_(precision) {
    if (threads < 0)
      throw py::value_error("threads must be 0 (leave LibTorch's setting) or positive, got " + std::to_string(threads));
    FuserOptions options;
    options.inference.precision = parse_precision(precision);
    options.device = device;
    const Model chosen = resolve_model(
        {model.value_or(""), weights ? weights->string() : "", seem_weights ? seem_weights->string() : ""},
        {"model=", "weights=", "seem_weights="});
    options.weights = chosen.network;
    options.seem_weights = chosen.seem;
    model_ = chosen.name;
    weights_ = options.weights;
    seem_weights_ = options.seem_weights;
    py::gil_scoped_release release;
    // A process setting, changed only because the caller asked for a number.
    if (threads > 0) set_threads(threads);
    fuser_ = std::make_unique<Fuser>(options);
  }

  py::array fuse(const py::array& anatomical, const py::array& functional, const std::string& order_name) const {
    const ChannelOrder order = parse_order(order_name);
    require_uint8(anatomical, "anatomical");
    require_uint8(functional, "functional");
    const bool stack = anatomical.ndim() == 3;
    if (anatomical.ndim() != 2 && !stack) {
      throw py::value_error("anatomical: expected a (H, W) image or an (N, H, W) stack of slices, got shape " +
                            shape_text(anatomical));
    }
    const int first = stack ? 1 : 0;  // the dimension where an image's rows are
    const bool grey = functional.ndim() == first + 2;
    const bool colour = functional.ndim() == first + 3 && functional.shape(first + 2) == 3;
    if (!grey && !colour) {
      throw py::value_error(std::string("functional: expected ") +
                            (stack ? "an (N, H, W) or (N, H, W, 3) stack" : "a (H, W) or (H, W, 3) image") +
                            " to go with anatomical " + shape_text(anatomical) + ", got shape " +
                            shape_text(functional));
    }
    const py::ssize_t slices = stack ? anatomical.shape(0) : 1;
    if (stack && functional.shape(0) != slices) {
      throw py::value_error("anatomical has " + std::to_string(slices) + " slices, functional " +
                            std::to_string(functional.shape(0)));
    }

    std::vector<py::ssize_t> shape(functional.shape(), functional.shape() + functional.ndim());
    py::array fused(py::dtype::of<std::uint8_t>(), shape);
    const py::ssize_t slice_bytes = stack ? fused.strides(0) : 0;
    for (py::ssize_t i = 0; i < slices; ++i) {
      if (i > 0) check_signals();
      const cv::Mat a = image_from_array(anatomical, first, stack ? i * anatomical.strides(0) : 0, order);
      const cv::Mat f = image_from_array(functional, first, stack ? i * functional.strides(0) : 0, order);
      try {
        check_fusion_inputs(a, f);
      } catch (const FusionError& e) {
        throw py::value_error(e.what());
      }
      cv::Mat result;
      {
        py::gil_scoped_release release;
        const std::lock_guard<std::mutex> one_pair_at_a_time(mutex_);
        result = fuser_->fuse_pair(a, f);
      }
      image_into_array(result, fused, i * slice_bytes, order);
    }
    return fused;
  }

  std::string repr() const {
    if (!model_.empty())
      return "efcnet.Fuser(model='" + model_ + "', device='" + device_ + "', precision='" + precision_ + "')";
    return "efcnet.Fuser(weights='" + weights_ + "', seem_weights='" + seem_weights_ + "', device='" + device_ +
           "', precision='" + precision_ + "')";
  }

  const std::string& weights() const { return weights_; }
  const std::string& seem_weights() const { return seem_weights_; }
  const std::string& model() const { return model_; }
  const std::string& device() const { return device_; }
  const std::string& precision() const { return precision_; }

 private:
  std::string model_, weights_, seem_weights_, device_, precision_;
  std::unique_ptr<Fuser> fuser_;
  mutable std::mutex mutex_;
};

// ---- metrics ----

// Runs `compute` on the converted images without the GIL; the library's refusal of an image
// (size, values) is a ValueError here, since the arrays are the caller's.
template <typename Compute>
auto without_gil(Compute compute) {
  py::gil_scoped_release release;
  try {
    return compute();
  } catch (const metrics::MetricsError& e) {
    throw py::value_error(e.what());  // a C++ exception: needs no GIL until pybind11 raises it
  }
}

py::dict evaluate(const py::array& anatomical, const py::array& functional, const py::array& fused,
                  const std::string& order_name) {
  const ChannelOrder order = parse_order(order_name);
  const cv::Mat a = metric_image(anatomical, "anatomical", order), b = metric_image(functional, "functional", order),
                f = metric_image(fused, "fused", order);
  return metrics_dict(without_gil([&] { return metrics::evaluate_fusion(a, b, f); }));
}

using SingleMetric = double (*)(const cv::Mat&);
using TripleMetric = double (*)(const cv::Mat&, const cv::Mat&, const cv::Mat&);

void def_single(py::module_& m, const char* name, SingleMetric metric, const std::string& summary) {
  const std::string doc =
      summary +
      "\n\nimage: uint8 (H, W) grey or (H, W, 3) colour in `order` (\"rgb\" or \"bgr\"; turned grey as "
      "efcnet.evaluate does), or float32/float64 (H, W) grey levels 0..255; at least 17x17.";
  m.def(
      name,
      [metric](const py::array& image, const std::string& order) {
        const cv::Mat f = metric_image(image, "image", parse_order(order));
        return without_gil([&] { return metric(f); });
      },
      py::arg("image"), py::arg("order") = "rgb", doc.c_str());
}

void def_triple(py::module_& m, const char* name, TripleMetric metric, const std::string& summary) {
  const std::string doc =
      summary + "\n\nanatomical (A), functional (B), fused (F): images of one size as efcnet.evaluate takes them.";
  m.def(
      name,
      [metric](const py::array& anatomical, const py::array& functional, const py::array& fused,
               const std::string& order_name) {
        const ChannelOrder order = parse_order(order_name);
        const cv::Mat a = metric_image(anatomical, "anatomical", order),
                      b = metric_image(functional, "functional", order), f = metric_image(fused, "fused", order);
        return without_gil([&] { return metric(a, b, f); });
      },
      py::arg("anatomical"), py::arg("functional"), py::arg("fused"), py::arg("order") = "rgb", doc.c_str());
}

// ---- state dicts ----

py::dtype numpy_dtype(const torch::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case torch::kFloat32: return py::dtype("float32");
    case torch::kFloat16: return py::dtype("float16");
    case torch::kFloat64: return py::dtype("float64");
    case torch::kInt64: return py::dtype("int64");
    case torch::kInt32: return py::dtype("int32");
    case torch::kBool: return py::dtype("bool");
    default: throw py::type_error("unexpected tensor dtype");  // read_state_dict yields only the above
  }
}

std::optional<torch::Dtype> torch_dtype(const py::dtype& dtype) {
  const std::pair<const char*, torch::Dtype> supported[] = {{"float32", torch::kFloat32}, {"float16", torch::kFloat16},
                                                            {"float64", torch::kFloat64}, {"int64", torch::kInt64},
                                                            {"int32", torch::kInt32},     {"bool", torch::kBool}};
  for (const auto& [name, torch_type] : supported) {
    if (dtype.equal(py::dtype(name))) return torch_type;
  }
  return std::nullopt;
}

py::dict load_state_dict(const fs::path& path) {
  StateDict dict;
  {
    py::gil_scoped_release release;
    dict = read_state_dict(path.string());
  }
  py::dict result;
  for (const auto& [key, value] : dict) {
    const torch::Tensor tensor = value.contiguous();
    py::array array(numpy_dtype(tensor), std::vector<py::ssize_t>(tensor.sizes().begin(), tensor.sizes().end()));
    if (tensor.nbytes() > 0) std::memcpy(array.mutable_data(), tensor.data_ptr(), tensor.nbytes());
    result[py::str(key)] = array;
  }
  return result;
}

void save_state_dict(const py::object& state_dict, const fs::path& path) {
  if (!py::hasattr(state_dict, "items")) {
    throw py::type_error("state_dict: expected a dict of str -> numpy.ndarray, got " +
                         py::str(py::type::of(state_dict).attr("__name__")).cast<std::string>());
  }
  StateDict dict;
  for (const py::handle item : state_dict.attr("items")()) {
    const auto entry = item.cast<py::tuple>();
    if (!py::isinstance<py::str>(entry[0])) {
      throw py::type_error("state_dict: keys must be str, got " + py::repr(entry[0]).cast<std::string>());
    }
    const std::string key = entry[0].cast<std::string>();
    if (!py::isinstance<py::array>(entry[1])) {
      throw py::type_error("state_dict['" + key + "']: expected a numpy.ndarray, got " +
                           py::str(py::type::of(entry[1]).attr("__name__")).cast<std::string>());
    }
    const auto array = py::array::ensure(entry[1], py::array::c_style);
    const std::optional<torch::Dtype> dtype = torch_dtype(array.dtype());
    if (!dtype) {
      throw py::type_error("state_dict['" + key + "']: dtype " + py::str(array.dtype()).cast<std::string>() +
                           " cannot be stored (float32, float16, float64, int64, int32 or bool)");
    }
    const std::vector<int64_t> sizes(array.shape(), array.shape() + array.ndim());
    dict.emplace_back(key, torch::from_blob(const_cast<void*>(array.data()), sizes, *dtype).clone());
  }
  py::gil_scoped_release release;
  efcnet::save_state_dict(dict, path.string());
}

// ---- images ----

PhantomKind parse_phantom_kind(const std::string& kind) {
  const std::map<std::string, PhantomKind> kinds{
      {"spect", PhantomKind::spect}, {"pet", PhantomKind::pet}, {"ct", PhantomKind::ct}, {"gfp", PhantomKind::gfp}};
  const auto found = kinds.find(kind);
  if (found == kinds.end())
    throw py::value_error("kind must be \"spect\", \"pet\", \"ct\" or \"gfp\", got \"" + kind + "\"");
  return found->second;
}

}  // namespace
}  // namespace efcnet::python

PYBIND11_MODULE(_efcnet, m) {
  namespace py = pybind11;
  using namespace efcnet::python;
  using efcnet::python::evaluate;
  m.doc() = "Compiled core of the efcnet package (import efcnet, not this).";
  m.attr("__version__") = EFCNET_VERSION;

  error_type = PyErr_NewExceptionWithDoc(
      "efcnet.Error",
      "A problem the efcnet library reports: an unreadable or refused file (the message names it), "
      "weights that do not fit, a device that is not there, too little memory for a pair.",
      PyExc_RuntimeError, nullptr);
  m.attr("Error") = py::handle(error_type);
  py::register_exception_translator(translate_library_errors);

  py::class_<PyFuser> fuser(
      m, "Fuser",
      R"(Fuser(weights=None, seem_weights=None, device="cpu", threads=0, precision="float32", model=None)

Loads the fusion network and its edge module (SEEM) once, prepared for inference, and fuses
any number of anatomical/functional pairs with them, exactly as `efcnet fuse` does (byte for byte
with as many threads; a few pixels can differ by a level between thread counts).

model: a shipped model by name (efcnet.models() lists them): a network and the SEEM it was
    trained with.
weights, seem_weights: instead of model, a network's and its SEEM's .pth state dicts (str or
    os.PathLike), both or neither: a network fuses as trained only with its own SEEM. When all
    three are None, the same lookup as the efcnet command: $EFCNET_WEIGHTS with
    $EFCNET_SEEM_WEIGHTS, else the shipped model "default" (in models/ beside the module,
    <python>/../share/efcnet/models, or the source tree's models/). One file alone, an unknown
    model or a file that does not exist raises efcnet.Error.
device: "cpu", "cuda" or "cuda:N".
threads: LibTorch's intra-op threads, a setting of the whole process. 0 (the default) leaves it
    as it is (LibTorch's default, which counts physical cores and may find fewer than the
    machine has, or what torch.set_num_threads or an earlier Fuser set); N > 0 sets it to N for
    the process, e.g. threads=os.cpu_count() for every core.
precision: "float32" (the default; within one grey level of the reference) or "bfloat16"
    (CPUs with AVX-512: faster, up to 3 levels off).

One Fuser fuses one pair at a time; calls from several threads wait for each other. The GIL is
released while the networks run. Fusion allocates several GiB of short-lived buffers per pair:
efcnet.keep_freed_memory_for_reuse() (an opt-in for the whole process) made it 2-3x faster here.)");
  fuser.attr("__module__") = "efcnet";  // before the methods, whose signatures name the class
  fuser
      .def(py::init<const std::optional<std::filesystem::path>&, const std::optional<std::filesystem::path>&,
                    const std::string&, int, const std::string&, const std::optional<std::string>&>(),
           py::arg("weights") = py::none(), py::arg("seem_weights") = py::none(), py::arg("device") = "cpu",
           py::arg("threads") = 0, py::arg("precision") = "float32", py::arg("model") = py::none())
      .def("fuse", &PyFuser::fuse, py::arg("anatomical"), py::arg("functional"), py::arg("order") = "rgb",
           R"(Fuses an anatomical image with a functional one; returns the fused uint8 array.

anatomical: uint8 (H, W), the grey anatomical image (MRI, CT, phase contrast).
functional: uint8 (H, W, 3) colour (SPECT, PET, GFP) or (H, W) grey (CT), same H and W.
    Colour: its Y plane (BGR2YUV) is fused and its chroma kept; the result is (H, W, 3) in the
    same channel order. Grey: fused directly; the result is (H, W).
    Stacks of slices work too: anatomical (N, H, W) with functional (N, H, W[, 3]) gives
    (N, H, W[, 3]), fused slice by slice (Ctrl-C stops between slices).
order: "rgb" (numpy, matplotlib, PIL) or "bgr" (OpenCV) for the colour arrays.

Any array layout is accepted (views, non-contiguous). Other dtypes raise TypeError (nothing is
converted), wrong shapes or sizes (both images at least 11x11) ValueError. A pair needing more
working memory than is available raises efcnet.Error.)")
      .def_property_readonly("weights", &PyFuser::weights, "Path of the fusion network's weights in use.")
      .def_property_readonly("seem_weights", &PyFuser::seem_weights, "Path of SEEM's weights in use.")
      .def_property_readonly("model", &PyFuser::model, "The shipped model's name; \"\" for files named by weights=.")
      .def_property_readonly("device", &PyFuser::device, "Where the networks run.")
      .def_property_readonly("precision", &PyFuser::precision, "\"float32\" or \"bfloat16\".")
      .def("__repr__", &PyFuser::repr);

  m.def("evaluate", &evaluate, py::arg("anatomical"), py::arg("functional"), py::arg("fused"), py::arg("order") = "rgb",
        R"(The twelve objective fusion metrics of one triple, as `efcnet evaluate` computes them.

Returns {"EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR", "CC", "MSE"} -> float,
in that order, with the conventions of the Python evaluator published with CDDFuse (CVPR 2023).
Each image: uint8 (H, W) grey, uint8 (H, W, 3) colour (turned grey as the evaluator does:
BGR2GRAY in float, rounded half to even; `order` says how the channels are held), or
float32/float64 (H, W) holding whole grey levels 0..255. All of one size, at least 17x17.
A constant image gives NaN for SCD and CC, F equal to both inputs an infinite PSNR.
TypeError for another dtype, ValueError for shapes, sizes or non-integral levels.)");

  def_volume_functions(m);
  def_evaluation_functions(m);

  py::module_ metrics = m.def_submodule("metrics", "One function per metric (see efcnet.evaluate).");
  using efcnet::metrics::kMetricMeanings;
  const auto summary = [](std::size_t i) {
    return std::string(efcnet::metrics::kMetricNames[i]) + ": " + kMetricMeanings[i] + ".";
  };
  def_single(metrics, "EN", efcnet::metrics::entropy, summary(0));
  def_single(metrics, "SD", efcnet::metrics::standard_deviation, summary(1));
  def_single(metrics, "SF", efcnet::metrics::spatial_frequency, summary(2));
  def_single(metrics, "AG", efcnet::metrics::average_gradient, summary(3));
  def_triple(metrics, "MI", efcnet::metrics::mutual_information, summary(4));
  def_triple(metrics, "SCD", efcnet::metrics::scd, summary(5) + " NaN for a constant image.");
  def_triple(metrics, "VIF", efcnet::metrics::vif, summary(6));
  def_triple(metrics, "Qabf", efcnet::metrics::qabf, summary(7));
  def_triple(metrics, "SSIM", efcnet::metrics::ssim, summary(8));
  def_triple(metrics, "PSNR", efcnet::metrics::psnr, summary(9) + " inf when F equals both inputs.");
  def_triple(metrics, "CC", efcnet::metrics::cc, summary(10) + " NaN for a constant image.");
  def_triple(metrics, "MSE", efcnet::metrics::mse, summary(11));

  m.def(
      "models",
      [] {
        py::list listed;
        for (const efcnet::Model& model : efcnet::shipped_models()) {
          listed.append(py::dict(py::arg("name") = model.name, py::arg("description") = model.description,
                                 py::arg("weights") = model.network, py::arg("seem_weights") = model.seem));
        }
        return listed;
      },
      R"(The shipped models, as `efcnet models` lists them: a list of {"name", "description",
"weights", "seem_weights"} (the network's and its SEEM's files). Fuser(model=name) loads one.)");
  m.def("load_state_dict", &load_state_dict, py::arg("path"),
        R"(Reads a PyTorch state dict (.pth, torch.save's zip format) as {key: numpy.ndarray}, in file order.

The pickle inside is parsed by efcnet's restricted unpickler, which accepts only what a state dict
holds (tensors of float32, float16, float64, int64, int32, bool) and refuses every other global,
callable and opcode: nothing in the file is ever run, and PyTorch is not needed. Dtypes are kept
(float16 stays float16); each array is its own C-contiguous copy, on the CPU whatever device the
file names. Any problem (missing, truncated, refused pickle, storage too short) raises
efcnet.Error naming the file.)");
  m.def("save_state_dict", &save_state_dict, py::arg("state_dict"), py::arg("path"),
        R"(Writes {str: numpy.ndarray} as a torch.save archive that torch.load(path, weights_only=True) reads.

Each array is stored in its own dtype (float32, float16, float64, int64, int32 or bool; others
raise TypeError), in the dict's order. The file is written atomically (temporary file + rename):
readers see the old file or the complete new one. Problems raise efcnet.Error naming the path.)");

  m.def(
      "keep_freed_memory_for_reuse", [] { efcnet::keep_freed_memory_for_reuse(); },
      R"(Opt-in, for the whole process and for good: glibc's malloc keeps freed memory for reuse.

The networks and the metrics allocate and free image-sized buffers all the time; by default glibc
maps large blocks afresh and returns freed memory to the system, and refilling those pages costs
more than the metrics themselves (efcnet.evaluate on a 256x256 triple: about 5x faster with
this, python/benchmarks/evaluate_bench.py). The price: memory is returned to the system only when
the process ends. The efcnet command does this for its own process; the package never does it
unless called.)");
  m.def(
      "read_anatomical",
      [](const std::filesystem::path& path, std::int64_t max_image_pixels) {
        const efcnet::ImageReadOptions options = image_read_options(max_image_pixels);
        cv::Mat image;
        {
          py::gil_scoped_release release;
          image = efcnet::read_anatomical(path.string(), options);
        }
        return array_from_image(image, ChannelOrder::rgb);
      },
      py::arg("path"), py::kw_only(), py::arg("max_image_pixels") = efcnet::kDefaultMaxImagePixels,
      "Reads an anatomical image as `efcnet fuse` does (OpenCV IMREAD_GRAYSCALE): uint8 (H, W).\n"
      "efcnet.Error names a missing, unreadable, truncated or undecodable file, one that is not a\n"
      "regular file (a FIFO or a device), and, before decoding it, one whose header declares more\n"
      "than max_image_pixels pixels (width x height; default 2**26) or more than memory can hold.");
  m.def(
      "read_functional",
      [](const std::filesystem::path& path, const std::string& order, std::int64_t max_image_pixels) {
        const ChannelOrder channel_order = parse_order(order);
        const efcnet::ImageReadOptions options = image_read_options(max_image_pixels);
        cv::Mat image;
        {
          py::gil_scoped_release release;
          image = efcnet::read_functional(path.string(), options);
        }
        return array_from_image(image, channel_order);
      },
      py::arg("path"), py::arg("order") = "rgb", py::kw_only(),
      py::arg("max_image_pixels") = efcnet::kDefaultMaxImagePixels,
      "Reads a functional image as `efcnet fuse` does: uint8 (H, W, 3) in `order` for a file that\n"
      "stores colour, (H, W) for a grey one. efcnet.Error names a file that cannot be read, with the\n"
      "refusals of read_anatomical (max_image_pixels included).");
  m.def(
      "phantom",
      [](int size, const std::string& kind, const std::string& order) {
        const ChannelOrder channel_order = parse_order(order);
        const efcnet::PhantomKind phantom_kind = parse_phantom_kind(kind);
        efcnet::Phantom phantom;
        {
          py::gil_scoped_release release;
          phantom = efcnet::make_phantom(size, phantom_kind);
        }
        return py::make_tuple(array_from_image(phantom.anatomical, channel_order),
                              array_from_image(phantom.functional, channel_order));
      },
      py::arg("size") = 256, py::arg("kind") = "spect", py::arg("order") = "rgb",
      "A synthetic, registered (anatomical, functional) pair of side `size` (>= 32), never patient data:\n"
      "kind \"spect\", \"pet\" or \"gfp\" (colour functional image) or \"ct\" (grey).");
}
