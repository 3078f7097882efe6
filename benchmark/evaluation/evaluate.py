"""Evaluate segmentations fold by fold: precomputed maps (the authors' SegMaps layout) or a model with per-fold weights.

Both paths end in the same place: per fold, bool predictions and the ground truth on its own grid
(`datasets.load_on_truth_grid`, as training scores its test fold) go through `metrics.slice_metrics`,
then `metrics.fold_summary` and `metrics.cv_summary`.
Maps are laid out as `DIR/CrossVal{1..5}/<slice id>.png` (0/255; any value > 0 is infection).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from models._weights import load_checked

from . import NSD_TOLERANCE_PX, metrics
from ..checks import check_finite_weights, check_logits
from ..contract import main_output
from ..errors import BadValue, InputMismatch, NonFinite
from ..io import atomic_write, atomic_write_json
from ..normalization import CHOICES, for_weights
from ..records import EVAL_SCHEMA, eval_csv_name, eval_dir

FOLD_DIR = "CrossVal{fold}"
FOLD_PLACEHOLDER = "{fold}"  # 1..5: the release's numbering (MiniSeg_CrossVal{fold}.pth = test fold CrossVal{fold})
FOLD0_PLACEHOLDER = "{fold0}"  # 0..4: our run folders' numbering (runs/<dataset>/<model>/fold{fold0}/last.pt)
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Evaluation:
    """One dataset's evaluation: per-slice rows (with a `fold` column, 1-based), fold summaries, CV summary."""

    dataset: str
    per_slice: pd.DataFrame
    folds: list[dict[str, dict[str, float]]]
    summary: dict[str, dict[str, Any]]
    split: str = "paper"
    nsd_tolerance: float = NSD_TOLERANCE_PX
    normalization: list[str] | None = None  # per fold, where a model ran ("fold" or "imagenet")


def normalised(images_uint8: np.ndarray, mean: float | Sequence[float], std: float | Sequence[float],
               dtype: type = np.float32) -> np.ndarray:
    """(N,H,W) uint8 grey slices -> (N,C,H,W) model inputs (x/255 - mean)/std, C = 1 or one per channel of mean/std."""
    mean_c, std_c = (np.asarray(v, dtype=dtype).reshape(1, -1, 1, 1) for v in (mean, std))
    return ((images_uint8.astype(dtype) / dtype(255.0))[:, None] - mean_c) / std_c


@dataclass(frozen=True)
class TrainingInputs:
    """A fold's training slices and the normalisation its weights take: what `evaluate --backend ... --precision
    int8` calibrates a quantised graph on (never a test slice)."""

    images: np.ndarray  # uint8 (N,H,W)
    mean: float | Sequence[float]
    std: float | Sequence[float]

    def __len__(self) -> int:
        return len(self.images)

    def take(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Those slices as float32 (n,3,H,W) inputs, normalised exactly like the test slices."""
        x = normalised(self.images[np.asarray(indices, dtype=int)], self.mean, self.std)
        return np.ascontiguousarray(np.broadcast_to(x, (x.shape[0], 3, *x.shape[2:])))


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images_uint8: np.ndarray,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    device: torch.device | str,
    batch_size: int = 8,
    dtype: torch.dtype = torch.float32,
    out_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Foreground masks (N,H,W) bool: grey slices replicated to 3 channels, (x/255 - mean)/std, argmax of eval logits.

    `mean` / `std`: one value for all channels or one per channel. `out_size`: the ground truth's
    (H, W) when the model runs at another size; the logits are resized to it (bilinear) before the argmax.
    float32 is the authors' arithmetic; float64 makes the argmax immune to accumulation order
    (thread count, CPU, cuDNN algorithm), which decides a few near-tied pixels in float32.
    Logits off the output contract (ContractViolation) or holding NaN/Inf (NonFinite) are an error, not a
    prediction; a model registered with `low_res_logits` has its logits upsampled like those of another grid.
    The model runs in eval mode and is put back in the mode and dtype it came in.
    """
    device, was_training = torch.device(device), model.training
    old_dtype = next(iter(model.parameters()), torch.empty(0)).dtype
    model = model.to(device=device, dtype=dtype).eval()
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    out = np.empty((len(images_uint8), *(out_size or images_uint8.shape[1:])), dtype=bool)
    starts = range(0, len(images_uint8), batch_size)
    try:
        for start in tqdm(starts, desc="predict", unit="batch", leave=False, disable=None):
            batch = normalised(images_uint8[start:start + batch_size], mean, std, np_dtype)
            x = torch.from_numpy(batch).to(device).expand(-1, 3, -1, -1).contiguous()
            logits = main_output(model(x))
            check_logits(model, x, logits)
            size = tuple(out_size or x.shape[-2:])
            if tuple(logits.shape[-2:]) != size:
                logits = torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            out[start:start + batch_size] = (logits.argmax(dim=1) != 0).cpu().numpy()
    finally:
        model.to(dtype=old_dtype).train(was_training)
    return out


def read_map(path: Path) -> np.ndarray:
    """A prediction map PNG as bool (H,W): 0 = background, one value > 0 = infection; errors name the file.

    A map with several foreground values (a probability or multi-class map) is an error, not thresholded.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prediction map not found")
    try:
        with Image.open(path) as image:
            image.load()
            grey = image if image.mode in ("L", "1", "P", "I", "I;16") else image.convert("L")
            values = np.asarray(grey)
    except (OSError, SyntaxError) as err:
        raise BadValue(f"{path}: unreadable prediction map ({err})") from None
    foreground = values > 0
    labels = values[foreground]
    if labels.size and (labels != labels[0]).any():
        found = np.unique(values).tolist()
        shown = found if len(found) <= 8 else found[:8] + ["..."]
        raise BadValue(f"{path}: map has values {shown}; expected a binary map (0 and one foreground value, "
                       "e.g. 0/255)")
    return foreground


def _fold_of(slice_id: str, folds: Sequence[Sequence[str]]) -> int | None:
    """1-based fold holding `slice_id`, or None."""
    return next((k + 1 for k, fold in enumerate(folds) if slice_id in fold), None)


def read_fold_maps(
    maps_dir: Path, fold: int, folds: Sequence[Sequence[str]], shape: tuple[int, int],
    truth_of: Callable[[str], Path] | None = None,
) -> np.ndarray:
    """Fold `fold`'s (1-based) maps in the order of its ids; a missing, foreign or wrongly sized map is an error
    (naming the map and, through `truth_of(slice id)`, the ground-truth mask it was checked against)."""
    fold_dir = Path(maps_dir) / FOLD_DIR.format(fold=fold)
    if not fold_dir.is_dir():
        raise FileNotFoundError(f"{fold_dir}: folder not found; expected maps laid out as DIR/CrossVal1..5/<slice id>.png")
    ids = folds[fold - 1]
    known = set(ids)
    for path in sorted(fold_dir.glob("*.png")):
        if path.stem not in known:
            owner = _fold_of(path.stem, folds)
            where = f"it belongs to fold {owner}" if owner else "no fold has it"
            raise BadValue(f"{path}: unknown slice id {path.stem!r} for fold {fold} ({where})")
    maps = np.empty((len(ids), *shape), dtype=bool)
    for i, slice_id in enumerate(ids):
        path = fold_dir / f"{slice_id}.png"
        array = read_map(path)
        if array.shape != shape:
            truth = f" ({truth_of(slice_id)})" if truth_of else ""
            raise InputMismatch(
                f"{path}: map is {array.shape[1]}x{array.shape[0]}, ground truth is {shape[1]}x{shape[0]}{truth}"
            )
        maps[i] = array
    return maps


def _collect(
    dataset: str, per_fold: list[tuple[list[str], np.ndarray, np.ndarray]], split: str, nsd_tolerance: float
) -> Evaluation:
    """Per-slice rows and summaries from (ids, predictions, ground truth) of each fold."""
    frames, summaries = [], []
    for k, (ids, pred, gt) in enumerate(per_fold, start=1):
        frame = metrics.slice_metrics(pred, gt, ids, nsd_tolerance)
        summaries.append(metrics.fold_summary(frame))
        frames.append(frame.assign(fold=k)[["fold", *frame.columns]])
    per_slice = pd.concat(frames, ignore_index=True)
    return Evaluation(dataset, per_slice, summaries, metrics.cv_summary(summaries), split, nsd_tolerance)


def _mask_file_of(dataset: str, data_root: Path) -> Callable[[str], Path]:
    """slice id -> the dataset's mask file of it (for error messages that name both files)."""
    from ..datasets import get_spec
    from ..datasets.layout import dataset_path, mask_path

    spec = get_spec(dataset, data_root)
    return lambda slice_id: mask_path(spec, dataset_path(spec, data_root), slice_id)


def _canonical(dataset: str, data_root: Path | None = None) -> str:
    from ..datasets import get_spec

    return get_spec(dataset, data_root).name


def evaluate_maps(
    dataset: str,
    data_root: str | Path,
    maps_dir: str | Path,
    split: str = "paper",
    nsd_tolerance: float = NSD_TOLERANCE_PX,
) -> Evaluation:
    """Score precomputed maps `maps_dir/CrossVal{k}/<id>.png` against the dataset's ground truth, fold by fold.

    `split` names the folds the maps are laid out by (CrossVal{k} = test fold k-1 of that split).
    """
    from ..datasets import get_folds, load_on_truth_grid

    maps_dir, data_root = Path(maps_dir), Path(data_root)
    if not maps_dir.is_dir():
        raise FileNotFoundError(f"{maps_dir}: maps folder not found")
    folds = get_folds(dataset, data_root, split=split)
    per_fold = []
    for k, ids in enumerate(folds, start=1):
        gt = load_on_truth_grid(dataset, data_root, ids, masks_only=True).masks
        maps = read_fold_maps(maps_dir, k, folds, gt.shape[1:], _mask_file_of(dataset, data_root))
        per_fold.append((list(ids), maps, gt))
    return _collect(_canonical(dataset, data_root), per_fold, split, nsd_tolerance)


def fold_weight_paths(pattern: str, n_folds: int) -> list[Path]:
    """The weights file of each fold, in fold order; all must exist. In `pattern`, `{fold}` stands for 1..n_folds
    (the release's CrossVal numbering) and `{fold0}` for 0..n_folds-1 (our run folders, fold0..fold4)."""
    if FOLD_PLACEHOLDER not in pattern and FOLD0_PLACEHOLDER not in pattern:
        raise ValueError(f"--weights {pattern!r} must contain {FOLD_PLACEHOLDER} (it stands for the fold, "
                         f"1..{n_folds}) or {FOLD0_PLACEHOLDER} (0..{n_folds - 1}, as our run folders "
                         "runs/<dataset>/<model>/fold<k>/ count)")
    paths = [Path(pattern.replace(FOLD_PLACEHOLDER, str(k + 1)).replace(FOLD0_PLACEHOLDER, str(k)))
             for k in range(n_folds)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"weights file(s) not found: {', '.join(missing)}")
    return paths


def _state_dict(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    """A plain state_dict, or the one stored under 'state_dict'/'model' in a checkpoint dict."""
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
        if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
            return loaded
    raise BadValue(f"{path}: not a state_dict (expected a dict of tensor names to tensors)")


def read_weights_file(path: Path, device: torch.device) -> Any:
    """`torch.load(path, weights_only=True)`; an unreadable file is an error naming it."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises pickle, zip and runtime errors alike for a bad file
        reason = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else ""
        raise BadValue(f"{path}: not a loadable weights file ({type(err).__name__}: {reason})") from None


def load_weights(
    model: torch.nn.Module, path: Path, device: torch.device, name: str = "the model", loaded: Any = None
) -> torch.nn.Module:
    """Load `path` (weights_only; or its already `loaded` content) into `model` strictly; an unreadable or
    mismatched file is an error naming it and the model (`name`), with the first mismatching key and both shapes;
    so is one holding NaN/Inf, with the first such tensor."""
    if loaded is None:
        loaded = read_weights_file(path, device)
    state = _state_dict(loaded, path)
    check_finite_weights(state, str(path))
    return load_checked(model, state, str(path), name, error=InputMismatch)


def write_mask_pngs(folder: Path, names: Iterable[str], masks: Iterable[np.ndarray]) -> list[Path]:
    """Each mask as a 0/255 PNG `folder/<name>.png`, written atomically; the paths written."""
    paths = []
    for name, mask in zip(names, masks):
        image = Image.fromarray(mask.astype(np.uint8) * 255)
        paths.append(atomic_write(Path(folder) / f"{name}.png", lambda tmp, im=image: im.save(tmp, format="PNG")))
    return paths


def save_fold_maps(out_dir: Path, fold: int, ids: Sequence[str], masks: np.ndarray) -> None:
    """Write masks as 0/255 PNGs `out_dir/CrossVal{fold}/<id>.png` (the SegMaps layout), each atomically."""
    write_mask_pngs(Path(out_dir) / FOLD_DIR.format(fold=fold), ids, masks)


def evaluate_weights(
    dataset: str,
    data_root: str | Path,
    model_name: str,
    weights_pattern: str,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    save_maps: str | Path | None = None,
    dtype: torch.dtype = torch.float64,
    split: str = "paper",
    nsd_tolerance: float = NSD_TOLERANCE_PX,
    normalization: str = "auto",
    deploy: Callable[..., torch.nn.Module] | None = None,
) -> Evaluation:
    """Run `model_name` with fold k's weights on fold k's test slices, then score.

    `deploy(model, k, (height, width), training)`, when given, replaces fold k's model (weights loaded) by what
    runs instead at the slices' size: a module calling an exported graph on a runtime (`benchmark.deploy`,
    `evaluate --backend`). `training` (a `TrainingInputs`) hands it fold k's training slices, normalised,
    to calibrate a quantised graph on: never a test slice.

    Inputs are normalised as the weights were trained: `normalization` "fold" (fold k's training
    slices' statistics) or "imagenet"; "auto" takes what a checkpoint of our `train` records, else the
    model's `paper` recipe (ImageNet for the rows trained from ImageNet weights, else fold); with "auto"
    a checkpoint that records the mean/std it was trained with is run with exactly those. The
    normalisation used is in `Evaluation.normalization` (one entry per fold).
    """
    from models import create_model

    from ..datasets import get_folds, load_on_truth_grid

    if normalization not in CHOICES:
        raise ValueError(f"normalization must be one of {', '.join(CHOICES)}, got {normalization!r}")

    data_root, device = Path(data_root), torch.device(device)
    folds = get_folds(dataset, data_root, split=split)
    paths = fold_weight_paths(weights_pattern, len(folds))
    all_ids = [i for fold in folds for i in fold]
    data = load_on_truth_grid(dataset, data_root, all_ids)
    fold_of = np.repeat(np.arange(len(folds)), [len(f) for f in folds])
    per_fold, used = [], []
    for k, (ids, path) in enumerate(zip(folds, paths), start=1):
        test = fold_of == k - 1
        loaded = read_weights_file(path, device)
        model = load_weights(create_model(model_name), path, device, model_name, loaded)
        name, mean, std = for_weights(normalization, loaded, model_name, data.images[~test])
        used.append(name)
        if deploy is not None:
            model = deploy(model.eval(), k, data.images.shape[1:3], TrainingInputs(data.images[~test], mean, std))
        try:
            pred = predict(model, data.images[test], mean, std, device, batch_size, dtype)
        except NonFinite as err:  # finite weights, non-finite logits: name the file they came from too
            raise NonFinite(f"{path}: {err}") from None
        if save_maps is not None:
            save_fold_maps(Path(save_maps), k, ids, pred)
        per_fold.append((list(ids), pred, data.masks[test]))
    evaluation = _collect(_canonical(dataset, data_root), per_fold, split, nsd_tolerance)
    evaluation.normalization = used
    return evaluation


def _policy_block(summary: dict[str, Any]) -> dict[str, Any]:
    """Folds, mean, std and totals of one policy for the result file."""
    return {key: summary[key] for key in ("folds", "mean", "std", "totals")}


def eval_record(evaluation: Evaluation, label: str, source: dict[str, Any], extra: dict[str, Any] | None = None) -> dict:
    """The `miniseg-bench/eval/1` summary: paper policy at the top level, strict under `strict`."""
    paper = _policy_block(evaluation.summary["paper"])
    return {
        "schema": EVAL_SCHEMA,
        "dataset": evaluation.dataset,
        "split": evaluation.split,
        "label": label,
        "source": source,
        "policy": "paper",
        **paper,
        "strict": {**_policy_block(evaluation.summary["strict"]), "nsd_tolerance_px": evaluation.nsd_tolerance,
                   "z_spacing_px": metrics.Z_SPACING_PX},
        "per_slice_csv": eval_csv_name(label),
        **(extra or {}),
    }


def check_label(label: str) -> str:
    """A label is a file name stem: letters, digits, '.', '_', '-'."""
    if not _LABEL_RE.match(label):
        raise ValueError(f"label {label!r} must be letters, digits, '.', '_' or '-' (it names the result files)")
    return label


def write_results(
    evaluation: Evaluation, results_dir: str | Path, label: str, source: dict[str, Any], extra: dict[str, Any] | None = None
) -> Path:
    """Write `<results>/eval/<dataset>/<label>.json` (`<dataset>-grouped/` for that split) and the per-slice CSV."""
    out_dir = eval_dir(results_dir, evaluation.dataset, evaluation.split)
    check_label(label)
    csv_path = out_dir / eval_csv_name(label)
    atomic_write(csv_path, lambda tmp: evaluation.per_slice.to_csv(tmp, index=False, float_format="%.10g"))
    return atomic_write_json(out_dir / f"{label}.json", eval_record(evaluation, label, source, extra))

