// The fusion network's layers, written once: network.cpp builds its modules from these tables
// (under the reference's attribute names) and counted_flops (inference.cpp) sums over them; a
// test checks them against the modules' parameter shapes.
#pragma once

#include <array>
#include <cstdint>

namespace efcnet::layers {

// A convolution: the module's attribute name, channels in and out, kernel side.
struct Conv {
  const char* name;
  int64_t in, out, kernel;
};

// The encoder, run on each input with shared weights: its three scales' widths are the scales below.
inline constexpr std::array<Conv, 3> kEncoder = {
    {{"conv3_3", 1, 16, 3}, {"conv5_5", 16, 64, 5}, {"conv7_7", 64, 256, 7}}};

// Per scale k: coordinate attention (ca<k>) on the encoder's map of each input, the 1x1 merge of
// both (conv<k>: twice the width in), and the fusion unit SU<k> at the merged width.
inline constexpr std::array<const char*, 3> kAttention = {"ca1", "ca2", "ca3"};
inline constexpr std::array<Conv, 3> kMerge = {{{"conv1", 32, 16, 1}, {"conv2", 128, 64, 1}, {"conv3", 512, 256, 1}}};
inline constexpr std::array<const char*, 3> kScaleUnits = {"SU1", "SU2", "SU3"};

// The three scales' fused maps concatenated (16 + 64 + 256 channels), merged and fused once more.
inline constexpr Conv kJoin = {"conv4", 336, 64, 1};
inline constexpr const char* kJoinUnit = "SU4";

// The decoder: a 3x3 ConvBlock, then a 1x1 convolution to the fused Y plane (a sigmoid after it).
inline constexpr Conv kDecoderBlock = {"convolutional_out1", 64, 16, 3};
inline constexpr Conv kOutput = {"convolutional_out2", 16, 1, 1};

// Coordinate attention's hidden width for a map of `channels`.
constexpr int64_t attention_hidden(int64_t channels) { return channels / 32 > 8 ? channels / 32 : 8; }

static_assert(kMerge[0].in == 2 * kEncoder[0].out && kMerge[1].in == 2 * kEncoder[1].out &&
                  kMerge[2].in == 2 * kEncoder[2].out,
              "each merge takes both inputs' maps of its scale");
static_assert(kJoin.in == kMerge[0].out + kMerge[1].out + kMerge[2].out, "the join takes every scale's fused map");
static_assert(kDecoderBlock.in == kJoin.out && kOutput.in == kDecoderBlock.out, "the decoder follows the join");

}  // namespace efcnet::layers
