// The one base of every error the efcnet library throws (LibTorch-free).
//
// Each area has its own kind below Error (IoError, WeightsError, PickleError, FusionError,
// TrainingError, MetricsError, OptionError); catching efcnet::Error catches them all. Messages are
// one line that names the file (where there is one) and the problem, and speak of options, not of
// command-line flags: the command line adds its flag names. LibTorch's own errors (c10::Error,
// with their backtraces) are translated at the library's boundary and never reach a caller.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace efcnet {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An option or argument the library cannot use as given: an unknown device, a precision this CPU
// lacks, an out-of-range size.
class OptionError : public Error {
 public:
  using Error::Error;
};

// How the caller's user names an option, given its field name in the library's options structure
// ("frame", "output_format", "overwrite", ...): "--frame" on the command line, "frame" in Python.
// Library messages about an option name it this way; empty: the field name itself.
using OptionNamer = std::function<std::string(std::string_view field)>;

// `namer`'s name for `field`, or the field name when there is no namer.
inline std::string option_name(const OptionNamer& namer, std::string_view field) {
  return namer ? namer(field) : std::string(field);
}

}  // namespace efcnet
