// Restricted unpickler for torch.save's data.pkl.
//
// A pickle is a program for a stack machine; the standard unpickler will import and call whatever
// it names. This one runs only the opcodes a state dict uses and resolves only a handful of
// globals to built-in behaviour: nothing from the input is ever imported or called. Objects live
// in arenas owned by the parser and are referred to by index, so aliasing through the memo is
// cheap, reference cycles cannot leak, and what the parser creates is charged against a memory
// budget proportional to the input (a few bytes of opcodes can make a dict of a hundred bytes).
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "efcnet/weights_records.h"
#include "pickle_detail.h"

namespace efcnet {
namespace {

using pickle_detail::is_storage_key;
using pickle_detail::is_storage_location;
using pickle_detail::printable_quoted;

// Far above what a state dict needs (torch.save batches SETITEMS by 1000 and nests a few levels)
// and low enough that hostile input cannot exhaust memory.
constexpr std::size_t kMaxStackSize = 1 << 20;
constexpr std::size_t kMaxMarkDepth = 64;
constexpr std::size_t kMaxMemoEntries = 1 << 22;
constexpr std::size_t kMaxTensors = 1 << 17;  // tensors created, and entries of the state dict
constexpr std::size_t kMaxGlobalLineBytes = 256;
// The budget: kBudgetBaseBytes + kBudgetPerInputByte x the pickle's size. A torch.save pickle
// costs about 20 bytes of objects per byte (each tensor's tuples, storage, record and memo
// entries), so the base covers real state dicts (thousands of tensors, a pickle of a megabyte or
// so) and the proportional part keeps a 64 MB hostile pickle well under a gigabyte.
constexpr std::size_t kBudgetBaseBytes = std::size_t{16} << 20;
constexpr std::size_t kBudgetPerInputByte = 8;
// Rough heap cost of a hash-map node and of an allocation's bookkeeping.
constexpr std::size_t kNodeBytes = 48;
constexpr int kHighestProtocol = 5;

enum class Kind : uint8_t { None, Bool, Int, Float, String, Tuple, List, Dict, Global, StorageClass, Storage, Tensor };

// The kind with its article, for messages ("an int", "a tuple").
const char* described(Kind kind) {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "a bool";
    case Kind::Int: return "an int";
    case Kind::Float: return "a float";
    case Kind::String: return "a str";
    case Kind::Tuple: return "a tuple";
    case Kind::List: return "a list";
    case Kind::Dict: return "a dict";
    case Kind::Global: return "a global";
    case Kind::StorageClass: return "a storage class";
    case Kind::Storage: return "a storage";
    case Kind::Tensor: return "a tensor";
  }
  return "?";
}

// The only callables a pickle may name.
enum class Global : uint8_t { OrderedDict, RebuildTensorV2, RebuildParameter };

const char* global_name(Global global) {
  switch (global) {
    case Global::OrderedDict: return "collections.OrderedDict";
    case Global::RebuildTensorV2: return "torch._utils._rebuild_tensor_v2";
    case Global::RebuildParameter: return "torch._utils._rebuild_parameter";
  }
  return "?";
}

// A stack/memo slot. Scalars are held inline; everything else is an index into an arena of the
// parser (strings are interned, so equal strings share one index).
struct Value {
  Kind kind = Kind::None;
  int64_t integer = 0;  // Bool, Int; the Global; the DType of a StorageClass
  uint32_t index = 0;   // String, Tuple, List, Dict, Storage, Tensor
};

struct DictObject {
  bool ordered = false;                                // an OrderedDict: the only object BUILD may set state on
  std::vector<std::pair<uint32_t, Value>> items;       // (interned key, value) in insertion order
  std::unordered_map<uint32_t, std::size_t> position;  // interned key -> index in items
};

// What a persistent id ('storage', StorageClass, key, location, numel) describes.
struct StorageObject {
  uint32_t key = 0;       // interned
  uint32_t location = 0;  // interned
  DType dtype = DType::Float32;
  int64_t numel = 0;
};

class Unpickler {
 public:
  Unpickler(std::string_view input, const std::string& source)
      : input_(input), source_(source), budget_(kBudgetBaseBytes + kBudgetPerInputByte * input.size()) {}

  StateDictRecord run() {
    while (true) {
      op_offset_ = pos_;
      if (remaining() == 0) fail("truncated pickle: it ends before STOP");
      const uint8_t op = read_u8();
      if (op == '.') return finish();
      execute(op);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw PickleError(source_ + ": " + what + " (pickle byte " + std::to_string(op_offset_) + ")");
  }

  // ---- memory budget ----
  void charge(std::size_t bytes) {
    charged_ += bytes;
    if (charged_ > budget_) {
      fail("the pickle builds more than " + std::to_string(budget_ >> 20) + " MiB of objects from " +
           std::to_string(input_.size()) + " bytes (a state dict needs far less)");
    }
  }

  // ---- input ----
  std::size_t remaining() const { return input_.size() - pos_; }

  std::string_view read_bytes(uint64_t n) {
    if (n > remaining()) {
      fail("truncated pickle: " + std::to_string(n) + " bytes announced, " + std::to_string(remaining()) + " left");
    }
    const std::string_view bytes = input_.substr(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return bytes;
  }

  uint8_t read_u8() { return static_cast<uint8_t>(read_bytes(1)[0]); }

  uint64_t read_le(std::size_t n) {
    const std::string_view bytes = read_bytes(n);
    uint64_t value = 0;
    for (std::size_t i = n; i-- > 0;) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
    return value;
  }

  // One newline-terminated line of GLOBAL's text argument.
  std::string_view read_line() {
    const std::size_t end = input_.find('\n', pos_);
    if (end == std::string_view::npos) fail("truncated pickle: GLOBAL name has no newline");
    if (end - pos_ > kMaxGlobalLineBytes)
      fail("GLOBAL name longer than " + std::to_string(kMaxGlobalLineBytes) + " bytes");
    const std::string_view line = input_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return line;
  }

  // ---- stack ----
  // Objects pushed before the innermost MARK are out of reach until that mark is popped.
  std::size_t mark_floor() const { return marks_.empty() ? 0 : marks_.back(); }

  void push(const Value& value) {
    if (stack_.size() >= kMaxStackSize) fail("stack deeper than " + std::to_string(kMaxStackSize));
    stack_.push_back(value);
  }

  Value pop(const char* opcode) {
    if (stack_.size() <= mark_floor()) fail(std::string(opcode) + " on an empty stack");
    Value value = stack_.back();
    stack_.pop_back();
    return value;
  }

  Value& top(const char* opcode) {
    if (stack_.size() <= mark_floor()) fail(std::string(opcode) + " on an empty stack");
    return stack_.back();
  }

  // Removes and returns the objects above the innermost MARK.
  std::vector<Value> pop_mark(const char* opcode) {
    if (marks_.empty()) fail(std::string(opcode) + " without a MARK");
    const auto first = stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back());
    std::vector<Value> items(first, stack_.end());
    stack_.erase(first, stack_.end());
    marks_.pop_back();
    return items;
  }

  // ---- object construction ----
  Value make_int(int64_t v) { return Value{Kind::Int, v, 0}; }
  Value make_bool(bool v) { return Value{Kind::Bool, v ? 1 : 0, 0}; }

  Value make_string(std::string_view text) {
    const auto found = interned_.find(text);
    if (found != interned_.end()) return Value{Kind::String, 0, found->second};
    charge(sizeof(std::string) + text.size() + 2 * kNodeBytes);
    strings_.emplace_back(text);
    const auto index = static_cast<uint32_t>(strings_.size() - 1);
    interned_.emplace(strings_.back(), index);  // deque elements never move: the view stays valid
    return Value{Kind::String, 0, index};
  }

  Value make_sequence(Kind kind, std::vector<Value> items) {
    charge(sizeof(std::vector<Value>) + kNodeBytes + items.size() * sizeof(Value));
    sequences_.push_back(std::move(items));
    return Value{kind, 0, static_cast<uint32_t>(sequences_.size() - 1)};
  }

  Value make_dict(bool ordered) {
    charge(sizeof(DictObject) + kNodeBytes);
    dicts_.emplace_back();
    dicts_.back().ordered = ordered;
    return Value{Kind::Dict, 0, static_cast<uint32_t>(dicts_.size() - 1)};
  }

  Value make_tensor(TensorRecord tensor) {
    if (tensors_.size() >= kMaxTensors) fail("more than " + std::to_string(kMaxTensors) + " tensors");
    charge(sizeof(TensorRecord) + tensor.storage_key.size() + tensor.device.size() +
           2 * tensor.sizes.size() * sizeof(int64_t) + 3 * kNodeBytes);
    tensors_.push_back(std::move(tensor));
    return Value{Kind::Tensor, 0, static_cast<uint32_t>(tensors_.size() - 1)};
  }

  const std::string& string_of(const Value& v) const { return strings_[v.index]; }
  const std::vector<Value>& sequence_of(const Value& v) const { return sequences_[v.index]; }

  DictObject& dict_for(const Value& target, const char* opcode) {
    if (target.kind != Kind::Dict) {
      fail(std::string(opcode) + " on " + described(target.kind) + ", not a dict");
    }
    return dicts_[target.index];
  }

  void set_item(DictObject& dict, const Value& key, const Value& value, const char* opcode) {
    if (key.kind != Kind::String) {
      fail(std::string(opcode) + ": dict key is " + described(key.kind) + ", not a str");
    }
    const auto [slot, inserted] = dict.position.emplace(key.index, dict.items.size());
    if (inserted) {
      charge(sizeof(dict.items[0]) + kNodeBytes);
      dict.items.emplace_back(key.index, value);
    } else {
      dict.items[slot->second].second = value;  // Python keeps the first position, last value
    }
  }

  void append(const Value& target, const Value& item, const char* opcode) {
    if (target.kind != Kind::List) {
      fail(std::string(opcode) + " on " + described(target.kind) + ", not a list");
    }
    charge(sizeof(Value));
    sequences_[target.index].push_back(item);
  }

  // ---- memo ----
  void memo_put(uint64_t key, const char* opcode) {
    const Value& value = top(opcode);
    if (memo_.size() >= kMaxMemoEntries && memo_.find(key) == memo_.end()) {
      fail("memo larger than " + std::to_string(kMaxMemoEntries) + " entries");
    }
    if (memo_.find(key) == memo_.end()) charge(kNodeBytes);
    memo_[key] = value;
  }

  void memo_get(uint64_t key) {
    const auto found = memo_.find(key);
    if (found == memo_.end()) fail("BINGET of memo key " + std::to_string(key) + " that was never put");
    push(found->second);
  }

  // ---- globals ----
  Value resolve_global(std::string_view module, std::string_view name) {
    if (module.size() > kMaxGlobalLineBytes || name.size() > kMaxGlobalLineBytes) {
      fail("global name longer than " + std::to_string(kMaxGlobalLineBytes) + " bytes");
    }
    const std::string dotted = std::string(module) + "." + std::string(name);
    if (dotted == "collections.OrderedDict") return Value{Kind::Global, int64_t(Global::OrderedDict), 0};
    if (dotted == "torch._utils._rebuild_tensor_v2") {
      return Value{Kind::Global, int64_t(Global::RebuildTensorV2), 0};
    }
    if (dotted == "torch._utils._rebuild_parameter") {
      return Value{Kind::Global, int64_t(Global::RebuildParameter), 0};
    }
    if (module == "torch") {
      for (DType dtype :
           {DType::Float32, DType::Float16, DType::Float64, DType::Int64, DType::Int32, DType::Bool, DType::UInt8}) {
        if (name == storage_class_name(dtype)) return Value{Kind::StorageClass, int64_t(dtype), 0};
      }
      constexpr std::string_view kStorage = "Storage";
      if (name.size() > kStorage.size() && name.substr(name.size() - kStorage.size()) == kStorage) {
        fail("unsupported storage dtype " + printable_quoted(dotted) +
             " (float32, float16, float64, int64, int32, bool and uint8 are supported)");
      }
    }
    fail("refused global " + printable_quoted(dotted) + ": a state dict may reference only tensors and dicts");
  }

  // ---- calls ----
  // The empty OrderedDict of _rebuild_tensor_v2's backward_hooks (and of its optional metadata).
  bool is_empty_dict(const Value& v) const { return v.kind == Kind::Dict && dicts_[v.index].items.empty(); }

  std::vector<int64_t> int_tuple(const Value& v, const char* what) {
    if (v.kind != Kind::Tuple)
      fail(std::string("_rebuild_tensor_v2: ") + what + " is " + described(v.kind) + ", not a tuple");
    const std::vector<Value>& items = sequence_of(v);
    if (items.size() > pickle_detail::kMaxDims) {
      fail(std::string("_rebuild_tensor_v2: ") + what + " has " + std::to_string(items.size()) +
           " dimensions (at most " + std::to_string(pickle_detail::kMaxDims) + " supported)");
    }
    std::vector<int64_t> ints;
    ints.reserve(items.size());
    for (const Value& item : items) {
      if (item.kind != Kind::Int) fail(std::string("_rebuild_tensor_v2: ") + what + " holds " + described(item.kind));
      ints.push_back(item.integer);
    }
    return ints;
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
  Value rebuild_tensor(const std::vector<Value>& args) {
    if (args.size() != 6 && args.size() != 7) {
      fail("_rebuild_tensor_v2 called with " + std::to_string(args.size()) + " arguments, expected 6 or 7");
    }
    if (args[0].kind != Kind::Storage) {
      fail(std::string("_rebuild_tensor_v2: storage argument is ") + described(args[0].kind) +
           ", not a persistent storage");
    }
    if (args[1].kind != Kind::Int) fail("_rebuild_tensor_v2: storage offset is not an int");
    if (args[4].kind != Kind::Bool) fail("_rebuild_tensor_v2: requires_grad is not a bool");
    if (!is_empty_dict(args[5])) fail("_rebuild_tensor_v2: backward hooks are not an empty dict");
    if (args.size() == 7 && !is_empty_dict(args[6])) {
      fail("_rebuild_tensor_v2: tensor metadata is not an empty dict");
    }
    const StorageObject& storage = storages_[args[0].index];
    TensorRecord tensor;
    tensor.storage_key = strings_[storage.key];
    tensor.dtype = storage.dtype;
    tensor.device = strings_[storage.location];
    tensor.storage_numel = storage.numel;
    tensor.storage_offset = args[1].integer;
    tensor.sizes = int_tuple(args[2], "size");
    tensor.strides = int_tuple(args[3], "stride");
    tensor.requires_grad = args[4].integer != 0;
    const std::string problem = pickle_detail::tensor_record_problem(tensor);
    if (!problem.empty()) fail("_rebuild_tensor_v2: " + problem);
    return make_tensor(std::move(tensor));
  }

  // _rebuild_parameter(data, requires_grad, backward_hooks)
  Value rebuild_parameter(const std::vector<Value>& args) {
    if (args.size() != 3) {
      fail("_rebuild_parameter called with " + std::to_string(args.size()) + " arguments, expected 3");
    }
    if (args[0].kind != Kind::Tensor) fail("_rebuild_parameter: data is not a tensor");
    if (args[1].kind != Kind::Bool) fail("_rebuild_parameter: requires_grad is not a bool");
    if (!is_empty_dict(args[2])) fail("_rebuild_parameter: backward hooks are not an empty dict");
    TensorRecord parameter = tensors_[args[0].index];
    parameter.requires_grad = args[1].integer != 0;
    return make_tensor(std::move(parameter));
  }

  // REDUCE: callable(*args).
  Value call(const Value& callable, const Value& args) {
    if (callable.kind == Kind::StorageClass) {
      fail(std::string("REDUCE of torch.") + storage_class_name(DType(callable.integer)) +
           " is not allowed (storages come only from persistent ids)");
    }
    if (callable.kind != Kind::Global) {
      fail(std::string("REDUCE of ") + described(callable.kind) + ", which is not an allowed callable");
    }
    if (args.kind != Kind::Tuple) {
      fail(std::string("REDUCE: arguments are ") + described(args.kind) + ", not a tuple");
    }
    const std::vector<Value>& arguments = sequence_of(args);  // nothing below adds sequences
    switch (Global(callable.integer)) {
      case Global::OrderedDict:
        if (!arguments.empty()) fail("REDUCE of collections.OrderedDict with arguments");
        return make_dict(/*ordered=*/true);
      case Global::RebuildTensorV2: return rebuild_tensor(arguments);
      case Global::RebuildParameter: return rebuild_parameter(arguments);
    }
    fail("REDUCE of an unknown global");
  }

  // NEWOBJ: cls.__new__(cls, *args); the only class a state dict holds is an empty OrderedDict.
  Value new_object(const Value& cls, const Value& args) {
    if (cls.kind != Kind::Global || Global(cls.integer) != Global::OrderedDict) {
      fail(std::string("NEWOBJ of ") +
           (cls.kind == Kind::Global ? global_name(Global(cls.integer)) : described(cls.kind)) + " is not allowed");
    }
    if (args.kind != Kind::Tuple || !sequence_of(args).empty()) {
      fail("NEWOBJ of collections.OrderedDict with arguments");
    }
    return make_dict(/*ordered=*/true);
  }

  // BINPERSID: ('storage', torch.<Type>Storage, key, location, numel)
  Value persistent_load(const Value& pid) {
    if (pid.kind != Kind::Tuple) fail(std::string("persistent id is ") + described(pid.kind) + ", not a tuple");
    const std::vector<Value>& f = sequence_of(pid);
    if (f.size() != 5 || f[0].kind != Kind::String || string_of(f[0]) != "storage") {
      fail("persistent id is not ('storage', type, key, location, numel)");
    }
    if (f[1].kind != Kind::StorageClass) fail("persistent id: storage type is not a torch storage class");
    if (f[2].kind != Kind::String || !is_storage_key(string_of(f[2]))) {
      fail("persistent id: storage key is not 1-" + std::to_string(pickle_detail::kMaxStorageKeyBytes) +
           " letters, digits or underscores");
    }
    if (f[3].kind != Kind::String || !is_storage_location(string_of(f[3]))) {
      fail("persistent id: storage location is not 'cpu' or 'cuda:N'" +
           (f[3].kind == Kind::String ? ": " + printable_quoted(string_of(f[3])) : std::string()));
    }
    if (f[4].kind != Kind::Int || f[4].integer < 0) fail("persistent id: numel is not a non-negative int");
    StorageObject storage{f[2].index, f[3].index, DType(f[1].integer), f[4].integer};
    int64_t bytes = 0;
    if (__builtin_mul_overflow(storage.numel, int64_t(itemsize(storage.dtype)), &bytes)) {
      fail("persistent id: storage of " + std::to_string(storage.numel) + " elements overflows int64 bytes");
    }
    // Tensors sharing a storage must agree on what it is.
    const auto [first, inserted] = storage_by_key_.emplace(storage.key, storages_.size());
    if (!inserted) {
      const StorageObject& seen = storages_[first->second];
      if (seen.dtype != storage.dtype || seen.numel != storage.numel || seen.location != storage.location) {
        fail("storage " + printable_quoted(string_of(f[2])) +
             " is described twice with different type, size or location");
      }
    }
    charge(sizeof(StorageObject) + kNodeBytes);
    storages_.push_back(storage);
    return Value{Kind::Storage, 0, static_cast<uint32_t>(storages_.size() - 1)};
  }

  // BUILD on an OrderedDict sets its instance attributes; state dicts carry `_metadata` (per-module
  // version numbers), which tensors do not need.
  void build(const Value& state, const Value& target) {
    if (target.kind != Kind::Dict || !dicts_[target.index].ordered) {
      fail(std::string("BUILD on ") + described(target.kind) + " (only an OrderedDict's _metadata is accepted)");
    }
    if (state.kind != Kind::Dict) fail(std::string("BUILD state is ") + described(state.kind) + ", not a dict");
    for (const auto& [key, value] : dicts_[state.index].items) {
      if (strings_[key] != "_metadata")
        fail("BUILD sets attribute " + printable_quoted(strings_[key]) + " (only _metadata is accepted)");
    }
  }

  // ---- opcodes ----
  void execute(uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        const int protocol = read_u8();
        if (protocol > kHighestProtocol) fail("unsupported pickle protocol " + std::to_string(protocol));
        return;
      }
      case 0x95:  // FRAME: a length prefix for buffering; the content is ordinary opcodes
        if (read_le(8) > remaining()) fail("truncated pickle: FRAME longer than the input");
        return;
      case '(':  // MARK
        if (marks_.size() >= kMaxMarkDepth) fail("MARKs nested deeper than " + std::to_string(kMaxMarkDepth));
        marks_.push_back(stack_.size());
        return;
      case 'N': return push(Value{});                                                            // NONE
      case 0x88: return push(make_bool(true));                                                   // NEWTRUE
      case 0x89: return push(make_bool(false));                                                  // NEWFALSE
      case 'K': return push(make_int(read_u8()));                                                // BININT1
      case 'M': return push(make_int(static_cast<int64_t>(read_le(2))));                         // BININT2
      case 'J': return push(make_int(static_cast<int32_t>(static_cast<uint32_t>(read_le(4)))));  // BININT
      case 0x8a: return push(make_int(read_long1()));                                            // LONG1
      case 'G':  // BINFLOAT: nothing in a state dict consumes a float, so its value is not kept
        read_bytes(8);
        return push(Value{Kind::Float});
      case 0x8c: return push(make_string(read_bytes(read_u8())));   // SHORT_BINUNICODE
      case 'X': return push(make_string(read_bytes(read_le(4))));   // BINUNICODE
      case 0x8d: return push(make_string(read_bytes(read_le(8))));  // BINUNICODE8
      case ')': return push(make_sequence(Kind::Tuple, {}));        // EMPTY_TUPLE
      case 0x85:                                                    // TUPLE1
      case 0x86:                                                    // TUPLE2
      case 0x87: {                                                  // TUPLE3
        std::vector<Value> items(op - 0x85 + 1);
        for (std::size_t i = items.size(); i-- > 0;) items[i] = pop("TUPLE1/2/3");
        return push(make_sequence(Kind::Tuple, std::move(items)));
      }
      case 't': return push(make_sequence(Kind::Tuple, pop_mark("TUPLE")));  // TUPLE
      case ']': return push(make_sequence(Kind::List, {}));                  // EMPTY_LIST
      case 'a': {                                                            // APPEND
        const Value item = pop("APPEND");
        return append(top("APPEND"), item, "APPEND");
      }
      case 'e': {  // APPENDS
        const std::vector<Value> items = pop_mark("APPENDS");
        const Value target = top("APPENDS");
        for (const Value& item : items) append(target, item, "APPENDS");
        return;
      }
      case '}': return push(make_dict(/*ordered=*/false));  // EMPTY_DICT
      case 's': {                                           // SETITEM
        const Value value = pop("SETITEM");
        const Value key = pop("SETITEM");
        return set_item(dict_for(top("SETITEM"), "SETITEM"), key, value, "SETITEM");
      }
      case 'u': {  // SETITEMS
        const std::vector<Value> items = pop_mark("SETITEMS");
        if (items.size() % 2 != 0) fail("SETITEMS with an odd number of keys and values");
        DictObject& dict = dict_for(top("SETITEMS"), "SETITEMS");
        for (std::size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], items[i + 1], "SETITEMS");
        return;
      }
      case 'q': return memo_put(read_u8(), "BINPUT");
      case 'r': return memo_put(read_le(4), "LONG_BINPUT");
      case 0x94: return memo_put(memo_.size(), "MEMOIZE");
      case 'h': return memo_get(read_u8());   // BINGET
      case 'j': return memo_get(read_le(4));  // LONG_BINGET
      case 'c': {                             // GLOBAL
        const std::string_view module = read_line();
        const std::string_view name = read_line();
        return push(resolve_global(module, name));
      }
      case 0x93: {  // STACK_GLOBAL
        const Value name = pop("STACK_GLOBAL");
        const Value module = pop("STACK_GLOBAL");
        if (module.kind != Kind::String || name.kind != Kind::String) fail("STACK_GLOBAL of a non-string name");
        return push(resolve_global(string_of(module), string_of(name)));
      }
      case 'R': {  // REDUCE
        const Value args = pop("REDUCE");
        const Value callable = pop("REDUCE");
        return push(call(callable, args));
      }
      case 0x81: {  // NEWOBJ
        const Value args = pop("NEWOBJ");
        const Value cls = pop("NEWOBJ");
        return push(new_object(cls, args));
      }
      case 'Q': return push(persistent_load(pop("BINPERSID")));  // BINPERSID
      case 'b': {                                                // BUILD
        const Value state = pop("BUILD");
        return build(state, top("BUILD"));
      }
      default: {
        static const char kHex[] = "0123456789abcdef";
        std::string name = "0x";
        name += kHex[op >> 4];
        name += kHex[op & 0xf];
        if (op >= 0x20 && op < 0x7f) name += " " + printable_quoted(std::string(1, char(op)));
        fail("unsupported pickle opcode " + name);
      }
    }
  }

  // LONG1: a little-endian two's-complement integer of n bytes; only int64 values are accepted.
  int64_t read_long1() {
    const std::size_t n = read_u8();
    if (n > 8) fail("LONG1 integer of " + std::to_string(n) + " bytes does not fit in int64");
    if (n == 0) return 0;
    uint64_t bits = read_le(n);
    if (n < 8 && (bits >> (8 * n - 1)) & 1) bits |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(bits);
  }

  StateDictRecord finish() {
    if (!marks_.empty()) fail("STOP inside an unclosed MARK");
    if (stack_.size() != 1) fail("STOP with " + std::to_string(stack_.size()) + " objects on the stack, expected 1");
    const Value& root = stack_.back();
    if (root.kind != Kind::Dict) fail(std::string("the pickle holds ") + described(root.kind) + ", not a state dict");
    if (dicts_[root.index].items.size() > kMaxTensors) {
      fail("state dict of more than " + std::to_string(kMaxTensors) + " entries");
    }
    StateDictRecord dict;
    dict.entries.reserve(dicts_[root.index].items.size());
    for (const auto& [key, value] : dicts_[root.index].items) {
      if (value.kind != Kind::Tensor) {
        fail("entry " + printable_quoted(strings_[key]) + " is " + described(value.kind) + ", not a tensor");
      }
      dict.entries.emplace_back(strings_[key], tensors_[value.index]);
    }
    return dict;
  }

  std::string_view input_;
  const std::string& source_;
  std::size_t pos_ = 0;
  std::size_t op_offset_ = 0;
  const std::size_t budget_;
  std::size_t charged_ = 0;

  std::vector<Value> stack_;
  std::vector<std::size_t> marks_;  // stack sizes at each open MARK
  std::unordered_map<uint64_t, Value> memo_;

  // Arenas are deques: they grow without copying what they hold, so memory stays near the charge.
  std::deque<std::string> strings_;
  std::unordered_map<std::string_view, uint32_t> interned_;
  std::deque<std::vector<Value>> sequences_;  // tuples and lists
  std::deque<DictObject> dicts_;
  std::deque<StorageObject> storages_;
  std::unordered_map<uint32_t, std::size_t> storage_by_key_;  // interned key -> first description
  std::deque<TensorRecord> tensors_;
};

}  // namespace

StateDictRecord read_state_dict_pickle(std::string_view pickle, const std::string& source) {
  return Unpickler(pickle, source).run();
}

}  // namespace efcnet
