// DType facts and the consistency rules every TensorRecord must meet.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "efcnet/weights_records.h"
#include "pickle_detail.h"

namespace efcnet {
namespace {

// a * b, or false when it does not fit in int64.
bool checked_mul(int64_t a, int64_t b, int64_t& product) { return !__builtin_mul_overflow(a, b, &product); }

bool checked_add(int64_t a, int64_t b, int64_t& sum) { return !__builtin_add_overflow(a, b, &sum); }

// Product of `sizes` (all non-negative), or false on overflow.
bool checked_numel(const std::vector<int64_t>& sizes, int64_t& numel) {
  numel = 1;
  for (int64_t size : sizes) {
    if (size < 0 || !checked_mul(numel, size, numel)) return false;
  }
  return true;
}

// offset + sum((size - 1) * stride) + 1, or 0 for an empty view; false on overflow.
bool checked_extent(const TensorRecord& t, int64_t& extent) {
  int64_t numel = 0;
  if (!checked_numel(t.sizes, numel)) return false;
  if (numel == 0) {
    extent = 0;
    return true;
  }
  int64_t last = t.storage_offset;
  for (std::size_t d = 0; d < t.sizes.size(); ++d) {
    int64_t step = 0;
    if (!checked_mul(t.sizes[d] - 1, t.strides[d], step) || !checked_add(last, step, last)) {
      return false;
    }
  }
  return checked_add(last, 1, extent);
}

// Whether two index tuples of the view can reach the same storage element. Dimensions of size 1
// never step; the others, by increasing stride, must each step past everything the smaller ones
// reach (the layouts PyTorch's own tensors have). A zero stride is the extreme case: `expand`
// makes a 1-element storage look like billions of elements, which materialising would allocate.
std::string overlap_problem(const TensorRecord& t) {
  std::vector<std::size_t> dims;
  for (std::size_t d = 0; d < t.sizes.size(); ++d) {
    if (t.sizes[d] > 1) dims.push_back(d);
  }
  std::sort(dims.begin(), dims.end(), [&](std::size_t a, std::size_t b) { return t.strides[a] < t.strides[b]; });
  int64_t reach = 0;  // furthest element the smaller dimensions reach from the first one
  for (std::size_t d : dims) {
    if (t.strides[d] <= reach) {
      return t.strides[d] == 0 ? "dimension " + std::to_string(d) + " of size " + std::to_string(t.sizes[d]) +
                                     " has stride 0: its elements overlap (an expanded view is not stored)"
                               : "strides " + std::to_string(t.strides[d]) + " in dimension " + std::to_string(d) +
                                     " make elements overlap";
    }
    reach += (t.sizes[d] - 1) * t.strides[d];  // bounded by the view's extent, checked first
  }
  return "";
}

}  // namespace

std::size_t itemsize(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float16: return 2;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::Int32: return 4;
    case DType::Bool: return 1;
    case DType::UInt8: return 1;
  }
  throw PickleError("invalid DType");
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::Bool: return "bool";
    case DType::UInt8: return "uint8";
  }
  throw PickleError("invalid DType");
}

const char* storage_class_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "FloatStorage";
    case DType::Float16: return "HalfStorage";
    case DType::Float64: return "DoubleStorage";
    case DType::Int64: return "LongStorage";
    case DType::Int32: return "IntStorage";
    case DType::Bool: return "BoolStorage";
    case DType::UInt8: return "ByteStorage";
  }
  throw PickleError("invalid DType");
}

int64_t TensorRecord::numel() const {
  int64_t numel = 0;
  if (!checked_numel(sizes, numel)) throw PickleError("tensor sizes are negative or overflow int64");
  return numel;
}

int64_t TensorRecord::required_storage_numel() const {
  int64_t extent = 0;
  if (sizes.size() != strides.size() || storage_offset < 0 || !checked_extent(*this, extent)) {
    throw PickleError("tensor view is inconsistent (sizes, strides or offset)");
  }
  return extent;
}

namespace pickle_detail {

std::string tensor_record_problem(const TensorRecord& t) {
  if (t.sizes.size() != t.strides.size()) {
    return "sizes have " + std::to_string(t.sizes.size()) + " dimensions but strides have " +
           std::to_string(t.strides.size());
  }
  if (t.sizes.size() > kMaxDims) {
    return std::to_string(t.sizes.size()) + " dimensions (at most " + std::to_string(kMaxDims) + " supported)";
  }
  for (std::size_t d = 0; d < t.sizes.size(); ++d) {
    if (t.sizes[d] < 0) return "negative size " + std::to_string(t.sizes[d]);
    if (t.strides[d] < 0) return "negative stride " + std::to_string(t.strides[d]);
  }
  if (t.storage_offset < 0) return "negative storage offset " + std::to_string(t.storage_offset);
  int64_t storage_bytes = 0;
  if (t.storage_numel < 0 || !checked_mul(t.storage_numel, static_cast<int64_t>(itemsize(t.dtype)), storage_bytes)) {
    return "storage of " + std::to_string(t.storage_numel) + " " + dtype_name(t.dtype) +
           " elements is negative or overflows int64 bytes";
  }
  int64_t numel = 0;
  int64_t bytes = 0;
  if (!checked_numel(t.sizes, numel) || !checked_mul(numel, static_cast<int64_t>(itemsize(t.dtype)), bytes)) {
    return "element count overflows int64 bytes";
  }
  int64_t extent = 0;
  if (!checked_extent(t, extent)) return "view extent (offset + sizes x strides) overflows int64";
  if (extent > t.storage_numel) {
    return "view needs " + std::to_string(extent) + " elements but storage " + printable_quoted(t.storage_key) +
           " holds " + std::to_string(t.storage_numel);
  }
  return overlap_problem(t);
}

bool is_storage_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxStorageKeyBytes) return false;
  for (char c : key) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool is_storage_location(std::string_view location) {
  if (location == "cpu") return true;
  constexpr std::string_view kCuda = "cuda:";
  if (location.substr(0, kCuda.size()) != kCuda) return false;
  const std::string_view index = location.substr(kCuda.size());
  if (index.empty() || index.size() > 4) return false;
  for (char c : index) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string printable_quoted(std::string_view text) {
  constexpr std::size_t kMaxShown = 160;
  static const char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (text.size() > kMaxShown) out += "...";
  return out + "'";
}

}  // namespace pickle_detail
}  // namespace efcnet
