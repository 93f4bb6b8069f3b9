// The trainer's data: samples read and checked before the first step, and the batches cut from them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "efcnet/train.h"

namespace efcnet::training {

// Planes as LibTorch tensors rather than OpenCV images, so that training from packed pairs builds
// and runs without OpenCV (EFCNET_IMAGE_IO=OFF).
struct Sample {
  std::string name;
  torch::Tensor functional;  // Y plane, (H,W) uint8 on the CPU
  torch::Tensor anatomical;  // (H,W) uint8 on the CPU; undefined for SEEM training
};

// Every pair of the two directories or of the packed file (or every functional image), read and
// checked up front, so that a bad file stops the run now, not in epoch 3: one TrainingError lists
// every problem.
std::vector<Sample> load_pairs(const NetworkTrainOptions& options);
std::vector<Sample> load_functional(const SeemTrainOptions& options);

// Refuses a network run without SEEM weights or with an intensity or texture weight outside
// 0..1000: what its loss needs, in training as in the device check.
void check_loss_options(const NetworkTrainOptions& options);

// Refuses `samples` that do not fill one batch on each of `world` ranks (the last partial batch of
// an epoch is dropped, so such a run would take no step).
void check_one_batch(size_t samples, int batch_size, int world);

// Where a batch row was cut from its sample.
struct Window {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// (B,1,h,w) float32 in [0,1] from the same random window of each sample's planes.
struct Batch {
  torch::Tensor functional, anatomical;
  std::vector<size_t> samples;  // which sample each row came from
  std::vector<Window> windows;  // and where in it
};

// uint8 samples as float32 in [0,1] on `device`.
torch::Tensor to_unit(const torch::Tensor& bytes, const torch::Device& device);

// The samples `indices`, each cropped to the options' window (two draws of `rng` per sample) or whole.
// The height and width of a step's images: the crop's, or else the sample's (full images are all
// one size).
std::pair<int64_t, int64_t> step_image_size(const Sample& sample, const TrainOptions& options);

Batch make_batch(const std::vector<Sample>& samples, const std::vector<size_t>& indices, const TrainOptions& options,
                 std::mt19937_64& rng, const torch::Device& device);

}  // namespace efcnet::training
