// Named models, and where a program finds weight files its user does not name (LibTorch-free): the
// `efcnet` commands and the Python module share this lookup.
//
// A model is a fusion network and the SEEM it was trained with. The network learnt to read that
// SEEM's map, so the two always travel together: a model is chosen by name, or by naming both files;
// one file alone is refused. Shipped models live in model_dirs(): `efcnet_NAME.pth` and
// `seem_NAME.pth`, listed with a one-line description in `models.tsv` (NAME, a tab, the description).
#pragma once

#include <string>
#include <vector>

namespace efcnet {

// One weights file a program needs.
struct WeightsSpec {
  std::string env;           // "EFCNET_WEIGHTS"
  std::string default_file;  // "efcnet_default.pth", looked up in model_dirs()
  std::string what;          // "fusion network", for messages
};

inline const WeightsSpec kNetworkWeights{"EFCNET_WEIGHTS", "efcnet_default.pth", "fusion network"};
inline const WeightsSpec kSeemWeights{"EFCNET_SEEM_WEIGHTS", "seem_default.pth", "SEEM"};

inline constexpr const char* kDefaultModel = "default";
inline constexpr const char* kModelIndex = "models.tsv";
inline constexpr const char* kModelsDirEnv = "EFCNET_MODELS_DIR";

// Directories searched for shipped models, in order: $EFCNET_MODELS_DIR when set (the user's own
// models, laid out as the shipped ones), <exe dir>/../share/efcnet/models,
// <exe dir>/../models (exe: the running program, /proc/self/exe), models/ beside the shared object
// this code is linked into when that is not the program (the Python module, which installs its
// models there), and the source tree's models/ (compile-time EFCNET_SOURCE_DIR).
std::vector<std::string> model_dirs();

// A network and its SEEM.
struct Model {
  std::string name;         // "default", "paper"; empty for files the user named
  std::string description;  // one line from models.tsv; empty for files the user named
  std::string network;      // path of the network's .pth
  std::string seem;         // path of the SEEM's .pth
};

// The shipped models: every models.tsv entry whose two files are beside it, the first directory of
// model_dirs() that has a name winning. A malformed models.tsv throws IoError naming it.
std::vector<Model> shipped_models();

// What a user gave to choose a model (each empty when not given), and how they name each choice in
// messages: "--model" on the command line, "model=" in Python.
struct ModelChoice {
  std::string model, weights, seem_weights;
};
struct ModelArgumentNames {
  std::string model = "--model", weights = "--weights", seem_weights = "--seem-weights";
};

// The model to use: `model` by name; else `weights` and `seem_weights` together; else
// $EFCNET_WEIGHTS and $EFCNET_SEEM_WEIGHTS together; else the shipped "default". A name with files,
// one file without the other, an unknown name or a missing file throws IoError (files.h), one line
// saying what to give instead.
Model resolve_model(const ModelChoice& choice, const ModelArgumentNames& names = {});

// One weights file alone, for a command that needs only one (train's SEEM under a new network): `given`
// if not empty, else the environment variable, else the shipped default model's file. `argument`
// is how the caller's user names the file; messages name it. A named file that does not exist, or
// no file at all, throws IoError.
std::string resolve_weights(const WeightsSpec& spec, const std::string& given, const std::string& argument);

}  // namespace efcnet
