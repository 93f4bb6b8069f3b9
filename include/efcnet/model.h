// EFCNet as LibTorch modules (spec: shared/docs/efcnet-spec.md, sections 2-4).
//
// Every submodule is registered under the reference's attribute name, so parameter and buffer
// names are the reference's state-dict keys one to one (SEEM: 48 entries, 306 parameters;
// network: 231 entries, 7,459,145 parameters). Train and eval modes behave as the reference:
// BatchNorm batch statistics, dropout 0.1 and DropPath 0.1 in training only.
#pragma once

#include <functional>

#include <torch/torch.h>

#include "efcnet/error.h"

namespace efcnet {

// ---------------------------------------------------------------------------------------------
// SEEM: Smooth Edge Extraction Module.
struct SmoothEdgeExtractorImpl : torch::nn::Module {
  SmoothEdgeExtractorImpl();
  torch::Tensor forward(const torch::Tensor& functional);

  torch::nn::Sequential up{nullptr};           // conv3x3 1->8, BN, ReLU
  torch::nn::Sequential conv_efg{nullptr};     // 1x1 8->2, 3x3 2->2, 1x1 2->8, 1x1 8->1 (BN+ReLU each)
  torch::nn::Sequential conv_1X1{nullptr};     // 1x1 8->1, BN, ReLU
  torch::nn::Sequential conv_revert{nullptr};  // 1x1 2->8, BN, ReLU
  torch::nn::Sequential down{nullptr};         // conv3x3 8->1, BN, ReLU
};
TORCH_MODULE(SmoothEdgeExtractor);

// Sets SEEM's weights and BatchNorm statistics so that, in eval mode, it returns its input unchanged
// (any input >= 0, as images are: every layer ends in a ReLU). The fusion network then sees the
// functional image's grey levels themselves instead of a map of their edges, which renders a CT's
// soft tissue as a flat mask; the default weights' SEEM since round three (docs/model-history.md).
void set_identity(SmoothEdgeExtractorImpl& seem);

// ---------------------------------------------------------------------------------------------
// Building blocks of the fusion network.

// conv kxk (bias, 'same' padding) -> BatchNorm -> LeakyReLU(0.01).
struct ConvBlockImpl : torch::nn::Module {
  ConvBlockImpl(int64_t in_channels, int64_t out_channels, int64_t kernel);
  torch::Tensor forward(const torch::Tensor& x);

  // In training, BatchNorm and LeakyReLU as one autograd function that keeps only the convolution's
  // output (lean_backward.h); not with a BatchNormOverride (synchronised BatchNorm).
  bool lean_backward = true;
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(ConvBlock);

// A bare 1x1 convolution kept under a `conv` attribute (the reference's convolutional_out2).
struct PointwiseConvImpl : torch::nn::Module {
  PointwiseConvImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(PointwiseConv);

// Coordinate attention (reduction 32, at least 8 hidden channels): attention along H and along W
// from row and column means, output x * a_w * a_h.
struct CoordinateAttentionImpl : torch::nn::Module {
  explicit CoordinateAttentionImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);

  bool lean_backward = true;  // the output product keeps its three factors, not x * a_w (lean_backward.h)
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Conv2d conv_h{nullptr};
  torch::nn::Conv2d conv_w{nullptr};
};
TORCH_MODULE(CoordinateAttention);

// conv3x3 -> ReLU -> conv3x3, plus the input.
struct ResidualBlockImpl : torch::nn::Module {
  explicit ResidualBlockImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Sequential conv{nullptr};  // indices 0 and 2 hold the convolutions
};
TORCH_MODULE(ResidualBlock);

// Two residual blocks in sequence (the reference's LocalFeature).
struct LocalFeatureImpl : torch::nn::Module {
  explicit LocalFeatureImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Sequential Extraction{nullptr};
};
TORCH_MODULE(LocalFeature);

// Multi-head self-attention over token sequences. The fusion network only ever feeds it sequences
// of one token, where softmax over the single key is exactly 1: the output is proj(v), for values
// and gradients alike. `single_token_shortcut` computes just that (no q, k, softmax); the textbook
// path stays for sequences longer than one and as the benchmarks' baseline.
struct TokenAttentionImpl : torch::nn::Module {
  TokenAttentionImpl(int64_t dim, int64_t heads, double dropout);
  torch::Tensor forward(const torch::Tensor& tokens);  // (N, L, C)

  int64_t heads;
  double dropout;
  bool single_token_shortcut = true;
  torch::nn::Linear qkv{nullptr};
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(TokenAttention);

// fc1 -> GELU -> dropout -> fc2 -> dropout. When gradients are recorded and the hidden
// activation (tokens x 4C) exceeds `recompute_above_bytes`, fc1 and GELU are recomputed in the
// backward pass instead of being kept: the hidden layer is most of the training memory at 256x256
// (4 x 256^2 tokens x 1024 floats = 1 GiB per tensor, several per block).
struct TokenMlpImpl : torch::nn::Module {
  TokenMlpImpl(int64_t dim, int64_t hidden, double dropout);
  torch::Tensor forward(const torch::Tensor& tokens);

  static constexpr int64_t kRecomputeAboveBytes = int64_t{32} << 20;
  double dropout;
  int64_t recompute_above_bytes = kRecomputeAboveBytes;
  torch::nn::Linear fc1{nullptr};
  torch::nn::Linear fc2{nullptr};
};
TORCH_MODULE(TokenMlp);

// Pre-norm transformer block with DropPath on both residual branches.
struct TransformerBlockImpl : torch::nn::Module {
  TransformerBlockImpl(int64_t dim, int64_t heads, double dropout, double drop_path);
  torch::Tensor forward(const torch::Tensor& tokens);

  double drop_path;
  // In training, keep only the block's input and run the block again in the backward pass
  // (lean_backward.h): what it would keep is about six token maps of its width.
  bool recompute = true;
  torch::nn::LayerNorm norm1{nullptr};
  TokenAttention attn{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
  TokenMlp mlp{nullptr};
};
TORCH_MODULE(TransformerBlock);

// The global branch of EFusion (the reference's GlobalFeature / "Transformer"): window size 1,
// depth 2, 8 heads, learnt position embedding. Its tokens are the reference's: the contiguous NCHW
// buffer read as B*H*W runs of C consecutive floats (C neighbouring pixels of one channel along a
// row), not the C channels of one pixel; published weights mean this layout.
struct TokenMixerImpl : torch::nn::Module {
  explicit TokenMixerImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor pos_embed;  // (1, 1, C)
  torch::nn::Sequential transformer{nullptr};
};
TORCH_MODULE(TokenMixer);

// E-Fusion: FFN(cat(GlobalFeature(e), LocalFeature(e))) + x with e = embed(x).
struct EFusionImpl : torch::nn::Module {
  explicit EFusionImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d embed{nullptr};
  TokenMixer GlobalFeature{nullptr};
  efcnet::LocalFeature LocalFeature{nullptr};
  torch::nn::Conv2d FFN{nullptr};
};
TORCH_MODULE(EFusion);

// ---------------------------------------------------------------------------------------------
// The fusion network (the reference's MODEL).

struct FusionOutput {
  torch::Tensor fused;       // (N,1,H,W) in (0,1)
  torch::Tensor v1, v2, v3;  // encoder features of the anatomical input (16, 64, 256 channels)
};

struct FusionNetworkImpl : torch::nn::Module {
  FusionNetworkImpl();

  // functional = SEEM output, anatomical = anatomical image; both (N,1,H,W) in [0,1].
  FusionOutput forward(const torch::Tensor& functional, const torch::Tensor& anatomical);

  // Chooses the textbook attention (q, k, softmax) instead of the exact single-token shortcut.
  void use_textbook_attention(bool enabled);

  // How much a training step keeps for its backward pass: `lean` (the default) recomputes and
  // slims what docs/architecture.md ("Training memory") lists; `keep_everything` is LibTorch's
  // plain autograd, the benchmarks' baseline. Values and gradients agree to rounding.
  enum class TrainingMemory { lean, keep_everything };
  void set_training_memory(TrainingMemory mode);

  ConvBlock conv3_3{nullptr}, conv5_5{nullptr}, conv7_7{nullptr};
  CoordinateAttention ca1{nullptr}, ca2{nullptr}, ca3{nullptr};
  ConvBlock conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  EFusion SU1{nullptr}, SU2{nullptr}, SU3{nullptr}, SU4{nullptr};
  ConvBlock convolutional_out1{nullptr};
  PointwiseConv convolutional_out2{nullptr};
};
TORCH_MODULE(FusionNetwork);

// "cpu", "cuda" or "cuda:N"; throws OptionError for an unknown name or a CUDA device
// this build or machine does not have.
torch::Device parse_device(const std::string& name);

// How the fusion network's BatchNorm layers normalise in training mode: with their own batch's
// statistics (LibTorch's BatchNorm2d), unless the calling thread has installed another function,
// as data-parallel training's --sync-bn does for statistics over every rank's batch.
using BatchNormFunction = std::function<torch::Tensor(torch::nn::BatchNorm2dImpl&, const torch::Tensor&)>;

// Installs `function` for the calling thread while it lives.
class BatchNormOverride {
 public:
  explicit BatchNormOverride(BatchNormFunction function);
  ~BatchNormOverride();
  BatchNormOverride(const BatchNormOverride&) = delete;
  BatchNormOverride& operator=(const BatchNormOverride&) = delete;

 private:
  BatchNormFunction previous_;
};

}  // namespace efcnet
