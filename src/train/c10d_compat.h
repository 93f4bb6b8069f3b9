// The few c10d spellings that differ between LibTorch 1.13 and 2.x, in one place.
#pragma once

#include <torch/version.h>

// Gloo is in every Debian/PyPI LibTorch, but its headers (libgloo-dev) may be missing from the
// build machine; then the build has no distributed training and says so at run time.
#if defined(USE_C10D_GLOO) && __has_include(<gloo/algorithm.h>)
#define EFCNET_HAVE_GLOO 1
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace efcnet::c10d_compat {

// 1.x: a backend *is* a c10d::ProcessGroup; 2.x split that into a dispatching ProcessGroup and
// per-device c10d::Backend objects (ProcessGroupGloo/NCCL derive from Backend there).
#if TORCH_VERSION_MAJOR >= 2
using Backend = ::c10d::Backend;
#else
using Backend = ::c10d::ProcessGroup;
#endif

}  // namespace efcnet::c10d_compat
#endif
