// Writes data.pkl the way torch.save does (pickle protocol 2 of a plain dict of tensors).
//
// The byte layout follows Python's pickler so that the output matches torch.save's for the same
// tensors: every new object is memoized (BINPUT), objects Python would reuse (the global
// functions and classes, the 'storage' tag, a storage's key and location) are fetched back with
// BINGET, fresh ones (keys, tuples) are written anew, and SETITEMS come in batches of 1000.
#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "efcnet/weights_records.h"
#include "pickle_detail.h"

namespace efcnet {
namespace {

constexpr std::size_t kSetItemsBatch = 1000;  // Python's pickle._BATCHSIZE

class PickleWriter {
 public:
  std::string write(const StateDictRecord& dict) {
    out_ += "\x80\x02";  // PROTO 2
    out_ += '}';         // EMPTY_DICT
    memoize();
    const auto& entries = dict.entries;
    for (std::size_t first = 0; first < entries.size(); first += kSetItemsBatch) {
      const std::size_t count = std::min(kSetItemsBatch, entries.size() - first);
      if (count > 1) out_ += '(';  // MARK
      for (std::size_t i = first; i < first + count; ++i) {
        put_string(entries[i].first);
        put_tensor(entries[i].second);
      }
      out_ += count > 1 ? 'u' : 's';  // SETITEMS : SETITEM
    }
    out_ += '.';  // STOP
    return std::move(out_);
  }

 private:
  void put_u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_ += static_cast<char>((v >> (8 * i)) & 0xff);
  }

  void memoize() {
    const uint32_t index = next_memo_++;
    if (index < 256) {
      out_ += 'q';  // BINPUT
      out_ += static_cast<char>(index);
    } else {
      out_ += 'r';  // LONG_BINPUT
      put_u32(index);
    }
  }

  void get(uint32_t index) {
    if (index < 256) {
      out_ += 'h';  // BINGET
      out_ += static_cast<char>(index);
    } else {
      out_ += 'j';  // LONG_BINGET
      put_u32(index);
    }
  }

  // Non-negative only: every integer in a validated record is.
  void put_int(int64_t v) {
    if (v <= 0xff) {
      out_ += 'K';  // BININT1
      out_ += static_cast<char>(v);
    } else if (v <= 0xffff) {
      out_ += 'M';  // BININT2
      out_ += static_cast<char>(v & 0xff);
      out_ += static_cast<char>(v >> 8);
    } else if (v <= 0x7fffffff) {
      out_ += 'J';  // BININT
      put_u32(static_cast<uint32_t>(v));
    } else {
      // LONG1 as Python encodes it: bit_length / 8 + 1 little-endian bytes (a clear sign bit).
      int bits = 0;
      for (uint64_t rest = static_cast<uint64_t>(v); rest != 0; rest >>= 1) ++bits;
      const int nbytes = bits / 8 + 1;
      out_ += '\x8a';
      out_ += static_cast<char>(nbytes);
      for (int i = 0; i < nbytes; ++i) {
        out_ += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
      }
    }
  }

  void put_string(const std::string& text) {
    out_ += 'X';  // BINUNICODE
    put_u32(static_cast<uint32_t>(text.size()));
    out_ += text;
    memoize();
  }

  // A string Python would pass as the same object each time: written once, then fetched.
  void put_shared_string(const std::string& text) {
    const auto found = shared_memo_.find(text);
    if (found != shared_memo_.end()) return get(found->second);
    shared_memo_.emplace(text, next_memo_);
    put_string(text);
  }

  void put_global(const std::string& module, const std::string& name) {
    const std::string line = module + "\n" + name + "\n";
    const auto found = global_memo_.find(line);
    if (found != global_memo_.end()) return get(found->second);
    out_ += 'c';  // GLOBAL
    out_ += line;
    global_memo_.emplace(line, next_memo_);
    memoize();
  }

  void put_int_tuple(const std::vector<int64_t>& values) {
    if (values.empty()) {
      out_ += ')';  // EMPTY_TUPLE (never memoized)
      return;
    }
    if (values.size() > 3) out_ += '(';  // MARK
    for (int64_t v : values) put_int(v);
    static const char kTupleN[] = {'\x85', '\x86', '\x87'};  // TUPLE1..3
    out_ += values.size() > 3 ? 't' : kTupleN[values.size() - 1];
    memoize();
  }

  // _rebuild_tensor_v2(persistent_load(('storage', torch.XStorage, key, location, numel)),
  //                    offset, sizes, strides, requires_grad, OrderedDict())
  void put_tensor(const TensorRecord& t) {
    put_global("torch._utils", "_rebuild_tensor_v2");
    out_ += '(';  // MARK: the six arguments
    out_ += '(';  // MARK: the persistent id
    put_shared_string("storage");
    put_global("torch", storage_class_name(t.dtype));
    put_shared_string(t.storage_key);
    put_shared_string(t.device);
    put_int(t.storage_numel);
    out_ += 't';  // TUPLE
    memoize();
    out_ += 'Q';  // BINPERSID
    put_int(t.storage_offset);
    put_int_tuple(t.sizes);
    put_int_tuple(t.strides);
    out_ += t.requires_grad ? '\x88' : '\x89';  // NEWTRUE : NEWFALSE
    put_global("collections", "OrderedDict");
    out_ += ')';  // EMPTY_TUPLE
    out_ += 'R';  // REDUCE: OrderedDict()
    memoize();
    out_ += 't';  // TUPLE
    memoize();
    out_ += 'R';  // REDUCE: _rebuild_tensor_v2(...)
    memoize();
  }

  std::string out_;
  uint32_t next_memo_ = 0;
  std::unordered_map<std::string, uint32_t> shared_memo_;
  std::unordered_map<std::string, uint32_t> global_memo_;
};

// The reader's rules, so that a written pickle always reads back.
void check_writable(const StateDictRecord& dict) {
  std::unordered_set<std::string> keys;
  std::unordered_map<std::string, std::tuple<DType, int64_t, std::string>> storages;
  for (const auto& [key, tensor] : dict.entries) {
    const std::string where = "cannot write state dict entry " + pickle_detail::printable_quoted(key) + ": ";
    if (!keys.insert(key).second) throw PickleError(where + "duplicate key");
    if (!pickle_detail::is_storage_key(tensor.storage_key)) {
      throw PickleError(where + "storage key " + pickle_detail::printable_quoted(tensor.storage_key) + " is not 1-" +
                        std::to_string(pickle_detail::kMaxStorageKeyBytes) + " letters, digits or underscores");
    }
    if (!pickle_detail::is_storage_location(tensor.device)) {
      throw PickleError(where + "device " + pickle_detail::printable_quoted(tensor.device) +
                        " is not 'cpu' or 'cuda:N'");
    }
    const auto storage = std::make_tuple(tensor.dtype, tensor.storage_numel, tensor.device);
    if (storages.emplace(tensor.storage_key, storage).first->second != storage) {
      throw PickleError(where + "storage " + pickle_detail::printable_quoted(tensor.storage_key) +
                        " is shared with a tensor of another type, size or device");
    }
    const std::string problem = pickle_detail::tensor_record_problem(tensor);
    if (!problem.empty()) throw PickleError(where + problem);
  }
}

}  // namespace

std::string write_state_dict_pickle(const StateDictRecord& dict) {
  check_writable(dict);
  return PickleWriter().write(dict);
}

}  // namespace efcnet
