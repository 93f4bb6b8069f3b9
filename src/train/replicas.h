// The trainer's side of data-parallel training: joining the group, set-up that every rank passes
// or fails together, and replicas that start identical (the collectives are distributed.h's).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "efcnet/train.h"
#include "optimizer.h"
#include "train/distributed.h"
#include "training_data.h"

namespace efcnet::training {

// The device this rank trains on: each rank of a host takes its own GPU.
torch::Device training_device(const TrainOptions& options);

// The distributed side of a run; none for a single process.
std::unique_ptr<DistributedGroup> join_group(const TrainOptions& options, const torch::Device& device);

// Runs `setup` on every rank; when it fails on any rank, every rank stops with the reason instead
// of the others waiting for the failed one in their next collective until the timeout.
void agreed(DistributedGroup* group, const std::function<void()>& setup);

// Names, sizes and pixels: every rank must shuffle and shard the same list.
uint64_t samples_digest(const std::vector<Sample>& samples);

// Parameters and buffers.
std::vector<torch::Tensor> weight_tensors(const torch::nn::Module& module);

// Every rank starts from rank 0's state (initial or resumed weights, optimizer moments, epoch and
// step), so the replicas are identical from the first step on.
void start_from_rank0(DistributedGroup& group, torch::nn::Module& module, Adam& adam, int& done_epochs, int64_t& step);

}  // namespace efcnet::training
