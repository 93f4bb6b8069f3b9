#include "winograd_conv.h"

#include <algorithm>
#include <optional>
#include <tuple>
#include <vector>

#include "dnnl_support.h"

namespace efcnet {

torch::Tensor empty_blocked(int64_t n, int64_t c, int64_t h, int64_t w) {
  return torch::empty({n, c / 16, h, w, 16}, torch::kFloat32);
}

torch::Tensor to_blocked(const torch::Tensor& x) {
  torch::Tensor b = empty_blocked(x.size(0), x.size(1), x.size(2), x.size(3));
  to_blocked(x, b);
  return b;
}

#if EFCNET_DNNL_KERNELS

namespace {

using dnnl::memory;
using dnnl_support::allocate;
using dnnl_support::cpu_engine;
using dnnl_support::strided_desc;

// The nChw16c descriptor of a dense (N, C/16, H, W, 16) tensor.
memory::desc blocked_desc(int64_t n, int64_t c, int64_t h, int64_t w) {
  return memory::desc({n, c, h, w}, memory::data_type::f32, memory::format_tag::nChw16c);
}
memory::desc blocked_desc(const torch::Tensor& b) {
  return blocked_desc(b.size(0), b.size(1) * 16, b.size(2), b.size(3));
}

void reorder(const memory::desc& from, void* from_data, const memory::desc& to, void* to_data) {
  const dnnl::engine& engine = cpu_engine();
  memory src(from, engine, from_data), dst(to, engine, to_data);
  dnnl::stream stream(engine);
  dnnl::reorder(src, dst).execute(stream, src, dst);
  stream.wait();
}

// Output rows per band: oneDNN's Winograd scratchpad grows with the pixels convolved at once
// (478 MB for SU3's FFN on one 256x256 map, 7 KiB per pixel), so large maps are convolved in
// bands of rows holding about 16 Mi floats of the wider side: a whole 256x256 map of 256
// channels (SU3's embedding and residual blocks) in one go, SU3's FFN (512 in) in two bands.
int64_t band_rows(int64_t n, int64_t w, int64_t channels) {
  constexpr int64_t kBandFloats = int64_t{1} << 24;
  return std::max<int64_t>(4, kBandFloats / (n * w * channels) / 4 * 4);  // whole 4-row tiles
}

}  // namespace

void to_blocked(const torch::Tensor& x, const torch::Tensor& dst) {
  if (!dst.is_contiguous()) {
    dst.copy_(to_blocked(x));
    return;
  }
  reorder(strided_desc(x), x.data_ptr(), blocked_desc(dst), dst.data_ptr());
}

void from_blocked(const torch::Tensor& blocked, const torch::Tensor& dst) {
  const torch::Tensor b = blocked.contiguous();
  reorder(blocked_desc(b), b.data_ptr(), strided_desc(dst), dst.data_ptr());
}

struct WinogradConvolution::Impl {
  // The primitive for one band shape and epilogue, with the weights in the layout it chose.
  struct Kernel {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward primitive;
    memory weights;
  };

  torch::Tensor weight, bias;  // OIHW, O; contiguous float32
  // By (N, input rows, W, zero rows above, zero rows below, epilogue): a band inside the map
  // reads its neighbours' rows instead of padding.
  using Shape = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, Epilogue>;
  dnnl_support::KernelCache<Shape, Kernel> kernels;

  // nullptr where oneDNN has no Winograd implementation for this shape on this CPU.
  const Kernel* kernel(const Shape& shape) const {
    return kernels.get(shape, [this](const Shape& s) { return make_kernel(s); });
  }

  std::optional<Kernel> make_kernel(const Shape& shape) const {
    const auto [n, h, w, top, bottom, epilogue] = shape;
    const int64_t out = weight.size(0), in = weight.size(1);
    const dnnl::primitive_attr attr = dnnl_support::inference_attr(
        epilogue == Epilogue::relu ? std::optional(dnnl::algorithm::eltwise_relu) : std::nullopt,
        epilogue == Epilogue::accumulate);
    const dnnl::engine& engine = cpu_engine();
    try {
      const dnnl::convolution_forward::desc desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd, blocked_desc(n, in, h, w),
          memory::desc({out, in, 3, 3}, memory::data_type::f32, memory::format_tag::any),
          memory::desc({out}, memory::data_type::f32, memory::format_tag::x),
          blocked_desc(n, out, h + top + bottom - 2, w), {1, 1}, {top, 1}, {bottom, 1});
      Kernel kernel{dnnl::convolution_forward::primitive_desc(desc, attr, engine), {}, {}};
      kernel.primitive = dnnl::convolution_forward(kernel.pd);
      // Band shapes and epilogues share the transformed weights where their layouts agree (they
      // do on AVX-512): transforming them again for every band shape added ~0.4 s to the first
      // 256² pair.
      for (const auto& [other_shape, other] : kernels.made()) {
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

  // One band: dense blocked `src` (with its halo rows) into dense blocked `dst`.
  bool run(const Shape& shape, const torch::Tensor& src, const torch::Tensor& dst) const {
    const Kernel* k = kernel(shape);
    if (k == nullptr) return false;
    const dnnl::engine& engine = cpu_engine();
    dnnl::stream stream(engine);
    memory src_memory(k->pd.src_desc(), engine, src.data_ptr());
    memory dst_memory(k->pd.dst_desc(), engine, dst.data_ptr());
    memory bias_memory(k->pd.bias_desc(), engine, bias.data_ptr());
    auto [scratchpad, scratchpad_bytes] = allocate(k->pd.scratchpad_desc(), engine);
    k->primitive.execute(stream, {{DNNL_ARG_SRC, src_memory},
                                  {DNNL_ARG_WEIGHTS, k->weights},
                                  {DNNL_ARG_BIAS, bias_memory},
                                  {DNNL_ARG_DST, dst_memory},
                                  {DNNL_ARG_SCRATCHPAD, scratchpad}});
    stream.wait();
    return true;
  }
};

std::shared_ptr<const WinogradConvolution> WinogradConvolution::create(const torch::Tensor& weight,
                                                                       const torch::Tensor& bias) {
  if (!dnnl_support::runtime_matches_headers()) return nullptr;
  if (!weight.device().is_cpu() || weight.scalar_type() != torch::kFloat32 || weight.dim() != 4 ||
      weight.size(2) != 3 || weight.size(3) != 3 || weight.size(0) % 16 != 0 || weight.size(1) % 16 != 0) {
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->weight = weight.detach().contiguous().clone();
  impl->bias = bias.defined() ? bias.detach().to(torch::kFloat32).contiguous().clone()
                              : torch::zeros({weight.size(0)}, torch::kFloat32);
  // Whether this CPU has the kernels at all (AVX-512): a small shape, kept for later use.
  if (impl->kernel({1, 16, 16, 1, 1, Epilogue::none}) == nullptr) return nullptr;
  return std::shared_ptr<const WinogradConvolution>(new WinogradConvolution(std::move(impl)));
}

bool WinogradConvolution::operator()(const torch::Tensor& x, const torch::Tensor& dst, Epilogue epilogue) const {
  const int64_t in = impl_->weight.size(1), out = impl_->weight.size(0);
  const auto blocked = [](const torch::Tensor& t, int64_t channels) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.dim() == 5 && t.size(1) * 16 == channels &&
           t.size(4) == 16;
  };
  if (!blocked(x, in) || !blocked(dst, out) || x.size(0) != dst.size(0) || x.size(2) != dst.size(2) ||
      x.size(3) != dst.size(3)) {
    return false;
  }
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t rows = band_rows(n, w, std::max(in, out));
  if (rows >= h && x.is_contiguous() && dst.is_contiguous()) return impl_->run({n, h, w, 1, 1, epilogue}, x, dst);
  // Band by band through dense copies (oneDNN's Winograd kernels take dense maps only), once
  // every band shape is known to have a kernel, so that `dst` is all or nothing.
  struct Band {
    int64_t first, last, input_first;  // output rows [first, last), input rows from input_first
    Impl::Shape shape;
  };
  std::vector<Band> bands;
  for (int64_t first = 0; first < h; first += rows) {
    const int64_t last = std::min(h, first + rows);
    const int64_t top = first == 0 ? 1 : 0, bottom = last == h ? 1 : 0;
    const int64_t input_first = first - 1 + top, input_rows = last + 1 - bottom - input_first;
    bands.push_back({first, last, input_first, {n, input_rows, w, top, bottom, epilogue}});
    if (impl_->kernel(bands.back().shape) == nullptr) return false;
  }
  for (const Band& band : bands) {
    const torch::Tensor band_in = x.narrow(2, band.input_first, std::get<1>(band.shape)).contiguous();
    const torch::Tensor dst_band = dst.narrow(2, band.first, band.last - band.first);
    const torch::Tensor band_out = epilogue == Epilogue::accumulate ? dst_band.clone(torch::MemoryFormat::Contiguous)
                                                                    : empty_blocked(n, out, band.last - band.first, w);
    impl_->run(band.shape, band_in, band_out);
    dst_band.copy_(band_out);
  }
  return true;
}

#else  // no oneDNN 2.x headers at build time: every convolution stays LibTorch's

void to_blocked(const torch::Tensor& x, const torch::Tensor& dst) {
  dst.copy_(x.unflatten(1, {x.size(1) / 16, 16}).permute({0, 1, 3, 4, 2}));
}

void from_blocked(const torch::Tensor& blocked, const torch::Tensor& dst) {
  dst.unflatten(1, {dst.size(1) / 16, 16}).permute({0, 1, 3, 4, 2}).copy_(blocked);
}

struct WinogradConvolution::Impl {};

std::shared_ptr<const WinogradConvolution> WinogradConvolution::create(const torch::Tensor&, const torch::Tensor&) {
  return nullptr;
}

bool WinogradConvolution::operator()(const torch::Tensor&, const torch::Tensor&, Epilogue) const { return false; }

#endif

WinogradConvolution::WinogradConvolution(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WinogradConvolution::~WinogradConvolution() = default;

}  // namespace efcnet
