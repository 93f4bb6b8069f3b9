// numpy arrays <-> cv::Mat for the Python module: every image crosses as a copy, so any layout
// numpy can give (views, negative strides, Fortran order) is accepted, and nothing is converted
// silently: a dtype other than the ones a function documents is a TypeError, a shape that does
// not fit is a ValueError, both naming the argument.
#pragma once

#include <string>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <opencv2/core.hpp>

#include "efcnet/error.h"

namespace efcnet::python {

namespace py = pybind11;

// How colour arrays hold their channels. The library works in OpenCV's BGR.
enum class ChannelOrder { rgb, bgr };

// "rgb" or "bgr"; ValueError otherwise.
ChannelOrder parse_order(const std::string& order);

// "(256, 256, 3)", as numpy writes shapes.
std::string shape_text(const py::array& array);

// TypeError unless `array` holds uint8.
void require_uint8(const py::array& array, const char* role);

// A copy of the 2-D (rows, cols) or 3-D (rows, cols, 3) uint8 image that starts `offset` bytes
// into `array` at dimension `first` (0 for one image, 1 for a slice of a stack): CV_8UC1, or
// CV_8UC3 in BGR order.
cv::Mat image_from_array(const py::array& array, int first, py::ssize_t offset, ChannelOrder order);

// Writes CV_8UC1 / CV_8UC3 (BGR) `image` into the C-contiguous uint8 `out` at byte `offset`.
void image_into_array(const cv::Mat& image, py::array& out, py::ssize_t offset, ChannelOrder order);

// A new C-contiguous uint8 array (rows, cols) or (rows, cols, 3) holding `image`.
py::array array_from_image(const cv::Mat& image, ChannelOrder order);

// What the metrics accept (metrics.h), converted as the evaluator converts: uint8 (H, W), uint8
// (H, W, 3) turned grey by metrics::to_grey, or float32/float64 (H, W) holding whole grey levels
// (which the metrics check).
cv::Mat metric_image(const py::array& array, const char* role, ChannelOrder order);

// A library parse (parse_frame, parse_window, ...) of a keyword's text; its OptionError becomes the
// ValueError of that keyword.
template <class Parse>
auto parsed(const char* keyword, const std::string& text, Parse parse) {
  try {
    return parse(text);
  } catch (const OptionError& e) {
    throw py::value_error(std::string(keyword) + ": " + e.what());
  }
}

}  // namespace efcnet::python
