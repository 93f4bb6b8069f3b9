// The prepared inference path (include/efcnet/inference.h): the eval-mode network with its
// weights folded and its tensors laid out for oneDNN.
#include "efcnet/inference.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <stdexcept>
#include <string>

#include <torch/cuda.h>

#include "dnnl_linear.h"
#include "efcnet/runtime.h"
#include "layers.h"
#include "winograd_conv.h"

namespace efcnet {
namespace {

constexpr double kLeakySlope = 0.01;
// The token mixer works in chunks of tokens whose MLP hidden layer (4C floats a token) takes this
// many bytes: it stays in cache between LayerNorm, fc1, GELU, fc2 and the residual adds (SU3's
// mixer: 25% less time than all 65536 tokens at once, 2048 tokens the best of 512..4096). A size
// in bytes, not tokens, keeps the narrow mixers (C = 16, 64) from being cut into hundreds of tiny
// parallel regions, each of which waits for both threads: that made SU1 take 3.7 s instead of
// 0.06 s when another process shared the cores.
constexpr int64_t kTokenChunkHiddenBytes = int64_t{8} << 20;

using torch::Tensor;

// How tensors are laid out and multiplied on the model's device.
struct Backend {
  torch::Device device{torch::kCPU};
  torch::MemoryFormat format = torch::MemoryFormat::Contiguous;
  torch::ScalarType dtype = torch::kFloat32;  // of convolutions, linear layers and feature maps
  bool winograd = false;                      // 3x3 convolutions through WinogradConvolution
  bool dnnl_linear = false;                   // token-mixer linear layers through DnnlLinear
};

// A convolution with the following BatchNorm (if any) folded in: y = conv(x, W') + b'.
struct FoldedConv {
  Tensor weight, bias;
  int64_t padding = 0;
  std::shared_ptr<const WinogradConvolution> winograd;  // for 3x3 kernels where available

  Tensor operator()(const Tensor& x) const { return torch::conv2d(x, weight, bias, 1, padding); }

  // The same on blocked maps (winograd_conv.h), with the epilogue: by the Winograd kernel, else
  // directly through a channels-last copy.
  void blocked(const Tensor& x, const Tensor& dst, WinogradConvolution::Epilogue epilogue) const {
    using Epilogue = WinogradConvolution::Epilogue;
    if (winograd && (*winograd)(x, dst, epilogue)) return;
    Tensor input = torch::empty({x.size(0), x.size(1) * 16, x.size(2), x.size(3)},
                                x.options().memory_format(torch::MemoryFormat::ChannelsLast));
    from_blocked(x, input);
    Tensor y = (*this)(input);
    if (epilogue == Epilogue::relu) torch::relu_(y);
    if (epilogue == Epilogue::accumulate) {
      dst.add_(to_blocked(y));
    } else {
      to_blocked(y, dst);
    }
  }
};

Tensor double_copy(const Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); }

// W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps), computed in double.
FoldedConv fold(const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn, const Backend& backend) {
  Tensor weight = double_copy(conv.weight);
  Tensor bias = conv.bias.defined() ? double_copy(conv.bias) : torch::zeros({weight.size(0)}, torch::kFloat64);
  if (bn != nullptr) {
    const Tensor scale = double_copy(bn->weight) / (double_copy(bn->running_var) + bn->options.eps()).sqrt();
    weight = weight * scale.view({-1, 1, 1, 1});
    bias = (bias - double_copy(bn->running_mean)) * scale + double_copy(bn->bias);
  }
  FoldedConv folded;
  folded.weight = weight.to(backend.device, backend.dtype).contiguous(backend.format);
  folded.bias = bias.to(backend.device, backend.dtype);
  folded.padding = weight.size(2) / 2;
  // Winograd pays from 64 channels in and out (SU2..SU4); narrower layers (SEEM, conv3_3, SU1,
  // convolutional_out1) were as fast or slower with it.
  if (backend.winograd && weight.size(2) == 3 && weight.size(3) == 3 && weight.size(0) >= 64 && weight.size(1) >= 64) {
    folded.winograd = WinogradConvolution::create(folded.weight, folded.bias);
  }
  return folded;
}

FoldedConv fold(const ConvBlockImpl& block, const Backend& backend) {
  return fold(*block.conv, block.bn.get(), backend);
}

// Conv2d at index i of a SEEM Sequential, BatchNorm at i + 1.
FoldedConv fold_unit(const torch::nn::Sequential& seq, size_t i, const Backend& backend) {
  return fold(*seq->ptr(i)->as<torch::nn::Conv2dImpl>(), seq->ptr(i + 1)->as<torch::nn::BatchNorm2dImpl>(), backend);
}

Tensor& leaky_relu_in_place(Tensor& x) { return torch::leaky_relu_(x, kLeakySlope); }

// An NCHW copy of a channels-last map as one 2-D transpose (HW, C) -> (C, HW) per sample, which
// ATen copies block by block: twice as fast as contiguous() on the 4-D tensor.
Tensor to_nchw(const Tensor& x) {
  if (x.is_contiguous() || !x.is_contiguous(torch::MemoryFormat::ChannelsLast)) return x.contiguous();
  const int64_t n = x.size(0), c = x.size(1), pixels = x.size(2) * x.size(3);
  Tensor out = torch::empty(x.sizes(), x.options().memory_format(torch::MemoryFormat::Contiguous));
  for (int64_t b = 0; b < n; ++b) out[b].view({c, pixels}).copy_(x[b].permute({1, 2, 0}).reshape({pixels, c}).t());
  return out;
}

// ---------------------------------------------------------------------------------------------
// A token-mixer linear layer with what follows it (GELU, or the residual add) fused in: through
// DnnlLinear in float32 on the CPU where oneDNN is available, else torch::linear (the system BLAS,
// OpenBLAS, in float32; oneDNN in bfloat16) and a separate pass. LibTorch's own oneDNN tensors
// (mkldnn_linear) reorder the weights on every call, which made SU3's token mixer 6x slower when
// other processes shared the cores; DnnlLinear packs them once.
struct PreparedLinear {
  using Epilogue = DnnlLinear::Epilogue;
  Tensor weight, bias;  // (out, in), (out)
  Epilogue epilogue = Epilogue::gelu;
  std::shared_ptr<const DnnlLinear> fused;

  static PreparedLinear make(const Tensor& weight, const Tensor& bias, Epilogue epilogue, const Backend& backend) {
    PreparedLinear layer{weight.to(backend.device, backend.dtype).contiguous(),
                         bias.to(backend.device, backend.dtype).contiguous(), epilogue, nullptr};
    if (backend.dnnl_linear && backend.dtype == torch::kFloat32) {
      layer.fused = DnnlLinear::create(layer.weight, layer.bias, epilogue);
    }
    return layer;
  }

  // gelu: returns GELU(layer(x)); accumulate: adds layer(x) to `residual` and returns it.
  Tensor operator()(const Tensor& x, const Tensor& residual = {}) const {
    if (fused) {
      Tensor dst = epilogue == Epilogue::accumulate ? residual : torch::empty({x.size(0), weight.size(0)}, x.options());
      if ((*fused)(x, dst)) return dst;
    }
    Tensor y = torch::linear(x, weight, bias);
    return epilogue == Epilogue::gelu ? torch::gelu_(y) : residual.add_(y);
  }
};

struct PreparedTokenBlock {
  Tensor norm1_weight, norm1_bias, norm2_weight, norm2_bias;
  PreparedLinear attention;  // proj ∘ v-slice of qkv, exact for sequences of one token; accumulates
  PreparedLinear fc1;        // with GELU
  PreparedLinear fc2;        // accumulates
};

// The token mixer (GlobalFeature) on sequences of one token, applied in place to a (T, C) matrix.
struct PreparedTokenMixer {
  int64_t channels = 0;
  Tensor pos_embed;  // (C)
  std::vector<PreparedTokenBlock> blocks;
  torch::ScalarType dtype = torch::kFloat32;  // of the linear layers

  void apply_(const Tensor& tokens) const {
    const int64_t count = tokens.size(0);
    const int64_t chunk = std::max<int64_t>(1, kTokenChunkHiddenBytes / (4 * channels * int64_t{sizeof(float)}));
    for (int64_t start = 0; start < count; start += chunk) {
      mix_chunk_(tokens.narrow(0, start, std::min(chunk, count - start)));
    }
  }

  void mix_chunk_(const Tensor& tokens) const {
    // The residual stream stays in float32 (in float32 mode `t` is `tokens` itself).
    Tensor t = tokens.to(torch::kFloat32);
    t.add_(pos_embed);
    for (const auto& block : blocks) {
      block.attention(normalised(t, block.norm1_weight, block.norm1_bias), t);
      block.fc2(block.fc1(normalised(t, block.norm2_weight, block.norm2_bias)), t);
    }
    if (!t.is_same(tokens)) tokens.copy_(t);
  }

 private:
  Tensor normalised(const Tensor& t, const Tensor& weight, const Tensor& bias) const {
    return torch::layer_norm(t, {channels}, weight, bias, 1e-5).to(dtype);
  }
};

PreparedTokenMixer prepare_token_mixer(const TokenMixerImpl& mixer, const Backend& backend) {
  torch::NoGradGuard no_grad;
  PreparedTokenMixer prepared;
  prepared.channels = mixer.pos_embed.size(-1);
  prepared.dtype = backend.dtype;
  prepared.pos_embed = mixer.pos_embed.detach().reshape({-1}).to(backend.device).contiguous();
  const int64_t c = prepared.channels;
  for (const auto& child : mixer.transformer->children()) {
    const auto& block = *child->as<TransformerBlockImpl>();
    PreparedTokenBlock b;
    b.norm1_weight = block.norm1->weight.detach().to(backend.device);
    b.norm1_bias = block.norm1->bias.detach().to(backend.device);
    b.norm2_weight = block.norm2->weight.detach().to(backend.device);
    b.norm2_bias = block.norm2->bias.detach().to(backend.device);
    const auto& attn = *block.attn;
    const Tensor w_v = double_copy(attn.qkv->weight).narrow(0, 2 * c, c);
    const Tensor b_v = double_copy(attn.qkv->bias).narrow(0, 2 * c, c);
    const Tensor w_proj = double_copy(attn.proj->weight);
    using Epilogue = PreparedLinear::Epilogue;
    b.attention = PreparedLinear::make(w_proj.matmul(w_v), w_proj.matmul(b_v) + double_copy(attn.proj->bias),
                                       Epilogue::accumulate, backend);
    b.fc1 =
        PreparedLinear::make(block.mlp->fc1->weight.detach(), block.mlp->fc1->bias.detach(), Epilogue::gelu, backend);
    b.fc2 = PreparedLinear::make(block.mlp->fc2->weight.detach(), block.mlp->fc2->bias.detach(), Epilogue::accumulate,
                                 backend);
    prepared.blocks.push_back(std::move(b));
  }
  return prepared;
}

// ---------------------------------------------------------------------------------------------
// E-Fusion: dst = FFN(cat(GlobalFeature(e), LocalFeature(e))) + x with e = embed(x).
struct PreparedEFusion {
  FoldedConv embed, ffn;
  std::array<std::array<FoldedConv, 2>, 2> residual;  // [block][conv]
  PreparedTokenMixer mixer;
  Backend backend;

  // Writes into `dst` (a (N,C,H,W) view, e.g. a slice of the next concatenation) if defined,
  // else returns a new tensor.
  Tensor operator()(const Tensor& x, Tensor dst = {}) const {
    if (winograd_chain()) return forward_blocked(x, std::move(dst));
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    Tensor e = embed(x);
    // FFN's input, cat(global, local), filled in place by both branches.
    Tensor ffn_input = torch::empty({n, 2 * c, h, w}, x.options().memory_format(backend.format));

    // Local branch first: the token mixer below may work in place on e.
    Tensor r = e;
    for (size_t k = 0; k < residual.size(); ++k) {
      Tensor inner = residual[k][0](r);
      Tensor y = residual[k][1](torch::relu_(inner));
      if (k + 1 < residual.size()) {
        r = y.add_(r);
      } else {
        Tensor local = ffn_input.narrow(1, c, c);
        torch::add_out(local, y, r);
      }
    }

    // Tokens: runs of C floats of the NCHW buffer (TokenMixerImpl).
    Tensor tokens = to_nchw(e);
    mixer.apply_(tokens.view({n * h * w, c}));
    ffn_input.narrow(1, 0, c).copy_(tokens);

    Tensor out = ffn(ffn_input);
    if (!dst.defined()) return out.add_(x);
    torch::add_out(dst, out, x);
    return dst;
  }

 private:
  // Whether all six convolutions have Winograd kernels (SU2..SU4 on AVX-512): see forward_blocked.
  bool winograd_chain() const {
    bool all = embed.winograd && ffn.winograd;
    for (const auto& block : residual) {
      for (const FoldedConv& conv : block) all = all && conv.winograd;
    }
    return all;
  }

  // The same with every map of the convolution chain in oneDNN's blocked layout: no reorder
  // around each convolution, the ReLUs, the residual adds and the final + x fused into them
  // (SU3 on a 256x256 pair: 2.5 s -> 2.1 s; SU2 and SU4 0.27 -> 0.20 s each).
  Tensor forward_blocked(const Tensor& x, Tensor dst) const {
    using Epilogue = WinogradConvolution::Epilogue;
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    // FFN's input cat(global, local); the local branch works in its second half (for one
    // sample a dense blocked map itself).
    Tensor ffn_input = empty_blocked(n, 2 * c, h, w);
    Tensor local = ffn_input.narrow(1, c / 16, c / 16);
    Tensor x_blocked = to_blocked(x);
    embed.blocked(x_blocked, local, Epilogue::none);
    // Tokens: runs of C floats of e's NCHW buffer (TokenMixerImpl).
    Tensor global = torch::empty({n, c, h, w}, x.options());
    from_blocked(local, global);
    {
      Tensor inner = empty_blocked(n, c, h, w);
      for (const auto& block : residual) {
        block[0].blocked(local, inner, Epilogue::relu);
        block[1].blocked(inner, local, Epilogue::accumulate);
      }
    }
    mixer.apply_(global.view({n * h * w, c}));
    to_blocked(global, ffn_input.narrow(1, 0, c / 16));
    ffn.blocked(ffn_input, x_blocked, Epilogue::accumulate);  // x + FFN(...)
    if (!dst.defined()) dst = torch::empty({n, c, h, w}, x.options().memory_format(backend.format));
    from_blocked(x_blocked, dst);
    return dst;
  }
};

PreparedEFusion prepare_efusion(const EFusionImpl& su, const Backend& backend) {
  PreparedEFusion prepared;
  prepared.backend = backend;
  prepared.embed = fold(*su.embed, nullptr, backend);
  prepared.ffn = fold(*su.FFN, nullptr, backend);
  const auto blocks = su.LocalFeature->Extraction->children();
  for (size_t k = 0; k < 2; ++k) {
    const auto& seq = blocks[k]->as<ResidualBlockImpl>()->conv;
    prepared.residual[k][0] = fold(*seq->ptr(0)->as<torch::nn::Conv2dImpl>(), nullptr, backend);
    prepared.residual[k][1] = fold(*seq->ptr(2)->as<torch::nn::Conv2dImpl>(), nullptr, backend);
  }
  prepared.mixer = prepare_token_mixer(*su.GlobalFeature, backend);
  return prepared;
}

// ---------------------------------------------------------------------------------------------
// Coordinate attention on the stacked batch [functional; anatomical] (2N,C,H,W), written as
// cat(IC, VC) along channels into `dst` (N,2C,H,W).
struct PreparedCoordinateAttention {
  FoldedConv conv1;  // with bn1
  FoldedConv conv_h, conv_w;

  void operator()(const Tensor& x, Tensor& dst) const {
    const int64_t n = x.size(0) / 2, c = x.size(1), h = x.size(2), w = x.size(3);
    // Means over W and over H as reductions over the outer dimensions of the (N,H,W,C) view:
    // on a channels-last map 15x faster than mean(3) / mean(2) (0.2 s per 256² pair at C = 256).
    const Tensor pixels = x.permute({0, 2, 3, 1});
    const Tensor row_means = pixels.mean(2).permute({0, 2, 1}).unsqueeze(3);     // (2N,C,H,1)
    const Tensor column_means = pixels.mean(1).permute({0, 2, 1}).unsqueeze(3);  // (2N,C,W,1)
    Tensor y = conv1(torch::cat({row_means, column_means}, 2));
    y = y * (torch::relu6(y + 3.0) / 6.0);  // h_swish, as the reference writes it
    const auto parts = torch::split_with_sizes(y, {h, w}, 2);
    const Tensor attention_h = torch::sigmoid(conv_h(parts[0]));
    const Tensor attention_w = torch::sigmoid(conv_w(parts[1].permute({0, 1, 3, 2})));
    for (int64_t half = 0; half < 2; ++half) {  // functional channels first, then anatomical
      Tensor out = dst.narrow(1, half * c, c);
      torch::mul_out(out, x.narrow(0, half * n, n), attention_w.narrow(0, half * n, n));
      out.mul_(attention_h.narrow(0, half * n, n));
    }
  }
};

PreparedCoordinateAttention prepare_coordinate_attention(const CoordinateAttentionImpl& ca, const Backend& backend) {
  return {fold(*ca.conv1, ca.bn1.get(), backend), fold(*ca.conv_h, nullptr, backend),
          fold(*ca.conv_w, nullptr, backend)};
}

// ---------------------------------------------------------------------------------------------
struct PreparedSeem {
  FoldedConv up;
  FoldedConv split;               // conv_efg.0 (8->2) and conv_1X1.0 (8->1) on the same input: 8->3
  std::array<FoldedConv, 3> efg;  // conv_efg.3, .6, .9
  FoldedConv revert, down;

  Tensor operator()(const Tensor& functional) const {
    Tensor u = up(functional);
    Tensor s = split(torch::relu_(u));
    torch::relu_(s);
    Tensor a = s.narrow(1, 0, 2);
    for (const auto& conv : efg) {
      a = conv(a);
      torch::relu_(a);
    }
    Tensor merged = revert(torch::cat({a, s.narrow(1, 2, 1)}, 1));
    Tensor out = down(torch::relu_(merged));
    return torch::relu_(out);
  }
};

PreparedSeem prepare_seem(const SmoothEdgeExtractorImpl& seem, const Backend& backend) {
  PreparedSeem prepared;
  prepared.up = fold_unit(seem.up, 0, backend);
  const FoldedConv efg0 = fold_unit(seem.conv_efg, 0, backend);
  const FoldedConv branch_b = fold_unit(seem.conv_1X1, 0, backend);
  prepared.split = {torch::cat({efg0.weight, branch_b.weight}, 0).contiguous(backend.format),
                    torch::cat({efg0.bias, branch_b.bias}, 0), 0, nullptr};
  for (size_t k = 0; k < 3; ++k) prepared.efg[k] = fold_unit(seem.conv_efg, 3 * (k + 1), backend);
  prepared.revert = fold_unit(seem.conv_revert, 0, backend);
  prepared.down = fold_unit(seem.down, 0, backend);
  return prepared;
}

// Adds the seconds since the last lap to a stage, synchronising the device first.
class StageClock {
 public:
  StageClock(StageSeconds* seconds, const torch::Device& device) : seconds_(seconds), device_(device) {}
  void lap(double StageSeconds::*stage) {
    if (seconds_ == nullptr) return;
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
    const auto now = Clock::now();
    seconds_->*stage += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  using Clock = std::chrono::steady_clock;
  StageSeconds* seconds_;
  torch::Device device_;
  Clock::time_point last_ = Clock::now();
};

}  // namespace

// ---------------------------------------------------------------------------------------------
struct InferenceModel::Impl {
  Backend backend;
  PreparedSeem seem;
  std::array<FoldedConv, 3> encoder;  // conv3_3, conv5_5, conv7_7
  std::array<PreparedCoordinateAttention, 3> attention;
  std::array<FoldedConv, 4> merge;  // conv1..conv4
  std::array<PreparedEFusion, 4> su;
  FoldedConv out1, out2;

  // `keep_features`: also return the anatomical encoder features (v1, v2, v3), which otherwise
  // are released as soon as the coordinate attention has read them.
  FusionOutput forward(const Tensor& functional, const Tensor& anatomical, bool keep_features,
                       StageClock& clock) const {
    const int64_t n = functional.size(0), h = functional.size(2), w = functional.size(3);
    const auto options = functional.options().dtype(backend.dtype).memory_format(backend.format);
    // Both inputs through the shared encoder as one batch; eval-mode BatchNorm is per sample.
    Tensor x = torch::cat({functional, anatomical}, 0).to(backend.dtype).contiguous(backend.format);
    std::array<Tensor, 3> features;
    std::array<Tensor, 3> merged;
    for (size_t k = 0; k < 3; ++k) {
      x = encoder[k](x);
      features[k] = leaky_relu_in_place(x);
    }
    x = Tensor();
    for (size_t k = 0; k < 3; ++k) {
      Tensor concatenated = torch::empty({n, 2 * features[k].size(1), h, w}, options);
      attention[k](features[k], concatenated);
      merged[k] = merge[k](concatenated);
      leaky_relu_in_place(merged[k]);
    }
    FusionOutput out;
    if (keep_features) {
      out.v1 = features[0].narrow(0, n, n).to(torch::kFloat32);
      out.v2 = features[1].narrow(0, n, n).to(torch::kFloat32);
      out.v3 = features[2].narrow(0, n, n).to(torch::kFloat32);
    }
    features = {};
    clock.lap(&StageSeconds::encoder);

    // SU1..SU3 write their outputs straight into conv4's input, cat(F1, F2, F3).
    const int64_t c1 = merged[0].size(1), c2 = merged[1].size(1), c3 = merged[2].size(1);
    Tensor scales = torch::empty({n, c1 + c2 + c3, h, w}, options);
    const std::array<int64_t, 3> offsets{0, c1, c1 + c2};
    const std::array<double StageSeconds::*, 3> stages{&StageSeconds::su1, &StageSeconds::su2, &StageSeconds::su3};
    for (size_t k = 0; k < 3; ++k) {
      su[k](merged[k], scales.narrow(1, offsets[k], merged[k].size(1)));
      merged[k] = Tensor();
      clock.lap(stages[k]);
    }
    Tensor f4 = merge[3](scales);
    scales = Tensor();
    f4 = su[3](leaky_relu_in_place(f4));
    clock.lap(&StageSeconds::su4);

    Tensor decoded = out1(f4);
    Tensor fused = out2(leaky_relu_in_place(decoded));
    out.fused = torch::sigmoid_(fused).to(torch::kFloat32).contiguous();
    clock.lap(&StageSeconds::decoder);
    return out;
  }
};

bool bfloat16_supported() { return cpu_features().avx512; }

InferenceModel::InferenceModel(const SmoothEdgeExtractorImpl& seem, const FusionNetworkImpl& network,
                               const InferenceOptions& options)
    : impl_(std::make_unique<Impl>()) {
  torch::NoGradGuard no_grad;
  Backend& backend = impl_->backend;
  backend.device = network.conv3_3->conv->weight.device();
  if (backend.device.is_cpu()) backend.format = torch::MemoryFormat::ChannelsLast;
  backend.winograd = options.winograd && backend.device.is_cpu();
  backend.dnnl_linear = options.dnnl_linear && backend.device.is_cpu();
  // SEEM (a few MFLOP per pixel) stays in float32 whatever the precision.
  impl_->seem = prepare_seem(seem, backend);
  if (options.precision == Precision::bfloat16) {
    if (!backend.device.is_cpu()) throw OptionError("bfloat16 precision is implemented for the CPU only");
    if (!bfloat16_supported()) {
      throw OptionError(
          "bfloat16 precision needs a CPU with AVX-512 (BW, VL and DQ), which this one lacks; "
          "use float32");
    }
    backend.dtype = torch::kBFloat16;
  }
  impl_->encoder = {fold(*network.conv3_3, backend), fold(*network.conv5_5, backend), fold(*network.conv7_7, backend)};
  impl_->attention = {prepare_coordinate_attention(*network.ca1, backend),
                      prepare_coordinate_attention(*network.ca2, backend),
                      prepare_coordinate_attention(*network.ca3, backend)};
  impl_->merge = {fold(*network.conv1, backend), fold(*network.conv2, backend), fold(*network.conv3, backend),
                  fold(*network.conv4, backend)};
  impl_->su = {prepare_efusion(*network.SU1, backend), prepare_efusion(*network.SU2, backend),
               prepare_efusion(*network.SU3, backend), prepare_efusion(*network.SU4, backend)};
  impl_->out1 = fold(*network.convolutional_out1, backend);
  impl_->out2 = fold(*network.convolutional_out2->conv, nullptr, backend);
}

InferenceModel::~InferenceModel() = default;
InferenceModel::InferenceModel(InferenceModel&&) noexcept = default;
InferenceModel& InferenceModel::operator=(InferenceModel&&) noexcept = default;

torch::Device InferenceModel::device() const { return impl_->backend.device; }

int InferenceModel::winograd_layers() const {
  int count = 0;
  const auto counted = [&count](const FoldedConv& conv) { count += conv.winograd != nullptr; };
  for (const PreparedEFusion& su : impl_->su) {
    counted(su.embed);
    counted(su.ffn);
    for (const auto& block : su.residual) {
      for (const FoldedConv& conv : block) counted(conv);
    }
  }
  return count;
}

int InferenceModel::dnnl_linear_layers() const {
  int count = 0;
  for (const PreparedEFusion& su : impl_->su) {
    for (const PreparedTokenBlock& block : su.mixer.blocks) {
      count += (block.attention.fused != nullptr) + (block.fc1.fused != nullptr) + (block.fc2.fused != nullptr);
    }
  }
  return count;
}

torch::Tensor InferenceModel::seem(const torch::Tensor& functional) const {
  torch::InferenceMode inference;
  return impl_->seem(functional.contiguous(impl_->backend.format)).contiguous();
}

FusionOutput InferenceModel::forward(const torch::Tensor& functional, const torch::Tensor& anatomical,
                                     StageSeconds* seconds) const {
  torch::InferenceMode inference;
  StageClock clock(seconds, impl_->backend.device);
  return impl_->forward(functional, anatomical, /*keep_features=*/true, clock);
}

torch::Tensor InferenceModel::fuse(const torch::Tensor& functional_y, const torch::Tensor& anatomical,
                                   StageSeconds* seconds) const {
  torch::InferenceMode inference;
  StageClock clock(seconds, impl_->backend.device);
  const Tensor s = impl_->seem(functional_y.contiguous(impl_->backend.format));
  clock.lap(&StageSeconds::seem);
  return impl_->forward(s, anatomical, /*keep_features=*/false, clock).fused;
}

// ---------------------------------------------------------------------------------------------
StageFlops counted_flops(int64_t height, int64_t width, bool textbook_attention) {
  const double pixels = static_cast<double>(height) * static_cast<double>(width);
  const double lines = static_cast<double>(height + width);  // positions coordinate attention convolves
  // 2 FLOPs per multiply-add of a k x k convolution, per output position.
  const auto conv = [](double in, double out, double k) { return 2.0 * in * out * k * k; };
  const auto efusion = [&](double c) {
    const double convs = conv(c, c, 3) * 5 + conv(2 * c, c, 3);  // embed, 4 residual, FFN
    // Per token (one per pixel): attention, fc1 (C->4C), fc2 (4C->C), two blocks.
    const double attention = textbook_attention ? 2.0 * c * 3 * c + 2.0 * c * c + 4.0 * c : 2.0 * c * c;
    const double tokens = 2 * (attention + 2 * (2.0 * c * 4 * c));
    return pixels * (convs + tokens);
  };
  const auto coordinate_attention = [&](double c) {
    const double hidden = static_cast<double>(layers::attention_hidden(static_cast<int64_t>(c)));
    return 2 * lines * (conv(c, hidden, 1) + conv(hidden, c, 1));
  };

  StageFlops f;
  f.seem = pixels * (conv(1, 8, 3) + conv(8, 2, 1) + conv(2, 2, 3) + conv(2, 8, 1) + conv(8, 1, 1) + conv(8, 1, 1) +
                     conv(2, 8, 1) + conv(8, 1, 3));
  const auto layer = [&conv](const layers::Conv& c) {
    return conv(static_cast<double>(c.in), static_cast<double>(c.out), static_cast<double>(c.kernel));
  };
  f.encoder = 0;
  for (std::size_t k = 0; k < layers::kEncoder.size(); ++k) {
    // The encoder and coordinate attention run on both inputs; the merge once.
    f.encoder += 2 * pixels * layer(layers::kEncoder[k]) +
                 coordinate_attention(static_cast<double>(layers::kEncoder[k].out)) + pixels * layer(layers::kMerge[k]);
  }
  f.su1 = efusion(static_cast<double>(layers::kMerge[0].out));
  f.su2 = efusion(static_cast<double>(layers::kMerge[1].out));
  f.su3 = efusion(static_cast<double>(layers::kMerge[2].out));
  f.su4 = pixels * layer(layers::kJoin) + efusion(static_cast<double>(layers::kJoin.out));
  f.decoder = pixels * (layer(layers::kDecoderBlock) + layer(layers::kOutput));
  return f;
}

int64_t estimated_working_bytes(int64_t height, int64_t width) {
  // Alive at the widest point, inside SU3: conv4's input cat(F1, F2, F3) (336 floats per pixel),
  // SU3's input and its blocked copy (2 x 256), the tokens and the residual chain's inner map
  // (2 x 256), FFN's blocked input with the local branch in it (512): about 1900 floats per pixel,
  // the banded convolutions' copies on top at large sizes. The heap that keeps freed blocks for
  // reuse (keep_freed_memory_for_reuse) fragments on top of that: peak RSS grew by 13.6 KiB per
  // pixel from 256x256 to 512x512.
  constexpr int64_t kBytesPerPixel = 14 * 1024;
  // Token chunks, SEEM, oneDNN scratch: Winograd's bands (winograd_conv.h) and their copies take
  // ~450 MB; peak RSS above the loaded weights was 1.81 GB at 256x256 and 4.49 GB at 512x512.
  constexpr int64_t kFixedBytes = int64_t{1} << 30;
  return height * width * kBytesPerPixel + kFixedBytes;
}

std::string working_memory_shortfall(int64_t height, int64_t width) {
  const int64_t needed = estimated_working_bytes(height, width);
  const int64_t available = available_memory_bytes();
  if (available < 0 || needed <= available) return {};
  return "a " + std::to_string(width) + "x" + std::to_string(height) + " pair needs about " + gibibytes(needed) +
         " of working memory, but only " + gibibytes(available) + " is available (MemAvailable)";
}

void set_threads(int threads) { torch::set_num_threads(thread_count(threads)); }

}  // namespace efcnet
