// Helpers shared by the oneDNN kernels of the prepared inference path (winograd_conv.cpp,
// dnnl_linear.cpp). Only compiled where this build has oneDNN 2.x headers.
#pragma once

#if EFCNET_HAVE_DNNL
#include <dnnl.hpp>
#endif

#if EFCNET_HAVE_DNNL && DNNL_VERSION_MAJOR == 2
#define EFCNET_DNNL_KERNELS 1

#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include <torch/types.h>

namespace efcnet::dnnl_support {

inline const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Attributes of an inference primitive: the caller's scratchpad, an optional elementwise
// post-op (e.g. ReLU), optionally the result added to the destination's contents.
inline dnnl::primitive_attr inference_attr(std::optional<dnnl::algorithm> eltwise, bool accumulate) {
  dnnl::post_ops post_ops;
  if (eltwise) post_ops.append_eltwise(1.0F, *eltwise, 0.0F, 0.0F);
  if (accumulate) post_ops.append_sum(1.0F);
  dnnl::primitive_attr attr;
  attr.set_post_ops(post_ops);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// Primitives made on first use, one per key; std::nullopt remembers that oneDNN has none.
template <typename Key, typename Kernel>
class KernelCache {
 public:
  // The kernel for `key`, made by make(key) the first time; nullptr where make returned nullopt.
  template <typename Make>
  const Kernel* get(const Key& key, Make&& make) const {
    const std::lock_guard<std::mutex> lock(mutex_);
    auto [it, inserted] = kernels_.try_emplace(key);
    if (inserted) it->second = make(key);
    return it->second ? &*it->second : nullptr;
  }

  // The kernels made so far (call from within `make` only: the lock is held there).
  const std::map<Key, std::optional<Kernel>>& made() const { return kernels_; }

 private:
  mutable std::mutex mutex_;
  mutable std::map<Key, std::optional<Kernel>> kernels_;
};

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
