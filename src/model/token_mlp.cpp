// The transformer MLP, with a memory-saving training path that recomputes its hidden layer.
#include "efcnet/model.h"

#include <algorithm>

#include "autocast.h"

namespace efcnet {
namespace {

namespace F = torch::nn::functional;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per chunk of the recomputation, so that its hidden-layer temporaries (four of them in the
// backward pass) stay small beside the activations the step keeps.
constexpr int64_t kChunkBytes = int64_t{64} << 20;

int64_t chunk_rows(const torch::Tensor& w1, const torch::Tensor& x) {
  return std::max<int64_t>(1, kChunkBytes / (w1.size(0) * static_cast<int64_t>(x.element_size())));
}

// fc2(dropout(gelu(fc1(x)))) on (N, C) rows, keeping only x, the weights and a one-byte dropout
// mask for the backward pass, which recomputes fc1 and GELU, a chunk of rows at a time. Same
// values and gradients as the plain composition, to rounding (the weights' gradients are summed
// chunk by chunk).
class RecomputedMlp : public torch::autograd::Function<RecomputedMlp> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w1,
                               const torch::Tensor& b1, const torch::Tensor& w2, const torch::Tensor& b2,
                               double dropout) {
    const int64_t rows = x.size(0);
    torch::Tensor keep;
    if (dropout > 0.0) {
      keep = torch::empty({rows, w1.size(0)}, x.options().dtype(torch::kUInt8)).bernoulli_(1.0 - dropout);
    }
    auto out = torch::empty({rows, w2.size(0)}, x.options());
    const int64_t step = chunk_rows(w1, x);
    for (int64_t start = 0; start < rows; start += step) {
      const int64_t length = std::min(step, rows - start);
      auto activated = torch::gelu(torch::addmm(b1, x.narrow(0, start, length), w1.t()));
      if (keep.defined()) activated = activated * keep.narrow(0, start, length) * (1.0 / (1.0 - dropout));
      out.narrow(0, start, length).copy_(torch::addmm(b2, activated, w2.t()));
    }
    ctx->saved_data["dropout"] = dropout;
    ctx->save_for_backward({x, w1, b1, w2});
    if (keep.defined()) ctx->saved_data["keep"] = keep;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w1 = saved[1], &b1 = saved[2], &w2 = saved[3];
    const double dropout = ctx->saved_data["dropout"].toDouble();
    const auto keep = dropout > 0.0 ? ctx->saved_data["keep"].toTensor() : torch::Tensor();
    const double scale = dropout > 0.0 ? 1.0 / (1.0 - dropout) : 1.0;
    const auto& grad = grad_outputs[0];

    const int64_t rows = x.size(0);
    auto grad_x = torch::empty_like(x);
    // Sums over chunks in float32 also under bfloat16 autocast.
    const auto sum_like = [](const torch::Tensor& t) {
      return torch::zeros(t.sizes(), t.options().dtype(torch::kFloat32));
    };
    auto grad_w1 = sum_like(w1);
    auto grad_b1 = sum_like(b1);
    auto grad_w2 = sum_like(w2);
    const int64_t step = chunk_rows(w1, x);
    for (int64_t start = 0; start < rows; start += step) {
      const int64_t length = std::min(step, rows - start);
      const auto x_rows = x.narrow(0, start, length);
      const auto grad_rows = grad.narrow(0, start, length);
      const auto hidden = torch::addmm(b1, x_rows, w1.t());
      auto activated = torch::gelu(hidden);
      auto grad_activated = grad_rows.mm(w2);
      if (keep.defined()) {
        const auto keep_rows = keep.narrow(0, start, length);
        activated = activated * keep_rows * scale;
        grad_activated = grad_activated * keep_rows * scale;
      }
      const auto grad_hidden = torch::gelu_backward(grad_activated, hidden);
      grad_x.narrow(0, start, length).copy_(grad_hidden.mm(w1));
      grad_w1.add_(grad_hidden.t().mm(x_rows));
      grad_b1.add_(grad_hidden.sum(0));
      grad_w2.add_(grad_rows.t().mm(activated));
    }
    return {grad_x,
            grad_w1.to(w1.scalar_type()),
            grad_b1.to(b1.scalar_type()),
            grad_w2.to(w2.scalar_type()),
            grad.sum(0),
            torch::Tensor()};
  }
};

}  // namespace

TokenMlpImpl::TokenMlpImpl(int64_t dim, int64_t hidden, double dropout_) : dropout(dropout_) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

torch::Tensor TokenMlpImpl::forward(const torch::Tensor& tokens) {
  const auto options = F::DropoutFuncOptions().p(dropout).training(is_training());
  const int64_t rows = tokens.numel() / tokens.size(-1);
  const int64_t hidden_bytes = rows * fc1->weight.size(0) * static_cast<int64_t>(tokens.element_size());
  if (torch::GradMode::is_enabled() && fc1->weight.requires_grad() && hidden_bytes > recompute_above_bytes) {
    // Under autocast the function's forward would run its matmuls in the lower precision, but its
    // backward (outside autocast) would recompute them in float32 against lower-precision saved
    // inputs: it gets its inputs cast here instead, where autograd sees the casts and returns
    // float32 gradients to the weights.
    const auto lower = autocast_dtype(tokens);
    const auto cast = [&lower](const torch::Tensor& t) { return lower ? t.to(*lower) : t; };
    const auto out =
        RecomputedMlp::apply(cast(tokens.reshape({rows, tokens.size(-1)})), cast(fc1->weight), cast(fc1->bias),
                             cast(fc2->weight), cast(fc2->bias), is_training() ? dropout : 0.0);
    return F::dropout(out.view(tokens.sizes()), options);
  }
  const auto hidden = F::dropout(torch::gelu(fc1->forward(tokens)), options);
  return F::dropout(fc2->forward(hidden), options);
}

}  // namespace efcnet
