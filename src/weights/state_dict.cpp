// Module <-> state dict: PyTorch's key order and names, and loading with named refusals.
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "efcnet/weights.h"
#include "pickle_detail.h"

namespace efcnet {
namespace {

// PyTorch's Module.state_dict order: the module's own parameters, its own buffers, then each
// child in registration order, depth first. Unset optional tensors (a Linear without bias is
// registered as an undefined tensor) are left out, as PyTorch leaves out None.
void append_state(const torch::nn::Module& module, const std::string& prefix, StateDict& out) {
  for (const auto& parameter : module.named_parameters(/*recurse=*/false)) {
    if (parameter.value().defined()) out.emplace_back(prefix + parameter.key(), parameter.value().detach());
  }
  for (const auto& buffer : module.named_buffers(/*recurse=*/false)) {
    if (buffer.value().defined()) out.emplace_back(prefix + buffer.key(), buffer.value().detach());
  }
  for (const auto& child : module.named_children()) {
    append_state(*child.value(), prefix + child.key() + ".", out);
  }
}

std::string shape(const torch::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes();
  return out.str();
}

// "'a', 'b', 'c' and 7 more": a long list (a file for another model) stays readable.
std::string key_list(const std::vector<std::string>& keys) {
  constexpr std::size_t kShown = 10;
  std::string list;
  for (std::size_t i = 0; i < keys.size() && i < kShown; ++i)
    list += (i ? ", " : "") + pickle_detail::printable_quoted(keys[i]);
  if (keys.size() > kShown) list += " and " + std::to_string(keys.size() - kShown) + " more";
  return list;
}

}  // namespace

StateDict module_state_dict(const torch::nn::Module& module) {
  StateDict dict;
  append_state(module, "", dict);
  return dict;
}

void load_state_dict(torch::nn::Module& module, const StateDict& dict, const std::string& source) {
  std::unordered_map<std::string, const torch::Tensor*> values;
  std::vector<std::string> duplicate, undefined, unexpected, missing, mismatched;
  for (const auto& [key, value] : dict) {
    if (!values.emplace(key, &value).second) duplicate.push_back(key);
    if (!value.defined()) undefined.push_back(key);
  }
  const StateDict targets = module_state_dict(module);  // detached aliases of the module's tensors
  std::unordered_map<std::string, const torch::Tensor*> expected;
  for (const auto& [key, target] : targets) {
    expected.emplace(key, &target);
    const auto found = values.find(key);
    if (found == values.end()) {
      missing.push_back(key);
    } else if (found->second->defined() && found->second->sizes() != target.sizes()) {
      mismatched.push_back(pickle_detail::printable_quoted(key) + " (file " + shape(*found->second) + ", module " +
                           shape(target) + ")");
    }
  }
  for (const auto& [key, value] : dict) {
    if (expected.count(key) == 0) unexpected.push_back(key);
  }

  // Check everything first: a refused file leaves the module as it was.
  std::vector<std::string> problems;
  if (!missing.empty()) problems.push_back("missing key(s) " + key_list(missing));
  if (!unexpected.empty()) problems.push_back("unexpected key(s) " + key_list(unexpected));
  if (!duplicate.empty()) problems.push_back("duplicate key(s) " + key_list(duplicate));
  if (!undefined.empty()) problems.push_back("undefined tensor(s) for " + key_list(undefined));
  for (const auto& mismatch : mismatched) problems.push_back("shape mismatch for " + mismatch);
  if (problems.empty()) {
    // NaN weights would fuse to a black image without a word: refuse them by name.
    std::vector<std::string> non_finite;
    for (const auto& [key, target] : targets) {
      const torch::Tensor& value = *values.at(key);
      if (value.is_floating_point() && !torch::isfinite(value).all().item<bool>()) non_finite.push_back(key);
    }
    if (!non_finite.empty()) problems.push_back("non-finite values (NaN or infinity) in " + key_list(non_finite));
  }
  if (!problems.empty()) {
    std::string message = source + ": state dict does not fit the module: ";
    for (std::size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
    throw WeightsError(message);
  }

  torch::NoGradGuard no_grad;
  for (const auto& [key, target] : targets) target.copy_(*values.at(key));  // converts dtype and device
}

void load_weights(torch::nn::Module& module, const std::string& path) {
  torch::Device device = torch::kCPU;
  const auto parameters = module.parameters();
  const auto buffers = module.buffers();
  if (!parameters.empty()) {
    device = parameters.front().device();
  } else if (!buffers.empty()) {
    device = buffers.front().device();
  }
  load_state_dict(module, read_state_dict(path, device), path);
}

}  // namespace efcnet
