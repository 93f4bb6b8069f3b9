// LibTorch's errors at the library's boundary: one line, no backtrace (error.h).
#pragma once

#include <string>

#include <c10/util/Exception.h>

namespace efcnet {

// The first line of a c10::Error's message: what went wrong, without LibTorch's source location
// and backtrace.
inline std::string torch_message(const c10::Error& error) {
  const std::string message = error.what_without_backtrace();
  return message.substr(0, message.find('\n'));
}

}  // namespace efcnet
