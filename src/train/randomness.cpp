// Training randomness: shuffles, crops and dropout derived from (seed, epoch, step).
#include "randomness.h"

#include <utility>

#include <torch/torch.h>

namespace efcnet::training {

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL + (a << 6) + (a >> 2));
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ULL;
  return x ^ (x >> 29);
}

std::vector<size_t> epoch_order(size_t n, uint64_t seed, int epoch) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(mix(seed, static_cast<uint64_t>(epoch)));
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);  // Fisher-Yates
  return order;
}

std::mt19937_64 seed_step(uint64_t seed, int epoch, int64_t step_in_epoch, int rank, int batch_size) {
  const uint64_t step_seed = mix(mix(seed, static_cast<uint64_t>(epoch)), static_cast<uint64_t>(step_in_epoch));
  // Rank 0 keeps the single-process stream, the others draw their own (stream 1 is the crops').
  torch::manual_seed(rank == 0 ? step_seed : mix(step_seed, static_cast<uint64_t>(rank) + 1));
  std::mt19937_64 crop_rng(mix(step_seed, 1));
  // Two draws per sample of the ranks before this one.
  crop_rng.discard(2ULL * static_cast<uint64_t>(batch_size) * static_cast<uint64_t>(rank));
  return crop_rng;
}

}  // namespace efcnet::training
