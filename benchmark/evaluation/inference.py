"""Segment new scans with a trained model: PNG slices or a NIfTI volume in, masks out (what `predict` runs).

The model runs as `evaluate --model` runs it (grey slice replicated to 3 channels, (x/255 - mean)/std,
argmax of the eval logits, at the slice's own size), with the input statistics it was trained with:
a `last.pt` of our `train` records them; for other weights (the authors' release) they are given
(`mean`/`std`), computed from a dataset's fold (its training slices, as the paper normalises), or ImageNet's.
A NIfTI volume is cut into slices along an axis as `prepare` cuts them (benchmark.datasets.volumes),
and the predicted slices are put back in the same places, so the mask volume keeps the input's shape,
affine and header (orientation, spacing).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..errors import BadValue, InputMismatch
from ..io import atomic_write
from ..records import RECORD_NAME, RUN_SCHEMA, read_record

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class InputStats:
    """The input normalisation a prediction runs with, and where it came from (recorded in the output)."""

    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]
    source: str


def is_nifti(path: Path) -> bool:
    """True for a .nii or .nii.gz file name."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def model_name_for(weights: Path, model: str | None) -> str:
    """`model` when given, else the model the record.json of our `train` beside `weights` names."""
    if model is not None:
        return model
    record = weights.parent / RECORD_NAME  # a run folder of our `train`: its record names the model of last.pt
    name = read_record(record, RUN_SCHEMA).get("model") if record.is_file() else None
    if not isinstance(name, str):
        raise BadValue(f"{weights}: --model NAME is needed (no {RECORD_NAME} of a training run beside it names "
                       "the model)")
    return name


def load_model(model_name: str, weights: Path, device: torch.device) -> tuple[torch.nn.Module, Any]:
    """The registered model with `weights` loaded strictly (weights_only), and the file's content."""
    from models import create_model

    from .evaluate import load_weights, read_weights_file

    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights file not found")
    loaded = read_weights_file(weights, device)
    return load_weights(create_model(model_name), weights, device, model_name, loaded), loaded


def _channels(text: Sequence[float], option: str) -> float | tuple[float, ...]:
    """One value for every channel, or three."""
    if len(text) not in (1, 3):
        raise BadValue(f"{option}: one value, or three (one per channel), got {len(text)}")
    return float(text[0]) if len(text) == 1 else tuple(float(v) for v in text)


def training_fold_statistics(dataset: str, fold: int, data_root: Path) -> tuple[float, float]:
    """(mean, std) of a fold's training slices on their own grid, as `evaluate --weights` computes them for
    weights that record none (`normalization.fold_statistics`, the paper's way)."""
    from ..datasets import get_folds, load_on_truth_grid, train_ids
    from ..normalization import fold_statistics

    folds = get_folds(dataset, data_root)
    if not 0 <= fold < len(folds):
        raise BadValue(f"--fold {fold}: {dataset} has folds 0..{len(folds) - 1}")
    return fold_statistics(load_on_truth_grid(dataset, data_root, train_ids(folds, fold)).images)


def input_stats(loaded: Any, weights: Path, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                imagenet: bool = False, dataset: str | None = None, fold: int | None = None,
                data_root: Path | None = None) -> InputStats:
    """The normalisation to run with: given mean/std, ImageNet's, a dataset fold's training statistics, or the
    checkpoint's own (in that order); weights that record none and no choice given are an error."""
    from ..normalization import IMAGENET_MEAN, IMAGENET_STD, checkpoint_statistics

    if (mean is None) != (std is None):
        raise BadValue("--mean and --std go together")
    if (dataset is None) != (fold is None):
        raise BadValue("--dataset and --fold go together (fold k's training slices give the statistics)")
    if mean is not None and std is not None:
        return InputStats(_channels(mean, "--mean"), _channels(std, "--std"), "the given --mean/--std")
    if imagenet:
        return InputStats(IMAGENET_MEAN, IMAGENET_STD, "ImageNet's statistics")
    if dataset is not None and fold is not None:
        fold_mean, fold_std = training_fold_statistics(dataset, fold, Path(data_root or "."))
        return InputStats(fold_mean, fold_std, f"the statistics of {dataset} fold {fold}'s training slices")
    recorded = checkpoint_statistics(loaded)
    if recorded is None:
        raise BadValue(f"{weights}: records no input statistics (released weights?); give --mean M --std S, "
                       "--dataset NAME --fold K (that fold's training slices), or --imagenet")
    return InputStats(*recorded, f"the statistics recorded in {weights.name}")


# --- inputs ------------------------------------------------------------------------------------------

def read_png_inputs(path: Path) -> tuple[list[Path], list[np.ndarray]]:
    """The files and 8-bit slices of a PNG file or of every PNG in a folder (sorted by name)."""
    from ..datasets.loading import read_image_png

    files = [path] if path.is_file() else sorted(p for p in path.glob("*.png") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{path}: no PNG slices in it")
    return files, [read_image_png(p) for p in tqdm(files, desc="read", unit="slice", disable=None)]


def read_nifti_input(path: Path, axis: int, window_hu: tuple[float, float]) -> tuple[Any, np.ndarray, list[np.ndarray]]:
    """The NIfTI image (header, affine), its 3-D data and its slices along `axis` as 8-bit images."""
    from ..datasets.prepare import read_volume
    from ..datasets.volumes import check_axis, nifti_image, to_slices_uint8

    image = nifti_image(path)
    volume = read_volume(path)
    return image, volume, to_slices_uint8(volume, check_axis(axis), window_hu)


# --- the model ---------------------------------------------------------------------------------------

def run_size(loaded: Any, size_px: int | None) -> int | None:
    """The side the model runs at: `size_px` when given, else the training size a last.pt of ours records
    (its test fold was scored so: slices resized to it, logits back to each slice's size), else None (as is)."""
    if size_px is not None:
        if size_px < 1:
            raise BadValue(f"--size {size_px}: at least 1 pixel")
        return size_px
    protocol = loaded.get("protocol") if isinstance(loaded, dict) else None
    base = protocol.get("base_size") if isinstance(protocol, dict) else None
    return int(base) if isinstance(base, int) and base > 0 else None


def check_sizes(images: Sequence[np.ndarray], names: Sequence[str], model_name: str, size_px: int | None) -> None:
    """Every slice (at `size_px` where it is resized) suits the model's input needs; else an error naming it."""
    from models import get_model_info

    info = get_model_info(model_name)
    for image, name in zip(images, names):
        height, width = (size_px, size_px) if size_px else image.shape
        if min(height, width) < info.min_input_size or height % info.input_multiple or width % info.input_multiple:
            raise InputMismatch(f"{name}: the model would see {width}x{height} px; {model_name} needs sides of at "
                                f"least {info.min_input_size} px that are multiples of {info.input_multiple} "
                                "(choose --size)")


def segment(model: torch.nn.Module, images: Sequence[np.ndarray], stats: InputStats, device: torch.device,
            batch_size: int = 8, dtype: torch.dtype = torch.float32, size_px: int | None = None,
            deploy: Callable[[torch.nn.Module, int, tuple[int, int]], torch.nn.Module] | None = None,
            ) -> list[np.ndarray]:
    """Foreground masks of `images` at their own sizes, in their order; slices of one size run together, resized
    to `size_px` first where given (the logits come back to each slice's size before the argmax).

    `deploy(model, k, (height, width))`, when given, replaces the model for the k-th size the model runs at by what
    runs instead at that size (a graph on a runtime, `benchmark.deploy`), as `evaluate --backend` does per fold:
    one graph per size it runs at (with `size_px`, one in all)."""
    from ..datasets.loading import resize_image
    from .evaluate import predict

    masks: dict[int, np.ndarray] = {}
    runners: dict[tuple[int, ...], torch.nn.Module] = {}  # by the size the model runs at
    for shape in sorted({image.shape for image in images}):
        rows = [i for i, image in enumerate(images) if image.shape == shape]
        batch = np.stack([images[i] if size_px is None else resize_image(images[i], size_px) for i in rows])
        run_shape = batch.shape[1:3]
        if run_shape not in runners:
            runners[run_shape] = model if deploy is None else deploy(model.eval(), len(runners), run_shape)
        out = predict(runners[run_shape], batch, stats.mean, stats.std, device, batch_size, dtype, out_size=shape)
        masks.update(zip(rows, out))
    return [masks[i] for i in range(len(images))]


# --- outputs -----------------------------------------------------------------------------------------

def check_output(out: Path, nifti: bool, names: Sequence[str], force: bool) -> None:
    """The output can be written without overwriting earlier masks (unless `force`)."""
    if nifti:
        if not is_nifti(out):
            raise BadValue(f"--out {out}: a NIfTI input writes a NIfTI mask; name it .nii.gz or .nii")
        if out.exists() and not force:
            raise BadValue(f"--out {out}: already exists; pass --force to replace it")
        return
    if out.exists() and not out.is_dir():
        raise BadValue(f"--out {out}: exists and is not a folder (PNG slices write one mask PNG each into a folder)")
    taken = next((out / f"{n}.png" for n in names if (out / f"{n}.png").exists()), None)
    if taken is not None and not force:
        raise BadValue(f"{taken}: already exists; pass --force to replace the masks in {out}")


def write_png_masks(out_dir: Path, names: Sequence[str], masks: Sequence[np.ndarray]) -> list[Path]:
    """One 0/255 PNG per slice, `out_dir/<name>.png`, each written atomically, with a progress bar."""
    from .evaluate import write_mask_pngs

    return write_mask_pngs(out_dir, names, tqdm(masks, desc="write", unit="mask", total=len(names), disable=None))


def mask_volume(masks: Sequence[np.ndarray], shape: tuple[int, ...], axis: int) -> np.ndarray:
    """The predicted slices put back into a 0/1 uint8 volume of the input's 3-D shape."""
    from ..datasets.volumes import set_slice

    volume = np.zeros(shape[:3], dtype=np.uint8)
    for z, mask in enumerate(masks):
        set_slice(volume, axis, z, mask.astype(np.uint8))
    return volume


def write_nifti_mask(out: Path, source: Any, volume: np.ndarray) -> Path:
    """A NIfTI mask (uint8, 0/1) in the source's format, with its affine and header (orientation, spacing, units),
    written atomically."""
    import nibabel as nib

    data = volume.reshape(source.shape)  # the source's trailing singleton axes, if it had any
    image = type(source)(data, source.affine, header=source.header.copy())
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1.0, 0.0)
    suffix = ".nii.gz" if out.name.lower().endswith(".gz") else ".nii"  # nibabel compresses by the name

    def save(tmp: Path) -> None:
        named = tmp.with_name(tmp.name + suffix)
        try:
            nib.save(image, str(named))
            named.replace(tmp)
        finally:
            named.unlink(missing_ok=True)

    return atomic_write(out, save)
