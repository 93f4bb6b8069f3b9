// Reading and writing PyTorch state dicts (.pth, the torch.save zip format) as data, never code.
//
// The container is a zip (records `<prefix>/data.pkl`, `<prefix>/data/<key>`, `<prefix>/version`).
// data.pkl is parsed by a restricted unpickler (weights_records.h, LibTorch-free) that accepts only
// what a state dict needs; this header adapts its neutral tensor records to torch::Tensor.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "efcnet/error.h"

namespace efcnet {

// Every problem with a weights file: the message names the file and the problem.
class WeightsError : public Error {
 public:
  using Error::Error;
};

// (key, tensor) in the order stored in the file.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// Reads a state dict; tensors land on `device` whatever device tag the file carries (cuda:N included).
StateDict read_state_dict(const std::string& path, const torch::Device& device = torch::kCPU);

// Copies `dict` into the module's parameters and buffers (converting dtype, e.g. float16 -> float32).
// Refuses missing keys, unexpected keys, shape mismatches and non-finite values (NaN, infinity),
// naming `source` and the key.
void load_state_dict(torch::nn::Module& module, const StateDict& dict, const std::string& source);

// read_state_dict + load_state_dict, onto the device the module's parameters are on.
void load_weights(torch::nn::Module& module, const std::string& path);

// The module's state dict (parameters, then buffers, module by module, as PyTorch orders them).
StateDict module_state_dict(const torch::nn::Module& module);

// Writes a torch.save-compatible archive that `torch.load(path, weights_only=True)` reads:
// a pickle of one plain dict of `torch._utils._rebuild_tensor_v2` tensors, each in its own dtype
// (export_weights in train.h decides which tensors may be stored as float16). Atomic (temp + rename).
void save_state_dict(const StateDict& dict, const std::string& path);

}  // namespace efcnet
