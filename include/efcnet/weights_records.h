// The pickle inside a torch.save archive (data.pkl), read and written as data, never code.
//
// LibTorch-free on purpose: this is the code that touches untrusted bytes, so it is small enough to
// build under ASan/UBSan and to fuzz on its own. The unpickler understands only what a state dict
// needs (a dict or OrderedDict of `torch._utils._rebuild_tensor_v2` tensors whose storages arrive
// as persistent ids) and refuses every other global, callable and opcode. It yields neutral
// records; weights.h turns them into torch::Tensor.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "efcnet/error.h"

namespace efcnet {

// A refused or malformed pickle; the message names the source and the offending global or opcode.
class PickleError : public Error {
 public:
  using Error::Error;
};

// Element types of the storages a state dict may reference (`torch.<Name>Storage`).
enum class DType { Float32, Float16, Float64, Int64, Int32, Bool, UInt8 };

std::size_t itemsize(DType dtype);
// "float32", "float16", ... for messages.
const char* dtype_name(DType dtype);
// The storage class torch.save names for the dtype: "FloatStorage", "HalfStorage", ...
const char* storage_class_name(DType dtype);

// One tensor: a strided view into storage record `data/<storage_key>` of the archive.
struct TensorRecord {
  std::string storage_key;
  DType dtype = DType::Float32;
  std::string device = "cpu";  // the location tag the storage was saved from: "cpu" or "cuda:N"
  int64_t storage_numel = 0;   // elements in the whole storage (several tensors may share one)
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  int64_t storage_offset = 0;
  bool requires_grad = false;

  int64_t numel() const;
  // Elements of the storage the view reaches (offset + furthest element + 1; 0 for empty tensors).
  int64_t required_storage_numel() const;
};

// A state dict in file order (keys unique; a repeated key keeps its first position, last value).
struct StateDictRecord {
  std::vector<std::pair<std::string, TensorRecord>> entries;
};

// Parses data.pkl. `source` (the file it came from) prefixes every error message.
// Throws PickleError for anything that is not a state dict of tensors or violates a bound.
StateDictRecord read_state_dict_pickle(std::string_view pickle, const std::string& source);

// Protocol-2 pickle of a plain dict of `_rebuild_tensor_v2` tensors, laid out as torch.save writes
// it, so that `torch.load(path, weights_only=True)` reads the archive. Throws PickleError for a
// record that is not self-consistent (sizes vs strides, view outside its storage, ...).
std::string write_state_dict_pickle(const StateDictRecord& dict);

}  // namespace efcnet
