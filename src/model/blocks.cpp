// Building blocks of the fusion network: convolution units, coordinate attention, residual
// blocks, the token mixer (GlobalFeature) and E-Fusion.
#include "efcnet/model.h"

#include <algorithm>
#include <utility>

#include "layers.h"
#include "lean_backward.h"

namespace efcnet {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

constexpr int64_t kHeads = 8;
constexpr int64_t kDepth = 2;
constexpr double kDropout = 0.1;
constexpr double kDropPath = 0.1;

nn::Conv2d conv2d(int64_t in, int64_t out, int64_t kernel, bool bias) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).bias(bias));
}

nn::BatchNorm2d batch_norm(int64_t channels) {
  return nn::BatchNorm2d(nn::BatchNorm2dOptions(channels).eps(1e-5).momentum(0.1));
}

// Stochastic depth: drops a whole token sequence (first dimension), scaling survivors by 1/keep.
torch::Tensor drop_path(const torch::Tensor& x, double rate, bool training) {
  if (!training || rate == 0.0) return x;
  const double keep = 1.0 - rate;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  const auto mask = torch::floor(torch::rand(shape, x.options()) + keep);
  return x / keep * mask;
}

thread_local BatchNormFunction batch_norm_override;

torch::Tensor normalise(nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
  return bn.is_training() && batch_norm_override ? batch_norm_override(bn, x) : bn.forward(x);
}

}  // namespace

BatchNormOverride::BatchNormOverride(BatchNormFunction function)
    : previous_(std::exchange(batch_norm_override, std::move(function))) {}

BatchNormOverride::~BatchNormOverride() { batch_norm_override = std::move(previous_); }

// ---------------------------------------------------------------------------------------------
ConvBlockImpl::ConvBlockImpl(int64_t in_channels, int64_t out_channels, int64_t kernel) {
  conv = register_module("conv", conv2d(in_channels, out_channels, kernel, true));
  bn = register_module("bn", batch_norm(out_channels));
}

torch::Tensor ConvBlockImpl::forward(const torch::Tensor& x) {
  constexpr double kSlope = 0.01;
  const auto z = conv->forward(x);
  if (lean_backward && bn->is_training() && !batch_norm_override && z.requires_grad() &&
      torch::GradMode::is_enabled()) {
    return batch_norm_leaky_relu(z, *bn, kSlope);
  }
  return F::leaky_relu(normalise(*bn, z), F::LeakyReLUFuncOptions().negative_slope(kSlope));
}

PointwiseConvImpl::PointwiseConvImpl(int64_t in_channels, int64_t out_channels) {
  conv = register_module("conv", conv2d(in_channels, out_channels, 1, true));
}

torch::Tensor PointwiseConvImpl::forward(const torch::Tensor& x) { return conv->forward(x); }

// ---------------------------------------------------------------------------------------------
CoordinateAttentionImpl::CoordinateAttentionImpl(int64_t channels) {
  const int64_t hidden = layers::attention_hidden(channels);
  conv1 = register_module("conv1", conv2d(channels, hidden, 1, true));
  bn1 = register_module("bn1", batch_norm(hidden));
  conv_h = register_module("conv_h", conv2d(hidden, channels, 1, true));
  conv_w = register_module("conv_w", conv2d(hidden, channels, 1, true));
}

torch::Tensor CoordinateAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t h = x.size(2);
  const int64_t w = x.size(3);
  const auto row_means = x.mean(3, /*keepdim=*/true);                           // (N,C,H,1)
  const auto column_means = x.mean(2, /*keepdim=*/true).permute({0, 1, 3, 2});  // (N,C,W,1)
  auto y = normalise(*bn1, conv1->forward(torch::cat({row_means, column_means}, 2)));
  // h_swish. LibTorch 1.13 has no bfloat16 backward for relu6 (hardtanh) on the CPU, so under
  // bfloat16 autocast the gate is computed in float32.
  const auto gate_input = y.scalar_type() == torch::kBFloat16 ? y.to(torch::kFloat32) : y;
  y = y * (F::relu6(gate_input + 3.0) / 6.0);
  const auto parts = torch::split_with_sizes(y, {h, w}, 2);
  const auto attention_h = torch::sigmoid(conv_h->forward(parts[0]));
  const auto attention_w = torch::sigmoid(conv_w->forward(parts[1].permute({0, 1, 3, 2})));
  const bool same_dtype = attention_w.scalar_type() == x.scalar_type() && attention_h.scalar_type() == x.scalar_type();
  if (lean_backward && same_dtype && torch::GradMode::is_enabled() &&
      (x.requires_grad() || attention_w.requires_grad() || attention_h.requires_grad())) {
    return gated_product(x, attention_w, attention_h);
  }
  return x * attention_w * attention_h;
}

// ---------------------------------------------------------------------------------------------
ResidualBlockImpl::ResidualBlockImpl(int64_t channels) {
  conv = register_module(
      "conv", nn::Sequential(conv2d(channels, channels, 3, true), nn::ReLU(), conv2d(channels, channels, 3, true)));
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x) { return conv->forward(x) + x; }

LocalFeatureImpl::LocalFeatureImpl(int64_t channels) {
  Extraction = register_module("Extraction", nn::Sequential(ResidualBlock(channels), ResidualBlock(channels)));
}

torch::Tensor LocalFeatureImpl::forward(const torch::Tensor& x) { return Extraction->forward(x); }

// ---------------------------------------------------------------------------------------------
TokenAttentionImpl::TokenAttentionImpl(int64_t dim, int64_t heads_, double dropout_)
    : heads(heads_), dropout(dropout_) {
  qkv = register_module("qkv", nn::Linear(nn::LinearOptions(dim, 3 * dim).bias(true)));
  proj = register_module("proj", nn::Linear(nn::LinearOptions(dim, dim).bias(true)));
}

torch::Tensor TokenAttentionImpl::forward(const torch::Tensor& tokens) {
  const int64_t n = tokens.size(0);
  const int64_t length = tokens.size(1);
  const int64_t dim = tokens.size(2);
  const int64_t head_dim = dim / heads;
  torch::Tensor mixed;
  if (single_token_shortcut && length == 1) {
    // softmax over one key is 1, so each head's output is its slice of v (times the attention
    // dropout's keep/drop factor in training).
    mixed = F::linear(tokens, qkv->weight.narrow(0, 2 * dim, dim), qkv->bias.narrow(0, 2 * dim, dim));
    if (is_training() && dropout > 0.0) {
      const auto head_mask = F::dropout(torch::ones({n, 1, heads, 1}, tokens.options()),
                                        F::DropoutFuncOptions().p(dropout).training(true));
      mixed = (mixed.view({n, 1, heads, head_dim}) * head_mask).view({n, 1, dim});
    }
  } else {
    const auto qkv_heads = qkv->forward(tokens).reshape({n, length, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
    const auto q = qkv_heads[0];
    const auto k = qkv_heads[1];
    const auto v = qkv_heads[2];
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    auto attention = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) * scale, -1);
    attention = F::dropout(attention, F::DropoutFuncOptions().p(dropout).training(is_training()));
    mixed = torch::matmul(attention, v).transpose(1, 2).reshape({n, length, dim});
  }
  return F::dropout(proj->forward(mixed), F::DropoutFuncOptions().p(dropout).training(is_training()));
}

TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t heads, double dropout, double drop_path_)
    : drop_path(drop_path_) {
  norm1 = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-5)));
  attn = register_module("attn", TokenAttention(dim, heads, dropout));
  norm2 = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-5)));
  mlp = register_module("mlp", TokenMlp(dim, 4 * dim, dropout));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& tokens) {
  const auto block = [this](const torch::Tensor& input) {
    const auto t = input + efcnet::drop_path(attn->forward(norm1->forward(input)), drop_path, is_training());
    return t + efcnet::drop_path(mlp->forward(norm2->forward(t)), drop_path, is_training());
  };
  if (recompute && torch::GradMode::is_enabled()) return recompute_in_backward(block, tokens, parameters());
  return block(tokens);
}

TokenMixerImpl::TokenMixerImpl(int64_t channels) {
  pos_embed = register_parameter("pos_embed", torch::zeros({1, 1, channels}));
  nn::Sequential blocks;
  for (int64_t i = 0; i < kDepth; ++i) blocks->push_back(TransformerBlock(channels, kHeads, kDropout, kDropPath));
  transformer = register_module("transformer", blocks);
}

torch::Tensor TokenMixerImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  // The NCHW buffer read as B*H*W runs of C consecutive floats, no permutation.
  const auto tokens = transformer->forward(x.contiguous().view({b * h * w, 1, c}) + pos_embed);
  return tokens.reshape({b, c, h, w});
}

EFusionImpl::EFusionImpl(int64_t channels) {
  embed = register_module("embed", conv2d(channels, channels, 3, false));
  GlobalFeature = register_module("GlobalFeature", TokenMixer(channels));
  LocalFeature = register_module("LocalFeature", efcnet::LocalFeature(channels));
  FFN = register_module("FFN", conv2d(2 * channels, channels, 3, false));
}

torch::Tensor EFusionImpl::forward(const torch::Tensor& x) {
  const auto e = embed->forward(x);
  return FFN->forward(torch::cat({GlobalFeature->forward(e), LocalFeature->forward(e)}, 1)) + x;
}

}  // namespace efcnet
