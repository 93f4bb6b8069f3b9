// libFuzzer target for the restricted unpickler: any input must either parse into records or be
// refused with PickleError; crashes, sanitizer reports, leaks and other exceptions are bugs.
// Whatever the reader accepts must survive the round trip through the writer whole: every key,
// dtype, device, shape, stride, offset and storage, and the rewritten pickle's bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "efcnet/weights_records.h"

namespace {

bool same_record(const efcnet::TensorRecord& a, const efcnet::TensorRecord& b) {
  return a.storage_key == b.storage_key && a.dtype == b.dtype && a.device == b.device &&
         a.storage_numel == b.storage_numel && a.sizes == b.sizes && a.strides == b.strides &&
         a.storage_offset == b.storage_offset && a.requires_grad == b.requires_grad;
}

bool same_dict(const efcnet::StateDictRecord& a, const efcnet::StateDictRecord& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    if (a.entries[i].first != b.entries[i].first || !same_record(a.entries[i].second, b.entries[i].second)) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view pickle(reinterpret_cast<const char*>(data), size);
  efcnet::StateDictRecord dict;
  try {
    dict = efcnet::read_state_dict_pickle(pickle, "fuzz-input");
  } catch (const efcnet::PickleError&) {
    return 0;  // refused: the expected outcome for most inputs
  }
  // Accepted: the writer must take it (the reader checked the same bounds), and reading the
  // rewritten pickle must give the same records and, written again, the same bytes.
  const std::string rewritten = efcnet::write_state_dict_pickle(dict);
  const efcnet::StateDictRecord reread = efcnet::read_state_dict_pickle(rewritten, "rewritten");
  if (!same_dict(dict, reread)) __builtin_trap();
  if (efcnet::write_state_dict_pickle(reread) != rewritten) __builtin_trap();
  return 0;
}
