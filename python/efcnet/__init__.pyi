# Type hints for the efcnet package (the functions are compiled; see their docstrings).
import os
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import metrics as metrics

__version__: str

_Path = Union[str, os.PathLike[str]]
_Order = Literal["rgb", "bgr"]
_Image = npt.NDArray[np.uint8]

class Error(RuntimeError): ...

class Fuser:
    def __init__(
        self,
        weights: Optional[_Path] = None,
        seem_weights: Optional[_Path] = None,
        device: str = "cpu",
        threads: int = 0,
        precision: Literal["float32", "bfloat16"] = "float32",
        model: Optional[str] = None,
    ) -> None: ...
    def fuse(self, anatomical: _Image, functional: _Image, order: _Order = "rgb") -> _Image: ...
    @property
    def weights(self) -> str: ...
    @property
    def seem_weights(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def precision(self) -> str: ...

def evaluate(
    anatomical: npt.NDArray[Union[np.uint8, np.float32, np.float64]],
    functional: npt.NDArray[Union[np.uint8, np.float32, np.float64]],
    fused: npt.NDArray[Union[np.uint8, np.float32, np.float64]],
    order: _Order = "rgb",
) -> Dict[str, float]: ...
def keep_freed_memory_for_reuse() -> None: ...
def models() -> List[Dict[str, str]]: ...
def load_state_dict(path: _Path) -> Dict[str, npt.NDArray[np.generic]]: ...
def save_state_dict(state_dict: Mapping[str, npt.NDArray[np.generic]], path: _Path) -> None: ...
def read_anatomical(path: _Path, *, max_image_pixels: int = 2**26) -> _Image: ...
def read_functional(path: _Path, order: _Order = "rgb", *, max_image_pixels: int = 2**26) -> _Image: ...
def phantom(
    size: int = 256, kind: Literal["spect", "pet", "ct", "gfp"] = "spect", order: _Order = "rgb"
) -> Tuple[_Image, _Image]: ...

_Window = Union[str, Tuple[float, float]]
_Event = Callable[[Dict[str, Any]], None]

def fuse_volume(
    anatomical: _Path,
    functional: _Path,
    output: _Path,
    *,
    model: Optional[str] = None,
    weights: Optional[_Path] = None,
    seem_weights: Optional[_Path] = None,
    method: str = "efcnet",
    device: str = "cpu",
    precision: Literal["float32", "bfloat16"] = "float32",
    threads: int = 0,
    frame: Union[int, str, None] = None,
    anatomical_window: Optional[_Window] = None,
    functional_window: Optional[_Window] = None,
    colormap: Optional[str] = None,
    plane: Optional[Literal["axial", "coronal", "sagittal"]] = None,
    register: Optional[Literal["rigid", "affine"]] = None,
    transform: Optional[_Path] = None,
    output_format: Literal["nifti", "dicom"] = "nifti",
    overwrite: bool = False,
    allow_uneven_slices: bool = False,
    slices_dir: Optional[_Path] = None,
    montage: Optional[_Path] = None,
    save_transform: Optional[_Path] = None,
    qc: Optional[_Path] = None,
    progress: Optional[_Event] = None,
) -> Dict[str, int]: ...
def fuse_volume_dirs(
    anatomical_dir: _Path,
    functional_dir: _Path,
    output_dir: _Path,
    *,
    model: Optional[str] = None,
    weights: Optional[_Path] = None,
    seem_weights: Optional[_Path] = None,
    method: str = "efcnet",
    device: str = "cpu",
    precision: Literal["float32", "bfloat16"] = "float32",
    threads: int = 0,
    frame: Union[int, str, None] = None,
    anatomical_window: Optional[_Window] = None,
    functional_window: Optional[_Window] = None,
    colormap: Optional[str] = None,
    plane: Optional[Literal["axial", "coronal", "sagittal"]] = None,
    register: Optional[Literal["rigid", "affine"]] = None,
    transform: Optional[_Path] = None,
    output_format: Literal["nifti", "dicom"] = "nifti",
    overwrite: bool = False,
    allow_uneven_slices: bool = False,
    progress: Optional[_Event] = None,
) -> Dict[str, int]: ...
def evaluate_dirs(
    anatomical_dir: _Path, functional_dir: _Path, fused_dir: _Path, *, threads: int = 0, max_image_pixels: int = 2**26
) -> Dict[str, Any]: ...
def evaluate_volume(
    anatomical: _Path,
    functional: _Path,
    fused: _Path,
    *,
    frame: Optional[str] = None,
    anatomical_window: Optional[str] = None,
    functional_window: Optional[str] = None,
    colormap: Optional[str] = None,
    plane: Optional[Literal["axial", "coronal", "sagittal"]] = None,
    allow_uneven_slices: bool = False,
) -> Dict[str, Any]: ...
def compare(
    anatomical_dir: _Path,
    functional_dir: _Path,
    output_dir: _Path,
    *,
    efcnet: bool = True,
    baselines: bool = True,
    results: Mapping[str, _Path] = ...,
    model: Optional[str] = None,
    weights: Optional[_Path] = None,
    seem_weights: Optional[_Path] = None,
    device: str = "cpu",
    precision: Literal["float32", "bfloat16"] = "float32",
    threads: int = 0,
    overwrite: bool = False,
    max_image_pixels: int = 2**26,
    progress: Optional[_Event] = None,
) -> Dict[str, Any]: ...
def read_volume(
    path: _Path, *, frame: Union[int, str, None] = None, allow_uneven_slices: bool = False
) -> Tuple[npt.NDArray[Union[np.float32, np.uint8]], npt.NDArray[np.float64]]: ...
def fuse_volume_arrays(
    anatomical: npt.NDArray[np.generic],
    anatomical_affine: npt.NDArray[np.float64],
    functional: npt.NDArray[np.generic],
    functional_affine: npt.NDArray[np.float64],
    *,
    model: Optional[str] = None,
    weights: Optional[_Path] = None,
    seem_weights: Optional[_Path] = None,
    method: str = "efcnet",
    device: str = "cpu",
    precision: Literal["float32", "bfloat16"] = "float32",
    threads: int = 0,
    anatomical_window: Optional[_Window] = None,
    functional_window: Optional[_Window] = None,
    colormap: Optional[str] = None,
    plane: Optional[Literal["axial", "coronal", "sagittal"]] = None,
    register: Optional[Literal["rigid", "affine"]] = None,
    transform: Optional[_Path] = None,
    progress: Optional[_Event] = None,
) -> Tuple[_Image, npt.NDArray[np.float64]]: ...
