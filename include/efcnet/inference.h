// SEEM and the fusion network prepared once for fast inference (eval mode only).
//
// Computes what the eval-mode modules of model.h compute, from a copy of their weights:
//   - BatchNorm folded into the preceding convolution (ConvBlock, SEEM units, coordinate
//     attention's conv1 + bn1);
//   - the shared encoder run once on the functional and anatomical inputs stacked along the batch;
//   - the single-token attention as one Linear: proj(v) = (W_proj W_v) t + (W_proj b_v + b_proj);
//   - concatenations written in place by the producing operation, token mixing in cache-sized
//     chunks of tokens;
//   - on the CPU: channels-last feature maps for oneDNN's convolutions, Winograd 3x3 convolutions
//     (AVX-512, float32), optional bfloat16.
// On other devices the same steps run on plain NCHW tensors.
// Training keeps using the eager modules; this is the inference path of Fuser and `efcnet bench`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "efcnet/inference_options.h"
#include "efcnet/model.h"
#include "efcnet/runtime.h"  // available_memory_bytes, gibibytes

namespace efcnet {

// One number per stage of the networks; kNetworkStages lists the stages.
struct StageValues {
  double seem = 0, encoder = 0, su1 = 0, su2 = 0, su3 = 0, su4 = 0, decoder = 0;
  double total() const;
};

struct NetworkStage {
  const char* name;  // as `efcnet bench` reports it
  double StageValues::*value;
  const char* what;
};

// The stages a pair runs through, in order: the one list that timing (StageSeconds), FLOP counts
// (StageFlops, counted_flops) and `efcnet bench` use.
inline constexpr NetworkStage kNetworkStages[] = {
    {"seem", &StageValues::seem, "SEEM on the functional Y plane"},
    {"encoder", &StageValues::encoder, "conv3_3/5_5/7_7 on both inputs, coordinate attention, conv1..conv3"},
    {"su1", &StageValues::su1, "E-Fusion of the 16-channel features"},
    {"su2", &StageValues::su2, "E-Fusion of the 64-channel features"},
    {"su3", &StageValues::su3, "E-Fusion of the 256-channel features"},
    {"su4", &StageValues::su4, "conv4 on all scales and its E-Fusion"},
    {"decoder", &StageValues::decoder, "convolutional_out1/2 and the sigmoid"},
};

inline double StageValues::total() const {
  double sum = 0;
  for (const NetworkStage& stage : kNetworkStages) sum += this->*stage.value;
  return sum;
}

// Wall-clock seconds per stage of one InferenceModel call (the device is synchronised at each
// boundary, so the stages add up to the call).
struct StageSeconds : StageValues {};

// Convolution and linear FLOPs (2 per multiply-add) of one pair, by stage.
struct StageFlops : StageValues {};

class InferenceModel {
 public:
  // Copies and prepares the weights of `seem` and `network` (whatever mode they are in, they are
  // read in their eval-mode meaning: BatchNorm running statistics, no dropout) on the device
  // that `network`'s parameters are on. Later changes to the modules are not seen.
  InferenceModel(const SmoothEdgeExtractorImpl& seem, const FusionNetworkImpl& network,
                 const InferenceOptions& options = {});
  ~InferenceModel();
  InferenceModel(InferenceModel&&) noexcept;
  InferenceModel& operator=(InferenceModel&&) noexcept;

  // SEEM(functional) for (N,1,H,W) float32 input.
  torch::Tensor seem(const torch::Tensor& functional) const;

  // MODEL(functional, anatomical) for (N,1,H,W) float32 inputs (functional = SEEM output).
  // The returned tensors are inference tensors (no autograd) in float32.
  FusionOutput forward(const torch::Tensor& functional, const torch::Tensor& anatomical,
                       StageSeconds* seconds = nullptr) const;

  // MODEL(SEEM(functional_y), anatomical).fused: the whole network side of the pipeline.
  torch::Tensor fuse(const torch::Tensor& functional_y, const torch::Tensor& anatomical,
                     StageSeconds* seconds = nullptr) const;

  torch::Device device() const;

  // How many convolutions run through Winograd kernels (InferenceOptions::winograd): 18 for a
  // float32 model on an AVX-512 CPU, 0 where the CPU, the build or the options exclude them.
  int winograd_layers() const;

  // How many token-mixer linear layers run through oneDNN's matmul (InferenceOptions::dnnl_linear):
  // 24 for a float32 CPU model in a build with oneDNN, else 0.
  int dnnl_linear_layers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// FLOPs of SEEM + MODEL on one H x W pair. `textbook_attention` counts q, k, v, softmax·v and
// proj as the reference computes them; otherwise the folded single-token attention (C x C).
StageFlops counted_flops(int64_t height, int64_t width, bool textbook_attention);

// Upper estimate of the memory InferenceModel::fuse needs for one H x W float32 pair on the CPU,
// beyond the weights: the live feature maps at the widest point (SU3), working buffers and the
// heap's fragmentation. About 14 KiB per pixel and 1 GiB: 1.9 GiB at 256x256, 15 GiB at 1024x1024.
int64_t estimated_working_bytes(int64_t height, int64_t width);

// Empty when an H x W pair fits estimated_working_bytes into available_memory_bytes(); otherwise
// the one-line reason ("a WxH pair needs about ... GiB of working memory, but only ... GiB is
// available (MemAvailable)"), for a refusal before any work starts.
std::string working_memory_shortfall(int64_t height, int64_t width);

}  // namespace efcnet
