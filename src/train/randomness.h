// Training randomness as a pure function of (seed, epoch, step): shuffling, crops and dropout are
// replayed exactly by a resumed run without storing any generator state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace efcnet::training {

// A 64-bit mix of two values (for seeds derived from seeds).
uint64_t mix(uint64_t a, uint64_t b);

// The epoch's shuffled order of n samples.
std::vector<size_t> epoch_order(size_t n, uint64_t seed, int epoch);

// Seeds LibTorch's generator (dropout, DropPath) for step `step_in_epoch` of `epoch` on `rank`,
// and returns the generator of that rank's crops: positioned where one process drawing the whole
// global batch of world x batch_size samples would be at the rank's slice.
std::mt19937_64 seed_step(uint64_t seed, int epoch, int64_t step_in_epoch, int rank, int batch_size);

}  // namespace efcnet::training
