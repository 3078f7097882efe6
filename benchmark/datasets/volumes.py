"""Slices of a 3-D volume: which 2-D array slice z is along an axis, where it goes back, how CT values become 8-bit.

Slice z along axis 2 is `volume[:, :, z].T`, the convention of the built-in datasets (nibabel's
axes; checked on P1110 against the authors' maps); along another axis it is `np.take(volume, z, axis).T`.
`prepare` (datasets of your own) and `predict` use the same functions, so a mask predicted from a
volume lands exactly where its slice came from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadValue
from .prepare import is_8bit, to_uint8

SLICE_AXES = (0, 1, 2)
DEFAULT_SLICE_AXIS = 2


def nifti_image(path: Path) -> Any:
    """A NIfTI file as nibabel opens it (header and affine; the data stays on disk until asked for)."""
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as err:  # noqa: BLE001 - nibabel raises many types for a damaged file
        raise BadValue(f"{path}: unreadable NIfTI ({err})") from None


def check_axis(axis: int) -> int:
    """`axis` when it is 0, 1 or 2; else a BadValue."""
    if axis not in SLICE_AXES:
        raise BadValue(f"--slice-axis {axis}: a volume's slice axis is 0, 1 or 2")
    return axis


def get_slice(volume: np.ndarray, axis: int, z: int) -> np.ndarray:
    """Slice `z` of a 3-D volume along `axis`, as the 2-D image the benchmark uses (transposed)."""
    return np.take(volume, z, axis=axis).T


def set_slice(volume: np.ndarray, axis: int, z: int, image: np.ndarray) -> None:
    """Put a 2-D image (as `get_slice` returns it) back at slice `z` along `axis`, in place."""
    index: list[slice | int] = [slice(None)] * 3
    index[axis] = z
    volume[tuple(index)] = image.T


def pixel_spacing(zooms: tuple[float, ...], axis: int) -> dict[str, float]:
    """Voxel sizes (a header's zooms, mm) as a slice sees them: rows, columns, and between slices."""
    first, second = (a for a in SLICE_AXES if a != axis)
    return {"row_mm": round(float(zooms[second]), 6), "col_mm": round(float(zooms[first]), 6),
            "slice_mm": round(float(zooms[axis]), 6)}


def volume_window(volume: np.ndarray, window_hu: tuple[float, float]) -> tuple[float, float] | None:
    """The window to map a volume with: `window_hu` for HU, None for a volume already in 0..255 (kept as it is)."""
    return None if is_8bit(volume) else window_hu


def to_slices_uint8(volume: np.ndarray, axis: int, window_hu: tuple[float, float]) -> list[np.ndarray]:
    """Every slice of a CT volume along `axis` as 8-bit images (HU through the window, as `prepare` maps them)."""
    window = volume_window(volume, window_hu)
    return [to_uint8(get_slice(volume, axis, z), window) for z in range(volume.shape[axis])]
