"""Loading: slices decoded once per process into uint8 images and bool masks (layout: benchmark.datasets.layout).

Masks are 0 = background, one non-zero value = infection (0/255, or a 0/1 palette PNG).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import BadValue, InputMismatch
from .folds import get_folds
from .layout import IMAGE_DIR, MASK_DIR, PNG, dataset_path, image_path, mask_path
from .specs import DatasetSpec, get_spec

_CACHE: dict[tuple[str, str, int, int], np.ndarray] = {}


@dataclass
class SliceSet:
    """Slices of one dataset in a fixed order: ids, uint8 images (N,H,W) or None, bool masks (N,H,W)."""

    ids: list[str]
    images: np.ndarray | None
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def dataset_dir(name: str, data_root: str | Path) -> Path:
    """`<root>/COVID-19-<NAME>` (synthetic: `<root>/synthetic`, generated on first use; yours: `<root>/<NAME>`)."""
    spec = get_spec(name, data_root)
    if spec.name == "synthetic":
        from .synthetic import ensure_synthetic

        return ensure_synthetic(data_root)
    return dataset_path(spec, data_root)


def _require_dir(path: Path, spec: DatasetSpec) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: folder not found; lay out {spec.folder} with "
            f"`run_benchmark.py prepare --dataset {spec.name} --source PATH` (see `prepare --help`)"
        )
    return path


def list_slice_ids(name: str, data_root: str | Path, masks_only: bool = False) -> list[str]:
    """Sorted ids of every slice on disk (from tr_mask/ when `masks_only`, else tr_im/)."""
    spec = get_spec(name, data_root)
    folder = _require_dir(dataset_dir(name, data_root), spec)
    sub = _require_dir(folder / (MASK_DIR if masks_only else IMAGE_DIR), spec)
    stems = sorted(p.stem for p in sub.glob(f"*{PNG}"))
    return [spec.image_id(s) for s in stems] if masks_only else stems


def _open_png(path: Path) -> Image.Image:
    """Open and fully decode a PNG; missing or unreadable files raise errors naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError) as err:
        raise BadValue(f"{path}: unreadable PNG ({err})") from None
    return image


def _decode_image(path: Path) -> np.ndarray:
    """An 8-bit grayscale slice as uint8 (H,W); grey RGB/palette images are converted to L."""
    image = _open_png(path)
    if image.mode in ("I", "I;16", "I;16B", "F"):
        raise BadValue(f"{path}: {image.mode} image; expected an 8-bit grayscale PNG")
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8).copy()


def read_image_png(path: Path) -> np.ndarray:
    """An 8-bit grayscale slice PNG as uint8 (H,W), checked as the loader checks it; errors name the file."""
    return _decode_image(path)


def mask_png_values(path: Path) -> np.ndarray:
    """A mask PNG's values as stored (palette indices for a palette PNG; grey for RGB, RGBA, LA)."""
    image = _open_png(path)
    return np.asarray(image.convert("L") if image.mode in ("RGB", "RGBA", "LA") else image)


def one_foreground(values: np.ndarray, where: str | Path, hint: str = "") -> np.ndarray:
    """A mask's values as bool: 0 = background, exactly one non-zero value = infection; several non-zero values
    are an error naming `where` (with `hint` after it)."""
    foreground = values != 0
    labels = values[foreground]
    if labels.size and (labels != labels[0]).any():
        found = np.unique(values).tolist()
        shown = found if len(found) <= 8 else found[:8] + ["..."]
        raise BadValue(f"{where}: mask has values {shown}; expected 0 and one foreground value{hint}")
    return foreground


def _decode_mask(path: Path) -> np.ndarray:
    """A mask PNG as bool (H,W): 0 = background, exactly one non-zero value = infection."""
    return one_foreground(mask_png_values(path), path)


def _cached(path: Path, kind: str) -> np.ndarray:
    """Decode `path` once per process (keyed by path, mtime and size, so edits are picked up)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    key = (str(path.resolve()), kind, stat.st_mtime_ns, stat.st_size)
    array = _CACHE.get(key)
    if array is None:
        array = _decode_image(path) if kind == "image" else _decode_mask(path)
        array.setflags(write=False)
        _CACHE[key] = array
    return array


def clear_cache() -> None:
    """Forget every decoded slice (tests; long-lived processes that swap data)."""
    _CACHE.clear()


def _resize(array: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    """Resize to size x size: bilinear for images, nearest for masks (PIL)."""
    if array.shape == (size, size):
        return array
    if nearest:
        image = Image.fromarray(array.astype(np.uint8) * 255)
        return np.asarray(image.resize((size, size), Image.NEAREST)) > 0
    return np.asarray(Image.fromarray(array).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 slice at size x size, resized as `load_dataset(size=...)` resizes training and test slices."""
    return _resize(image, size, nearest=False)


def _require_one_size(arrays: list[np.ndarray], paths: list[Path], why: str) -> None:
    """Mixed sizes raise an InputMismatch (a ValueError) naming the first file and the first one that differs."""
    first = arrays[0].shape if arrays else None
    other = next((i for i, a in enumerate(arrays) if a.shape != first), None)
    if other is not None:
        raise InputMismatch(
            f"slices differ in size: {paths[0]} is {first[1]}x{first[0]}, {paths[other]} is "
            f"{arrays[other].shape[1]}x{arrays[other].shape[0]}; {why}"
        )


def _stack(arrays: list[np.ndarray], paths: list[Path], dtype: type) -> np.ndarray:
    """Stack equally sized slices; mixed sizes raise an InputMismatch (a ValueError) naming two differing files."""
    _require_one_size(arrays, paths, "this dataset's spec does not resize slices (re-run prepare), or pass size=512 "
                      "to resize them")
    if not arrays:
        return np.zeros((0, 0, 0), dtype=dtype)
    return np.stack(arrays).astype(dtype, copy=False)


def _check_against_images(
    masks: list[np.ndarray], mask_paths: list[Path], images: list[np.ndarray] | None, image_paths: list[Path]
) -> None:
    """Each mask against its image's size: the decoded image, or (masks only) the image's PNG header where the
    image is on disk (a masks-only layout has none); a mismatch names both files."""
    for index, (mask, mask_file, image_file) in enumerate(zip(masks, mask_paths, image_paths)):
        shape = images[index].shape if images is not None else _png_shape(image_file)
        if shape is not None and shape != mask.shape:
            raise InputMismatch(
                f"{mask_file}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_file} is {shape[1]}x{shape[0]}"
            )


def _png_shape(path: Path) -> tuple[int, int] | None:
    """(height, width) from a PNG's header without decoding it; None when the file is absent."""
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, SyntaxError) as err:
        raise BadValue(f"{path}: unreadable PNG ({err})") from None
    return height, width


def _default_ids(name: str, data_root: Path) -> list[str]:
    """Every slice the folds use, sorted (CT100: 99 slices, tr_im_0048 left out as in the paper)."""
    return sorted({i for fold in get_folds(name, data_root) for i in fold})


def load_on_truth_grid(name: str, data_root: str | Path, ids: Sequence[str], masks_only: bool = False) -> SliceSet:
    """Slices on their ground truth's own grid, the one every score is computed on (training's test fold and
    `evaluate` alike): as stored, except that slices of mixed sizes are brought to the spec's `resize_px` where the
    spec says they need it (P9, P20); elsewhere mixed sizes are an error naming two of the files."""
    return load_dataset(name, data_root, ids=ids, masks_only=masks_only, mixed_to=get_spec(name, data_root).resize_px)


def load_dataset(
    name: str,
    data_root: str | Path,
    ids: Sequence[str] | None = None,
    masks_only: bool = False,
    size: int | None = None,
    mixed_to: int | None = None,
) -> SliceSet:
    """Load slices `ids` (default: every slice in the folds) as uint8 images and bool masks.

    `size`: resize every slice to size x size (a training resolution). `mixed_to`: only when the slices come
    in several sizes, bring them to that side (a spec's `resize_px`); otherwise mixed sizes are an error.
    Each image is checked against its mask (size; with `masks_only`, against the image's header where it is on
    disk), each mask's label set (0 and one foreground value); before a resize, the slices of a dataset whose
    spec has no `resize_px` must share one size.
    """
    spec = get_spec(name, data_root)
    folder = _require_dir(dataset_dir(name, data_root), spec)
    _require_dir(folder / MASK_DIR, spec)
    if not masks_only:
        _require_dir(folder / IMAGE_DIR, spec)
    id_list = list(_default_ids(name, Path(data_root)) if ids is None else ids)
    mask_paths = [mask_path(spec, folder, i) for i in id_list]
    masks = [_cached(p, "mask") for p in mask_paths]
    image_paths = [image_path(folder, i) for i in id_list]
    images = None if masks_only else [_cached(p, "image") for p in image_paths]
    _check_against_images(masks, mask_paths, images, image_paths)
    if size is not None and spec.resize_px is None:  # a resize must not hide a slice of another size
        _require_one_size(masks, mask_paths, f"{spec.name}'s slices all have one size (its spec resizes none), so "
                          "one of them is damaged or from another dataset; re-run prepare")
    if size is None and mixed_to is not None and len({m.shape for m in masks}) > 1:
        size = mixed_to
    if size is not None:
        masks = [_resize(m, size, nearest=True) for m in masks]
        images = None if images is None else [_resize(i, size, nearest=False) for i in images]
    return SliceSet(
        ids=id_list,
        images=None if images is None else _stack(images, image_paths, np.uint8),
        masks=_stack(masks, mask_paths, bool),
    )
