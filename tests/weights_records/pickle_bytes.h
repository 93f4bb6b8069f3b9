// Builds pickle byte strings opcode by opcode, so tests can say exactly what the unpickler gets,
// including what torch.save never writes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace efcnet::testing {

class PickleBytes {
 public:
  PickleBytes& raw(const std::string& bytes) {
    bytes_ += bytes;
    return *this;
  }
  PickleBytes& op(char opcode) {
    bytes_ += opcode;
    return *this;
  }
  PickleBytes& proto(int version) { return op('\x80').byte(version); }
  PickleBytes& mark() { return op('('); }
  PickleBytes& stop() { return op('.'); }
  PickleBytes& empty_dict() { return op('}'); }
  PickleBytes& empty_tuple() { return op(')'); }
  PickleBytes& tuple() { return op('t'); }
  PickleBytes& reduce() { return op('R'); }
  PickleBytes& setitem() { return op('s'); }
  PickleBytes& setitems() { return op('u'); }
  PickleBytes& build() { return op('b'); }
  PickleBytes& binpersid() { return op('Q'); }
  PickleBytes& boolean(bool value) { return op(value ? '\x88' : '\x89'); }
  PickleBytes& put(uint8_t index) { return op('q').byte(index); }
  PickleBytes& get(uint8_t index) { return op('h').byte(index); }

  PickleBytes& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  PickleBytes& stack_global(const std::string& module, const std::string& name) {
    return short_unicode(module).short_unicode(name).op('\x93');
  }
  PickleBytes& unicode(const std::string& text) {  // BINUNICODE
    return op('X').le(text.size(), 4).raw(text);
  }
  PickleBytes& short_unicode(const std::string& text) {  // SHORT_BINUNICODE
    return op('\x8c').byte(static_cast<int>(text.size())).raw(text);
  }
  // BININT1 / BININT2 / BININT / LONG1, the smallest that holds `value`, as Python picks.
  PickleBytes& integer(int64_t value) {
    if (value >= 0 && value <= 0xff) return op('K').byte(static_cast<int>(value));
    if (value >= 0 && value <= 0xffff) return op('M').le(static_cast<uint64_t>(value), 2);
    if (value >= INT32_MIN && value <= INT32_MAX) return op('J').le(static_cast<uint64_t>(value), 4);
    return op('\x8a').byte(8).le(static_cast<uint64_t>(value), 8);
  }
  PickleBytes& int_tuple(const std::vector<int64_t>& values) {
    mark();
    for (int64_t v : values) integer(v);
    return tuple();
  }
  // ('storage', torch.<storage_class>, key, location, numel) BINPERSID
  PickleBytes& storage(const std::string& storage_class, const std::string& key, const std::string& location,
                       int64_t numel) {
    return mark()
        .unicode("storage")
        .global("torch", storage_class)
        .unicode(key)
        .unicode(location)
        .integer(numel)
        .tuple()
        .binpersid();
  }
  // torch._utils._rebuild_tensor_v2(<storage>, offset, sizes, strides, False, OrderedDict())
  PickleBytes& tensor(const std::string& storage_class, const std::string& key, const std::string& location,
                      int64_t numel, int64_t offset, const std::vector<int64_t>& sizes,
                      const std::vector<int64_t>& strides) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    storage(storage_class, key, location, numel).integer(offset).int_tuple(sizes).int_tuple(strides);
    return boolean(false).ordered_dict().tuple().reduce();
  }
  PickleBytes& float_tensor(const std::string& key, const std::vector<int64_t>& sizes,
                            const std::vector<int64_t>& strides, int64_t numel) {
    return tensor("FloatStorage", key, "cpu", numel, 0, sizes, strides);
  }
  PickleBytes& ordered_dict() { return global("collections", "OrderedDict").empty_tuple().reduce(); }

  PickleBytes& byte(int value) {
    bytes_ += static_cast<char>(value);
    return *this;
  }
  PickleBytes& le(uint64_t value, int nbytes) {
    for (int i = 0; i < nbytes; ++i) bytes_ += static_cast<char>((value >> (8 * i)) & 0xff);
    return *this;
  }

  const std::string& str() const { return bytes_; }

 private:
  std::string bytes_;
};

// PROTO 2, a plain dict {key: <the pickled value>}, STOP.
inline std::string single_entry_dict(const std::string& key, const PickleBytes& value) {
  return PickleBytes().proto(2).empty_dict().unicode(key).raw(value.str()).setitem().stop().str();
}

}  // namespace efcnet::testing
