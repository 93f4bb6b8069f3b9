// Where `efcnet` finds its weight files when the command line does not name them.
#pragma once

#include <string>
#include <vector>

namespace efcnet::cli {

// One weights file a command needs, and how the user can name it.
struct WeightsSpec {
  std::string flag;          // "--weights"
  std::string env;           // "EFCNET_WEIGHTS"
  std::string default_file;  // "efcnet_default.pth", looked up in default_weights_dirs()
  std::string what;          // "fusion network", for messages
};

// The two weight files of fusion.
inline const WeightsSpec kNetworkWeights{"--weights", "EFCNET_WEIGHTS", "efcnet_default.pth", "fusion network"};
inline const WeightsSpec kSeemWeights{"--seem-weights", "EFCNET_SEEM_WEIGHTS", "seem_default.pth", "SEEM"};

// Directories searched for shipped defaults, in order: <exe dir>/../share/efcnet/models,
// <exe dir>/../models, and the source tree's models/ (compile-time EFCNET_SOURCE_DIR).
std::vector<std::string> default_weights_dirs();

// The flag's value if given, else the environment variable, else the first shipped default
// found. A named file that does not exist, or no file at all, throws a one-line error that
// says how to pass the weights.
std::string resolve_weights(const WeightsSpec& spec, const std::string& flag_value);

// Text for --help: the lookup order for `spec`.
std::string weights_lookup_help(const WeightsSpec& spec);

}  // namespace efcnet::cli
