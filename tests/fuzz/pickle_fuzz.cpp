// libFuzzer target for the restricted unpickler: any input must either parse into records or be
// refused with PickleError; crashes, sanitizer reports, leaks and other exceptions are bugs.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "efcnet/weights_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view pickle(reinterpret_cast<const char*>(data), size);
  try {
    const efcnet::StateDictRecord dict = efcnet::read_state_dict_pickle(pickle, "fuzz-input");
    // Whatever the reader accepts, the writer must write and the reader read back.
    const std::string rewritten = efcnet::write_state_dict_pickle(dict);
    if (efcnet::read_state_dict_pickle(rewritten, "rewritten").entries.size() !=
        dict.entries.size()) {
      __builtin_trap();
    }
  } catch (const efcnet::PickleError&) {
  }
  return 0;
}
