"""efcnet: multimodal medical image fusion (EFCNet), its metrics and safe weight files.

The compiled efcnet library behind a small numpy API:

    fuser = efcnet.Fuser()                      # shipped default weights, loaded once
    fused = fuser.fuse(mri, spect)              # uint8 (H, W) + (H, W, 3) RGB -> (H, W, 3) RGB
    scores = efcnet.evaluate(mri, spect, fused) # {"EN": ..., "SSIM": ..., ...}
    efcnet.metrics.SSIM(mri, spect, fused)      # one metric
    weights = efcnet.load_state_dict("net.pth") # {key: numpy array}, nothing in the file is run
    efcnet.save_state_dict(weights, "copy.pth") # torch.load(weights_only=True) reads it
    efcnet.fuse_volume("mri.nii.gz", "pet.nii.gz", "fused.nii.gz", register="rigid")  # as `efcnet fuse`

Fusion and metrics compute exactly what the `efcnet fuse` and `efcnet evaluate` commands compute.
Colour arrays are RGB unless order="bgr" (OpenCV). Arrays are never converted: a wrong dtype is a
TypeError, a wrong shape or size a ValueError; the library's own problems (files, weights, memory)
raise efcnet.Error, a RuntimeError whose one-line message names the file. The GIL is released
while networks and metrics run.

Process settings are the caller's: LibTorch's threads change only with Fuser(threads=N), the heap
policy only with keep_freed_memory_for_reuse() (several times faster fusion and metrics, memory
kept until the process exits).

OpenBLAS kernels: LibTorch's linear layers run on the system OpenBLAS, which picks its kernels
once, when it is loaded, and falls back to slow generic ones on CPUs newer than itself. Before
loading LibTorch, this package sets OPENBLAS_CORETYPE from the CPU's instruction sets (as the
efcnet command does), but only if it is not set already. It cannot take effect if OpenBLAS is
already loaded, e.g. by numpy imported before efcnet: import efcnet first, or set
OPENBLAS_CORETYPE in the environment.
"""
import os as _os

from . import _cpu

_kernels = _cpu.select_blas_kernels()
if _kernels:
    # The library set it in the C environment; keep os.environ (and child processes) in step.
    _os.environ.setdefault("OPENBLAS_CORETYPE", _kernels)

from ._efcnet import (  # noqa: E402  (after the kernel choice, on purpose)
    Error,
    Fuser,
    __version__,
    compare,
    evaluate,
    evaluate_dirs,
    evaluate_volume,
    fuse_volume,
    fuse_volume_arrays,
    fuse_volume_dirs,
    keep_freed_memory_for_reuse,
    load_state_dict,
    models,
    phantom,
    read_anatomical,
    read_functional,
    read_volume,
    save_state_dict,
)
from . import metrics  # noqa: E402

__all__ = [
    "Error",
    "Fuser",
    "compare",
    "evaluate",
    "evaluate_dirs",
    "evaluate_volume",
    "fuse_volume",
    "fuse_volume_arrays",
    "fuse_volume_dirs",
    "keep_freed_memory_for_reuse",
    "load_state_dict",
    "metrics",
    "models",
    "phantom",
    "read_anatomical",
    "read_functional",
    "read_volume",
    "save_state_dict",
]
