// Where a program finds its weight files when its user does not name them (LibTorch-free): the
// `efcnet` commands and the Python module share this lookup.
#pragma once

#include <string>
#include <vector>

namespace efcnet {

// One weights file a program needs.
struct WeightsSpec {
  std::string env;           // "EFCNET_WEIGHTS"
  std::string default_file;  // "efcnet_default.pth", looked up in default_weights_dirs()
  std::string what;          // "fusion network", for messages
};

inline const WeightsSpec kNetworkWeights{"EFCNET_WEIGHTS", "efcnet_default.pth", "fusion network"};
inline const WeightsSpec kSeemWeights{"EFCNET_SEEM_WEIGHTS", "seem_default.pth", "SEEM"};

// Directories searched for shipped defaults, in order: <exe dir>/../share/efcnet/models,
// <exe dir>/../models (exe: the running program, /proc/self/exe), models/ beside the shared object
// this code is linked into when that is not the program (the Python module, which installs its
// defaults there), and the source tree's models/ (compile-time EFCNET_SOURCE_DIR).
std::vector<std::string> default_weights_dirs();

// `given` if not empty, else the environment variable, else the first shipped default found.
// `argument` is how the caller's user names the file ("--weights" for the CLI, "weights=" in
// Python); messages name it. A named file that does not exist, or no file at all, throws IoError
// (image.h), one line saying how to pass the weights.
std::string resolve_weights(const WeightsSpec& spec, const std::string& given, const std::string& argument);

}  // namespace efcnet
