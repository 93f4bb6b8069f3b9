// Helpers shared by the oneDNN kernels of the prepared inference path (winograd_conv.cpp,
// dnnl_linear.cpp). Only compiled where this build has oneDNN 2.x headers.
#pragma once

#if EFCNET_HAVE_DNNL
#include <dnnl.hpp>
#endif

#if EFCNET_HAVE_DNNL && DNNL_VERSION_MAJOR == 2
#define EFCNET_DNNL_KERNELS 1

#include <utility>

#include <torch/types.h>

namespace efcnet::dnnl_support {

// A LibTorch with its own oneDNN of another generation could shadow the symbols of ours.
inline bool runtime_matches_headers() { return dnnl::version()->major == DNNL_VERSION_MAJOR; }

// A float32 memory descriptor with the tensor's sizes and strides.
inline dnnl::memory::desc strided_desc(const torch::Tensor& t) {
  return dnnl::memory::desc(dnnl::memory::dims(t.sizes().begin(), t.sizes().end()), dnnl::memory::data_type::f32,
                            dnnl::memory::dims(t.strides().begin(), t.strides().end()));
}

// oneDNN memory over a fresh tensor's bytes, so the buffer comes from (and returns to) the same
// heap as every other feature map.
inline std::pair<dnnl::memory, torch::Tensor> allocate(const dnnl::memory::desc& desc, const dnnl::engine& engine) {
  torch::Tensor bytes = torch::empty({static_cast<int64_t>(desc.get_size())}, torch::kUInt8);
  return {dnnl::memory(desc, engine, bytes.data_ptr()), bytes};
}

}  // namespace efcnet::dnnl_support

#endif
