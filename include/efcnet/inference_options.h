// How the prepared inference path computes (LibTorch-free: the Fuser's options hold these; training
// shares Precision, see TrainOptions).
#pragma once

namespace efcnet {

enum class Precision {
  float32,   // the default; equals the eager model within float rounding
  bfloat16,  // convolutions and linear layers in bfloat16 with float32 accumulation (inference: CPU only)
};

// Whether this CPU can run Precision::bfloat16: oneDNN's bfloat16 convolutions need AVX-512 (BW,
// VL and DQ), and LibTorch's fallback has no bfloat16 convolution at all.
bool bfloat16_supported();

struct InferenceOptions {
  Precision precision = Precision::float32;
  // float32 on the CPU: 3x3 convolutions through oneDNN's Winograd kernels where the CPU has them
  // (AVX-512): about twice as fast, within a few 1e-7 relative of the direct convolution.
  bool winograd = true;
  // float32 on the CPU: the token mixers' linear layers through oneDNN's matmul with GELU and the
  // residual adds fused in, instead of LibTorch's BLAS and separate passes: 2-3x faster, within
  // ~1e-6 relative.
  bool dnnl_linear = true;
};

}  // namespace efcnet
