// Data-parallel glue of the trainer: group, agreed set-up, identical replicas.
#include "replicas.h"

#include <string>

#include "efcnet/model.h"

namespace efcnet::training {

torch::Device training_device(const TrainOptions& options) {
  if (options.distributed.world_size > 1 && options.device == "cuda") {
    return parse_device("cuda:" + std::to_string(options.distributed.local_rank));
  }
  return parse_device(options.device);
}

std::unique_ptr<DistributedGroup> join_group(const TrainOptions& options, const torch::Device& device) {
  if (options.distributed.world_size == 1 && options.distributed.rank == 0) return nullptr;
  return std::make_unique<DistributedGroup>(options.distributed, device);
}

void agreed(DistributedGroup* group, const std::function<void()>& setup) {
  if (group == nullptr) return setup();
  std::string error;
  try {
    setup();
  } catch (const std::exception& e) {
    error = *e.what() ? e.what() : "unknown error";
  }
  group->agree(error);
}

uint64_t samples_digest(const std::vector<Sample>& samples) {
  std::vector<torch::Tensor> parts;
  for (const auto& s : samples) {
    parts.push_back(
        torch::from_blob(const_cast<char*>(s.name.data()), {static_cast<int64_t>(s.name.size())}, torch::kUInt8)
            .clone());
    for (const torch::Tensor* plane : {&s.functional, &s.anatomical}) {
      if (!plane->defined()) continue;
      parts.push_back(torch::tensor(plane->sizes().vec()));
      parts.push_back(plane->flatten());
    }
  }
  return tensor_digest(parts);
}

std::vector<torch::Tensor> weight_tensors(const torch::nn::Module& module) {
  auto all = module.parameters();
  const auto buffers = module.buffers();
  all.insert(all.end(), buffers.begin(), buffers.end());
  return all;
}

void start_from_rank0(DistributedGroup& group, torch::nn::Module& module, Adam& adam, int& done_epochs, int64_t& step) {
  auto counters = torch::tensor({static_cast<int64_t>(done_epochs), step, adam.steps()});
  group.broadcast_from_rank0({counters});
  done_epochs = static_cast<int>(counters[0].item<int64_t>());
  step = counters[1].item<int64_t>();
  adam.set_steps(counters[2].item<int64_t>());
  auto state = weight_tensors(module);
  const auto moments = adam.moments();
  state.insert(state.end(), moments.begin(), moments.end());
  group.broadcast_from_rank0(state);
}

}  // namespace efcnet::training
