"""Where a dataset's files live under a data root: folder names and path helpers, nothing read or written.

Layout (the MiniSeg release's, so the authors' datasets.zip drops in): `<root>/<folder>/tr_im/<id>.png`
(8-bit grayscale CT slice), `<root>/<folder>/tr_mask/<mask id>.png` (0 = background, one non-zero value =
infection) and, optionally, `<root>/<folder>/dataList/val{k}.txt` (fold lists that replace the committed folds).
"""
from __future__ import annotations

from pathlib import Path

from .specs import DatasetSpec

IMAGE_DIR = "tr_im"
MASK_DIR = "tr_mask"
DATALIST_DIR = "dataList"
PNG = ".png"


def dataset_path(spec: DatasetSpec, data_root: str | Path) -> Path:
    """`<root>/<folder>` (no side effects: the synthetic dataset is not generated here)."""
    return Path(data_root) / spec.folder


def image_path(folder: Path, slice_id: str) -> Path:
    """Where slice `slice_id`'s image lives in a dataset folder."""
    return folder / IMAGE_DIR / f"{slice_id}{PNG}"


def mask_path(spec: DatasetSpec, folder: Path, slice_id: str) -> Path:
    """Where slice `slice_id`'s mask lives in a dataset folder (CT100: tr_mask/tr_mask_XXXX.png)."""
    return folder / MASK_DIR / f"{spec.mask_id(slice_id)}{PNG}"
