// Training-memory savers for the fusion network's modules: each keeps fewer tensors for the
// backward pass than the plain composition of LibTorch ops, with the same values and gradients
// (to rounding). docs/architecture.md ("Training memory") says which module uses which and why.
#pragma once

#include <functional>
#include <vector>

#include <torch/torch.h>

namespace efcnet {

// Whether the next operations are recorded for a backward pass that reaches `parameters` or `input`.
bool recording_gradients(const torch::Tensor& input, const std::vector<torch::Tensor>& parameters);

// Recomputation ("activation checkpointing"): runs `stage` on `input` without keeping anything
// but `input`, and in the backward pass runs it again, recording, to get its gradients with
// respect to `input` and `parameters` (the stage's own, which must be every tensor requiring a
// gradient that it reads). The random-number generator of input's device and the autocast state
// are as they were in the forward pass, so dropout masks and precisions repeat. Stages may nest:
// an inner stage records only when its outer one is recomputed. The stage must not update
// buffers (BatchNorm running statistics would be updated twice).
torch::Tensor recompute_in_backward(const std::function<torch::Tensor(const torch::Tensor&)>& stage,
                                    const torch::Tensor& input, const std::vector<torch::Tensor>& parameters);

// leaky_relu(batch_norm(x)) in training mode (batch statistics, running statistics updated with
// `momentum`), keeping x and the batch statistics only: the normalised tensor is recomputed from
// them in the backward pass. x may be bfloat16 (autocast's convolution output) with float32
// BatchNorm parameters, as LibTorch's BatchNorm allows.
torch::Tensor batch_norm_leaky_relu(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, double negative_slope);

// x * gate_w * gate_h (coordinate attention's output; gates broadcast along H and along W),
// keeping the three inputs rather than the full-size intermediate x * gate_w.
torch::Tensor gated_product(const torch::Tensor& x, const torch::Tensor& gate_w, const torch::Tensor& gate_h);

}  // namespace efcnet
