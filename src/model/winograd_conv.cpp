#include "winograd_conv.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "dnnl_support.h"

namespace efcnet {

#if EFCNET_DNNL_KERNELS

namespace {

using dnnl::memory;
using dnnl_support::allocate;
using dnnl_support::strided_desc;

// Output rows per band: oneDNN's Winograd scratchpad grows with the pixels convolved at once
// (478 MB for SU3's FFN on one 256x256 map, 7 KiB per pixel), so large maps are convolved in
// bands of rows holding about 8 Mi floats of the wider side (64 rows of 256 x 512 channels).
int64_t band_rows(int64_t n, int64_t w, int64_t channels) {
  constexpr int64_t kBandFloats = int64_t{1} << 23;
  return std::max<int64_t>(4, kBandFloats / (n * w * channels) / 4 * 4);  // whole 4-row tiles
}

}  // namespace

struct WinogradConvolution::Impl {
  // The primitive for one band shape, with the weights in the layout it chose.
  struct Kernel {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward primitive;
    memory weights;
  };

  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  torch::Tensor weight, bias;  // OIHW, O; contiguous float32
  mutable std::mutex mutex;
  // By (N, input rows, W, zero rows above, zero rows below): a band inside the map reads its
  // neighbours' rows instead of padding.
  using Shape = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>;
  mutable std::map<Shape, std::optional<Kernel>> kernels;

  // nullptr where oneDNN has no Winograd implementation for this shape on this CPU.
  const Kernel* kernel(const Shape& shape) const {
    const std::lock_guard<std::mutex> lock(mutex);
    auto [it, inserted] = kernels.try_emplace(shape);
    if (inserted) it->second = make_kernel(shape);
    return it->second ? &*it->second : nullptr;
  }

  std::optional<Kernel> make_kernel(const Shape& shape) const {
    const auto [n, h, w, top, bottom] = shape;
    const int64_t out = weight.size(0), in = weight.size(1);
    const auto any = [](memory::dims dims) { return memory::desc(dims, memory::data_type::f32, memory::format_tag::any); };
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    try {
      const dnnl::convolution_forward::desc desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd, any({n, in, h, w}),
          any({out, in, 3, 3}), memory::desc({out}, memory::data_type::f32, memory::format_tag::x),
          any({n, out, h + top + bottom - 2, w}), {1, 1}, {top, 1}, {bottom, 1});
      Kernel kernel{dnnl::convolution_forward::primitive_desc(desc, attr, engine), {}, {}};
      kernel.primitive = dnnl::convolution_forward(kernel.pd);
      // Band shapes share the transformed weights where their layouts agree (they do on AVX-512):
      // transforming them again for every band shape added ~0.4 s to the first 256² pair.
      for (const auto& [other_shape, other] : kernels) {
        if (other && other->pd.weights_desc() == kernel.pd.weights_desc()) {
          kernel.weights = other->weights;
          return kernel;
        }
      }
      kernel.weights = memory(kernel.pd.weights_desc(), engine);
      memory user_weights(strided_desc(weight), engine, weight.data_ptr());
      dnnl::stream stream(engine);
      dnnl::reorder(user_weights, kernel.weights).execute(stream, user_weights, kernel.weights);
      stream.wait();
      return kernel;
    } catch (const dnnl::error&) {
      return std::nullopt;  // unimplemented: no Winograd kernel for this CPU or shape
    }
  }
};

std::shared_ptr<const WinogradConvolution> WinogradConvolution::create(const torch::Tensor& weight,
                                                                         const torch::Tensor& bias) {
  if (!dnnl_support::runtime_matches_headers()) return nullptr;
  if (!weight.device().is_cpu() || weight.scalar_type() != torch::kFloat32 || weight.dim() != 4 ||
      weight.size(2) != 3 || weight.size(3) != 3) {
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->weight = weight.detach().contiguous().clone();
  impl->bias = bias.defined() ? bias.detach().to(torch::kFloat32).contiguous().clone()
                              : torch::zeros({weight.size(0)}, torch::kFloat32);
  // Whether this CPU has the kernels at all (AVX-512): a small shape, kept for later use.
  if (impl->kernel({1, 16, 16, 1, 1}) == nullptr) return nullptr;
  return std::shared_ptr<const WinogradConvolution>(new WinogradConvolution(std::move(impl)));
}

std::optional<torch::Tensor> WinogradConvolution::operator()(const torch::Tensor& x) const {
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat32 || x.dim() != 4 ||
      x.size(1) != impl_->weight.size(1)) {
    return std::nullopt;
  }
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3), out = impl_->weight.size(0);
  const int64_t rows = band_rows(n, w, std::max(x.size(1), out));
  const dnnl::engine& engine = impl_->engine;
  dnnl::stream stream(engine);
  torch::Tensor input = x.contiguous(torch::MemoryFormat::ChannelsLast);
  torch::Tensor output = torch::empty({n, out, h, w}, x.options().memory_format(torch::MemoryFormat::ChannelsLast));
  memory bias(memory::desc({out}, memory::data_type::f32, memory::format_tag::x), engine, impl_->bias.data_ptr());
  for (int64_t first = 0; first < h; first += rows) {
    const int64_t last = std::min(h, first + rows);  // output rows [first, last)
    const int64_t top = first == 0 ? 1 : 0, bottom = last == h ? 1 : 0;
    const int64_t input_first = first - 1 + top, input_rows = last + 1 - bottom - input_first;
    const Impl::Kernel* kernel = impl_->kernel({n, input_rows, w, top, bottom});
    if (kernel == nullptr) return std::nullopt;
    torch::Tensor band_in = input.narrow(2, input_first, input_rows), band_out = output.narrow(2, first, last - first);
    memory user_src(strided_desc(band_in), engine, band_in.data_ptr());
    memory user_dst(strided_desc(band_out), engine, band_out.data_ptr());
    auto [src, src_bytes] = allocate(kernel->pd.src_desc(), engine);
    auto [dst, dst_bytes] = allocate(kernel->pd.dst_desc(), engine);
    auto [scratchpad, scratchpad_bytes] = allocate(kernel->pd.scratchpad_desc(), engine);
    dnnl::reorder(user_src, src).execute(stream, user_src, src);
    kernel->primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                       {DNNL_ARG_WEIGHTS, kernel->weights},
                                       {DNNL_ARG_BIAS, bias},
                                       {DNNL_ARG_DST, dst},
                                       {DNNL_ARG_SCRATCHPAD, scratchpad}});
    dnnl::reorder(dst, user_dst).execute(stream, dst, user_dst);
    stream.wait();
  }
  return output;
}

#else  // no oneDNN 2.x headers at build time: every convolution stays LibTorch's

struct WinogradConvolution::Impl {};

std::shared_ptr<const WinogradConvolution> WinogradConvolution::create(const torch::Tensor&, const torch::Tensor&) {
  return nullptr;
}

std::optional<torch::Tensor> WinogradConvolution::operator()(const torch::Tensor&) const { return std::nullopt; }

#endif

WinogradConvolution::WinogradConvolution(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WinogradConvolution::~WinogradConvolution() = default;

}  // namespace efcnet
