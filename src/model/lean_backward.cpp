// Autograd functions that keep less for the backward pass than LibTorch's own ops would.
#include "lean_backward.h"

#include <algorithm>
#include <mutex>
#include <optional>

#include <ATen/ExpandUtils.h>

#include "autocast.h"

namespace efcnet {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Generator default_generator(const torch::Device& device) { return at::globalContext().defaultGenerator(device); }

torch::Tensor generator_state(at::Generator generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_generator_state(at::Generator generator, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// What the recomputation needs besides the saved input: the stage and the forward pass's
// random-number state and autocast precision. Held by the autograd context as a capsule.
struct RecomputedStageState : torch::CustomClassHolder {
  std::function<torch::Tensor(const torch::Tensor&)> stage;
  torch::Tensor generator_state;
  std::optional<torch::ScalarType> autocast;
};

class RecomputedStage : public torch::autograd::Function<RecomputedStage> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, torch::TensorList parameters,
                               const std::function<torch::Tensor(const torch::Tensor&)>& stage) {
    auto state = c10::make_intrusive<RecomputedStageState>();
    state->stage = stage;
    state->generator_state = generator_state(default_generator(input.device()));
    state->autocast = autocast_dtype(input);
    TORCH_CHECK(!state->autocast || *state->autocast == torch::kBFloat16,
                "recomputation repeats bfloat16 autocast only");
    ctx->saved_data["state"] = at::IValue::make_capsule(state);
    // The parameters are the node's inputs so that it runs in the backward pass even where the
    // input needs no gradient; their gradients do not pass through it (backward).
    ctx->saved_data["parameters"] = static_cast<int64_t>(parameters.size());
    ctx->save_for_backward({input});
    ctx->saved_data["input_requires_grad"] = input.requires_grad();
    return stage(input);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto state = c10::static_intrusive_pointer_cast<RecomputedStageState>(ctx->saved_data["state"].toCapsule());
    const bool input_requires_grad = ctx->saved_data["input_requires_grad"].toBool();
    const auto saved = ctx->get_saved_variables();
    const auto input = saved[0].detach().requires_grad_(input_requires_grad);
    const int64_t parameter_count = ctx->saved_data["parameters"].toInt();

    const auto generator = default_generator(input.device());
    const auto current_state = generator_state(generator);
    set_generator_state(generator, state->generator_state);
    torch::Tensor output;
    {
      torch::AutoGradMode recording(true);
      std::optional<Bfloat16Autocast> autocast;
      if (state->autocast) autocast.emplace(input.device().type());
      output = state->stage(input);
    }
    set_generator_state(generator, current_state);

    // As PyTorch's reentrant checkpoint: the parameters' gradients accumulate into their .grad
    // here, once, through their own accumulators (and hooks, which gradient averaging in
    // distributed training listens to); the node returns only the input's.
    torch::autograd::backward({output}, {grad_outputs[0]});
    variable_list result(2 + parameter_count);
    if (input_requires_grad) result[0] = input.grad();
    return result;  // the last slot, the stage, has no gradient
  }
};

class BatchNormLeakyRelu : public torch::autograd::Function<BatchNormLeakyRelu> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, const torch::Tensor& running_mean,
                               const torch::Tensor& running_var, double momentum, double eps, double slope) {
    const auto [normalised, mean, invstd] =
        at::native_batch_norm(x, weight, bias, running_mean, running_var, /*training=*/true, momentum, eps);
    ctx->save_for_backward({x, weight, bias, mean, invstd});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["slope"] = slope;
    return at::leaky_relu(normalised, slope);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &bias = saved[2], &mean = saved[3], &invstd = saved[4];
    const auto per_channel = [&x](const torch::Tensor& t) {
      std::vector<int64_t> shape(x.dim(), 1);
      shape[1] = t.numel();
      return t.view(shape);
    };
    // In x's precision, as the forward pass computed it (bfloat16 under autocast; the statistics
    // and the affine parameters are float32).
    const auto normalised =
        ((x - per_channel(mean)) * per_channel(invstd * weight) + per_channel(bias)).to(x.scalar_type());
    const auto grad_normalised =
        at::leaky_relu_backward(grad_outputs[0], normalised, ctx->saved_data["slope"].toDouble(),
                                /*self_is_result=*/false);
    const auto [grad_x, grad_weight, grad_bias] = at::native_batch_norm_backward(
        grad_normalised, x, weight, {}, {}, mean, invstd, /*train=*/true, ctx->saved_data["eps"].toDouble(),
        {x.requires_grad(), weight.requires_grad(), bias.requires_grad()});
    return {grad_x, grad_weight, grad_bias, {}, {}, {}, {}, {}};
  }
};

class GatedProduct : public torch::autograd::Function<GatedProduct> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& gate_w,
                               const torch::Tensor& gate_h) {
    ctx->save_for_backward({x, gate_w, gate_h});
    return x * gate_w * gate_h;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &gate_w = saved[1], &gate_h = saved[2];
    const auto& grad = grad_outputs[0];
    const auto grad_x = x.requires_grad() ? grad * gate_w * gate_h : torch::Tensor();
    const auto grad_gates = grad * x;
    const auto grad_w = gate_w.requires_grad() ? at::sum_to(grad_gates * gate_h, gate_w.sizes()) : torch::Tensor();
    const auto grad_h = gate_h.requires_grad() ? at::sum_to(grad_gates * gate_w, gate_h.sizes()) : torch::Tensor();
    return {grad_x, grad_w, grad_h};
  }
};

}  // namespace

bool recording_gradients(const torch::Tensor& input, const std::vector<torch::Tensor>& parameters) {
  if (!torch::GradMode::is_enabled()) return false;
  if (input.requires_grad()) return true;
  return std::any_of(parameters.begin(), parameters.end(), [](const torch::Tensor& p) { return p.requires_grad(); });
}

torch::Tensor recompute_in_backward(const std::function<torch::Tensor(const torch::Tensor&)>& stage,
                                    const torch::Tensor& input, const std::vector<torch::Tensor>& parameters) {
  if (!recording_gradients(input, parameters)) return stage(input);
  return RecomputedStage::apply(input, torch::TensorList(parameters), stage);
}

torch::Tensor batch_norm_leaky_relu(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, double negative_slope) {
  TORCH_CHECK(bn.options.momentum().has_value() && bn.options.affine() && bn.options.track_running_stats(),
              "batch_norm_leaky_relu: BatchNorm with momentum, affine parameters and running statistics only");
  {
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked.add_(1);  // as BatchNorm2d's own forward does in training
  }
  return BatchNormLeakyRelu::apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, *bn.options.momentum(),
                                   bn.options.eps(), negative_slope);
}

torch::Tensor gated_product(const torch::Tensor& x, const torch::Tensor& gate_w, const torch::Tensor& gate_h) {
  return GatedProduct::apply(x, gate_w, gate_h);
}

}  // namespace efcnet
