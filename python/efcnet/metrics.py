"""The twelve objective fusion metrics, one function each, as efcnet.evaluate computes them.

Conventions of the Python evaluator published with CDDFuse (CVPR 2023), which the field's tables
use (include/efcnet/metrics.h has each one). A = anatomical, B = functional, F = fused. Colour
uint8 arrays are turned grey as that evaluator does (BGR2GRAY in float, rounded half to even).
"""
from ._efcnet import metrics as _native

EN = _native.EN
SD = _native.SD
SF = _native.SF
AG = _native.AG
MI = _native.MI
SCD = _native.SCD
VIF = _native.VIF
Qabf = _native.Qabf
SSIM = _native.SSIM
PSNR = _native.PSNR
CC = _native.CC
MSE = _native.MSE

__all__ = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR", "CC", "MSE"]
