#include "arrays.h"

#include <cstdint>
#include <cstring>

#include "efcnet/metrics.h"

namespace efcnet::python {

ChannelOrder parse_order(const std::string& order) {
  if (order == "rgb") return ChannelOrder::rgb;
  if (order == "bgr") return ChannelOrder::bgr;
  throw py::value_error("order must be \"rgb\" or \"bgr\", got \"" + order + "\"");
}

std::string shape_text(const py::array& array) {
  std::string text = "(";
  for (py::ssize_t i = 0; i < array.ndim(); ++i) text += (i ? ", " : "") + std::to_string(array.shape(i));
  return text + (array.ndim() == 1 ? ",)" : ")");
}

namespace {

std::string dtype_text(const py::array& array) { return py::str(array.dtype()).cast<std::string>(); }

// Element (r, c, ch) of an image that starts `offset` bytes into `array` at dimension `first`.
template <typename T>
cv::Mat copy_image(const py::array& array, int first, py::ssize_t offset, int channels, bool reverse, int type) {
  const auto rows = static_cast<int>(array.shape(first)), cols = static_cast<int>(array.shape(first + 1));
  const py::ssize_t row_stride = array.strides(first), col_stride = array.strides(first + 1);
  const py::ssize_t channel_stride = channels > 1 ? array.strides(first + 2) : 0;
  const auto* base = static_cast<const std::uint8_t*>(array.data()) + offset;
  cv::Mat image(rows, cols, type);
  for (int r = 0; r < rows; ++r) {
    T* out = image.ptr<T>(r);
    const std::uint8_t* row = base + r * row_stride;
    for (int c = 0; c < cols; ++c) {
      const std::uint8_t* pixel = row + c * col_stride;
      for (int ch = 0; ch < channels; ++ch) {
        const int source = reverse ? channels - 1 - ch : ch;
        std::memcpy(out + c * channels + ch, pixel + source * channel_stride, sizeof(T));
      }
    }
  }
  return image;
}

}  // namespace

void require_uint8(const py::array& array, const char* role) {
  if (!array.dtype().equal(py::dtype::of<std::uint8_t>())) {
    throw py::type_error(std::string(role) + ": expected a uint8 array, got dtype " + dtype_text(array) +
                         " (efcnet does not convert images; convert with .astype(numpy.uint8) if that is meant)");
  }
}

cv::Mat image_from_array(const py::array& array, int first, py::ssize_t offset, ChannelOrder order) {
  const bool colour = array.ndim() == first + 3;
  return colour ? copy_image<std::uint8_t>(array, first, offset, 3, order == ChannelOrder::rgb, CV_8UC3)
                : copy_image<std::uint8_t>(array, first, offset, 1, false, CV_8UC1);
}

void image_into_array(const cv::Mat& image, py::array& out, py::ssize_t offset, ChannelOrder order) {
  auto* base = static_cast<std::uint8_t*>(out.mutable_data()) + offset;
  const int channels = image.channels();
  const std::size_t row_bytes = static_cast<std::size_t>(image.cols) * channels;
  for (int r = 0; r < image.rows; ++r) {
    const std::uint8_t* row = image.ptr<std::uint8_t>(r);
    std::uint8_t* target = base + r * row_bytes;
    if (channels == 3 && order == ChannelOrder::rgb) {
      for (int c = 0; c < image.cols; ++c) {
        target[3 * c] = row[3 * c + 2];
        target[3 * c + 1] = row[3 * c + 1];
        target[3 * c + 2] = row[3 * c];
      }
    } else {
      std::memcpy(target, row, row_bytes);
    }
  }
}

py::array array_from_image(const cv::Mat& image, ChannelOrder order) {
  std::vector<py::ssize_t> shape{image.rows, image.cols};
  if (image.channels() == 3) shape.push_back(3);
  py::array out(py::dtype::of<std::uint8_t>(), shape);
  image_into_array(image, out, 0, order);
  return out;
}

cv::Mat metric_image(const py::array& array, const char* role, ChannelOrder order) {
  const py::dtype dtype = array.dtype();
  const bool is_uint8 = dtype.equal(py::dtype::of<std::uint8_t>());
  const bool is_float = dtype.equal(py::dtype::of<float>()) || dtype.equal(py::dtype::of<double>());
  if (!is_uint8 && !is_float) {
    throw py::type_error(std::string(role) +
                         ": expected a uint8 array (or float32/float64 grey levels 0..255), got dtype " +
                         dtype_text(array) + " (efcnet does not convert images)");
  }
  const bool grey = array.ndim() == 2;
  const bool colour = array.ndim() == 3 && array.shape(2) == 3;
  if (!grey && !(colour && is_uint8)) {
    throw py::value_error(std::string(role) + ": expected a (H, W) grey image" +
                          (is_uint8 ? " or an (H, W, 3) colour one" : " (float images must be grey)") + ", got shape " +
                          shape_text(array));
  }
  if (is_uint8) {
    const cv::Mat image = image_from_array(array, 0, 0, order);
    return colour ? metrics::to_grey(image) : image;
  }
  return dtype.equal(py::dtype::of<float>()) ? copy_image<float>(array, 0, 0, 1, false, CV_32FC1)
                                             : copy_image<double>(array, 0, 0, 1, false, CV_64FC1);
}

}  // namespace efcnet::python
