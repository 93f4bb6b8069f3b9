// The transformer MLP, with a memory-saving training path that recomputes its hidden layer.
#include "efcnet/model.h"

#include "autocast.h"

namespace efcnet {
namespace {

namespace F = torch::nn::functional;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// fc2(dropout(gelu(fc1(x)))) on (N, C) rows, keeping only x, the weights and a one-byte dropout
// mask for the backward pass, which recomputes fc1 and GELU. Same values and gradients as the
// plain composition.
class RecomputedMlp : public torch::autograd::Function<RecomputedMlp> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w1,
                               const torch::Tensor& b1, const torch::Tensor& w2, const torch::Tensor& b2,
                               double dropout) {
    const auto hidden = torch::addmm(b1, x, w1.t());
    auto activated = torch::gelu(hidden);
    torch::Tensor keep;
    if (dropout > 0.0) {
      keep = torch::empty(hidden.sizes(), hidden.options().dtype(torch::kUInt8)).bernoulli_(1.0 - dropout);
      activated = activated * keep * (1.0 / (1.0 - dropout));
    }
    ctx->saved_data["dropout"] = dropout;
    ctx->save_for_backward({x, w1, b1, w2});
    if (keep.defined()) ctx->saved_data["keep"] = keep;
    return torch::addmm(b2, activated, w2.t());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w1 = saved[1], &b1 = saved[2], &w2 = saved[3];
    const double dropout = ctx->saved_data["dropout"].toDouble();
    const auto& grad = grad_outputs[0];

    const auto hidden = torch::addmm(b1, x, w1.t());
    auto activated = torch::gelu(hidden);
    auto grad_activated = grad.mm(w2);
    if (dropout > 0.0) {
      const auto keep = ctx->saved_data["keep"].toTensor();
      const double scale = 1.0 / (1.0 - dropout);
      activated = activated * keep * scale;
      grad_activated = grad_activated * keep * scale;
    }
    const auto grad_hidden = torch::gelu_backward(grad_activated, hidden);
    return {grad_hidden.mm(w1),     grad_hidden.t().mm(x), grad_hidden.sum(0),
            grad.t().mm(activated), grad.sum(0),           torch::Tensor()};
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
