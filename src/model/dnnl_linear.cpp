#include "dnnl_linear.h"

#include <optional>
#include <tuple>

#include "dnnl_support.h"

namespace efcnet {

#if EFCNET_DNNL_KERNELS

using dnnl::memory;

struct DnnlLinear::Impl {
  // The primitive for one row count M, with the weights packed in the layout it chose.
  struct Kernel {
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul primitive;
    memory weights;
  };

  torch::Tensor weight_t, bias;  // (in, out) and (1, out), contiguous float32
  Epilogue epilogue = Epilogue::gelu;
  // By (M, row stride of x, row stride of dst).
  using Shape = std::tuple<int64_t, int64_t, int64_t>;
  dnnl_support::KernelCache<Shape, Kernel> kernels;

  const Kernel* kernel(int64_t rows, int64_t x_stride, int64_t dst_stride) const {
    return kernels.get({rows, x_stride, dst_stride}, [this](const Shape& s) { return make_kernel(s); });
  }

  std::optional<Kernel> make_kernel(const Shape& shape) const {
    const auto [rows, x_stride, dst_stride] = shape;
    const int64_t in = weight_t.size(0), out = weight_t.size(1);
    const dnnl::primitive_attr attr = dnnl_support::inference_attr(
        epilogue == Epilogue::gelu ? std::optional(dnnl::algorithm::eltwise_gelu_erf) : std::nullopt,
        epilogue == Epilogue::accumulate);
    const dnnl::engine& engine = dnnl_support::cpu_engine();
    try {
      const dnnl::matmul::desc desc(memory::desc({rows, in}, memory::data_type::f32, memory::dims{x_stride, 1}),
                                    memory::desc({in, out}, memory::data_type::f32, memory::format_tag::any),
                                    memory::desc({1, out}, memory::data_type::f32, memory::format_tag::ab),
                                    memory::desc({rows, out}, memory::data_type::f32, memory::dims{dst_stride, 1}));
      Kernel kernel{dnnl::matmul::primitive_desc(desc, attr, engine), {}, {}};
      kernel.primitive = dnnl::matmul(kernel.pd);
      kernel.weights = memory(kernel.pd.weights_desc(), engine);
      memory user_weights(dnnl_support::strided_desc(weight_t), engine, weight_t.data_ptr());
      dnnl::stream stream(engine);
      dnnl::reorder(user_weights, kernel.weights).execute(stream, user_weights, kernel.weights);
      stream.wait();
      return kernel;
    } catch (const dnnl::error&) {
      return std::nullopt;
    }
  }
};

std::shared_ptr<const DnnlLinear> DnnlLinear::create(const torch::Tensor& weight, const torch::Tensor& bias,
                                                     Epilogue epilogue) {
  if (!dnnl_support::runtime_matches_headers()) return nullptr;
  if (!weight.device().is_cpu() || weight.scalar_type() != torch::kFloat32 || weight.dim() != 2 || !bias.defined() ||
      !bias.device().is_cpu() || bias.scalar_type() != torch::kFloat32 || bias.numel() != weight.size(0)) {
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->weight_t = weight.detach().t().contiguous();
  impl->bias = bias.detach().reshape({1, -1}).contiguous().clone();
  impl->epilogue = epilogue;
  return std::shared_ptr<const DnnlLinear>(new DnnlLinear(std::move(impl)));
}

bool DnnlLinear::operator()(const torch::Tensor& x, const torch::Tensor& dst) const {
  const int64_t in = impl_->weight_t.size(0), out = impl_->weight_t.size(1);
  const auto usable = [](const torch::Tensor& t, int64_t columns) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.dim() == 2 && t.size(1) == columns &&
           t.stride(1) == 1 && t.size(0) > 0;
  };
  if (!usable(x, in) || !usable(dst, out) || x.size(0) != dst.size(0)) return false;
  const Impl::Kernel* kernel = impl_->kernel(x.size(0), x.stride(0), dst.stride(0));
  if (kernel == nullptr) return false;
  const dnnl::engine& engine = dnnl_support::cpu_engine();
  dnnl::stream stream(engine);
  memory src(kernel->pd.src_desc(), engine, x.data_ptr());
  memory destination(kernel->pd.dst_desc(), engine, dst.data_ptr());
  memory bias(kernel->pd.bias_desc(), engine, impl_->bias.data_ptr());
  auto [scratchpad, scratchpad_bytes] = dnnl_support::allocate(kernel->pd.scratchpad_desc(), engine);
  kernel->primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                     {DNNL_ARG_WEIGHTS, kernel->weights},
                                     {DNNL_ARG_BIAS, bias},
                                     {DNNL_ARG_DST, destination},
                                     {DNNL_ARG_SCRATCHPAD, scratchpad}});
  stream.wait();
  return true;
}

#else  // no oneDNN 2.x headers at build time: the token mixer's layers stay LibTorch's

struct DnnlLinear::Impl {};

std::shared_ptr<const DnnlLinear> DnnlLinear::create(const torch::Tensor&, const torch::Tensor&, Epilogue) {
  return nullptr;
}

bool DnnlLinear::operator()(const torch::Tensor&, const torch::Tensor&) const { return false; }

#endif

DnnlLinear::DnnlLinear(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DnnlLinear::~DnnlLinear() = default;

}  // namespace efcnet
