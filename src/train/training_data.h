// The trainer's data: samples read and checked before the first step, and the batches cut from them.
#pragma once

#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <opencv2/core.hpp>

#include "efcnet/train.h"

namespace efcnet::training {

struct Sample {
  std::string name;
  cv::Mat functional;  // Y plane, CV_8UC1
  cv::Mat anatomical;  // CV_8UC1; empty for SEEM training
};

// Every pair of the two directories (or every functional image), read and checked up front, so
// that a bad file stops the run now, not in epoch 3: one TrainingError lists every problem.
std::vector<Sample> load_pairs(const NetworkTrainOptions& options);
std::vector<Sample> load_functional(const SeemTrainOptions& options);

// (B,1,h,w) float32 in [0,1] from the same random window of each sample's planes.
struct Batch {
  torch::Tensor functional, anatomical;
  std::vector<size_t> samples;    // which sample each row came from
  std::vector<cv::Rect> windows;  // and where in it
};

// uint8 samples as float32 in [0,1] on `device`.
torch::Tensor to_unit(const torch::Tensor& bytes, const torch::Device& device);

// The samples `indices`, each cropped to the options' window (two draws of `rng` per sample) or whole.
Batch make_batch(const std::vector<Sample>& samples, const std::vector<size_t>& indices, const TrainOptions& options,
                 std::mt19937_64& rng, const torch::Device& device);

}  // namespace efcnet::training
