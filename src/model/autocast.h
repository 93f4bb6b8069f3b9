// LibTorch's autocast (automatic mixed precision) for this thread, spelled for LibTorch 1.13 and
// 2.x alike: 2.4 replaced the per-device functions (set_cpu_enabled, get_autocast_cpu_dtype, ...)
// by ones taking the device type, and deprecated the old ones.
#pragma once

#include <optional>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

namespace efcnet {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define EFCNET_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace autocast_detail {

inline bool enabled(torch::DeviceType device) {
#ifdef EFCNET_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(device);
#else
  return device == torch::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

inline void set_enabled(torch::DeviceType device, bool enabled) {
#ifdef EFCNET_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_enabled(device, enabled);
#else
  device == torch::kCPU ? at::autocast::set_cpu_enabled(enabled) : at::autocast::set_enabled(enabled);
#endif
}

inline torch::ScalarType dtype(torch::DeviceType device) {
#ifdef EFCNET_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(device);
#else
  return device == torch::kCPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}

inline void set_dtype(torch::DeviceType device, torch::ScalarType dtype) {
#ifdef EFCNET_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(device, dtype);
#else
  device == torch::kCPU ? at::autocast::set_autocast_cpu_dtype(dtype) : at::autocast::set_autocast_gpu_dtype(dtype);
#endif
}

}  // namespace autocast_detail

// The dtype autocast casts `tensor`'s matmuls and convolutions to, where it is on for its device.
inline std::optional<torch::ScalarType> autocast_dtype(const torch::Tensor& tensor) {
  const torch::DeviceType device = tensor.device().type();
  if ((device != torch::kCPU && device != torch::kCUDA) || !autocast_detail::enabled(device)) return std::nullopt;
  return autocast_detail::dtype(device);
}

// Autocast to bfloat16 on `device` for this thread while alive (as `with torch.autocast(...)`):
// convolutions and matmuls run in bfloat16 on bfloat16 copies of the float32 weights. The end
// restores the previous state and, leaving the outermost region, drops the cached weight copies,
// which the optimizer's in-place update makes stale.
class Bfloat16Autocast {
 public:
  explicit Bfloat16Autocast(torch::DeviceType device)
      : device_(device),
        was_enabled_(autocast_detail::enabled(device)),
        previous_dtype_(autocast_detail::dtype(device)) {
    autocast_detail::set_dtype(device_, torch::kBFloat16);
    autocast_detail::set_enabled(device_, true);
    at::autocast::increment_nesting();
  }
  ~Bfloat16Autocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    autocast_detail::set_enabled(device_, was_enabled_);
    autocast_detail::set_dtype(device_, previous_dtype_);
  }
  Bfloat16Autocast(const Bfloat16Autocast&) = delete;
  Bfloat16Autocast& operator=(const Bfloat16Autocast&) = delete;

 private:
  torch::DeviceType device_;
  bool was_enabled_;
  torch::ScalarType previous_dtype_;
};

}  // namespace efcnet
