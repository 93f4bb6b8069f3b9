// Training precision: float32, or the forward pass under bfloat16 autocast with float32 master
// weights (convolutions and matmuls in bfloat16, their gradients returned to the float32 weights,
// Adam's moments and the checkpoints).
#pragma once

#include <torch/torch.h>

#include "efcnet/inference_options.h"
#include "efcnet/model.h"
#include "efcnet/runtime.h"
#include "efcnet/train.h"
#include "train/losses.h"

namespace efcnet::training {

// OptionError for bfloat16 on a CPU without AVX-512 BF16 or AMX (native bfloat16 dot products):
// this CPU's (cpu_features()), or the one described (so that tests reach the refusal anywhere).
void check_precision(const TrainOptions& options, const torch::Device& device);
void check_precision(const TrainOptions& options, const torch::Device& device, const CpuFeatures& cpu,
                     const std::string& cpu_name);

// The network's forward pass on (edge map, anatomical), under bfloat16 autocast for
// Precision::bfloat16, and the fusion loss against them in float32; backward() on the total gives
// float32 gradients.
FusionLoss network_loss(FusionNetworkImpl& network, const torch::Tensor& functional, const torch::Tensor& anatomical,
                        Precision precision, const SourceTerms& source = {});

// SEEM's forward pass, likewise, and its loss against the Sobel target of `functional` (MSE, which
// autocast computes in float32).
torch::Tensor seem_loss(SmoothEdgeExtractorImpl& seem, const torch::Tensor& functional, Precision precision);

}  // namespace efcnet::training
