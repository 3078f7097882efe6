"""Segmentation metrics: per-slice confusion counts once, every metric a small pure function of them.

Two policies are computed side by side for every slice:

- ``paper``: the MiniSeg paper's semantics (../shared/paper/PROTOCOL.md). An empty prediction
  scores 0 for DSC, SEN, SPC and HD alike, and the slice still counts. Fold values are the mean
  over the fold's slices; mIoU is the mean of background and infection IoU from one confusion
  matrix pooled over all pixels of the fold. (An empty ground truth with a non-empty prediction
  crashes the authors' script; here its undefined SEN and HD are NaN and left out of the mean.)
- ``strict``: a value is NaN wherever it is undefined (DSC and IoU with both sets empty, SEN with
  an empty ground truth, precision with an empty prediction, HD/HD95 with either set empty);
  means skip NaN and the summary counts the empty slices. Adds IoU, precision, HD95 and the
  Dice pooled over the fold's pixels.

HD is the full symmetric Hausdorff distance between the two foreground pixel sets, in pixels
(spacing 1, exact Euclidean, from distance transforms). HD95 takes the 95th percentile instead
of the maximum in each direction over the same pixel sets, then the larger of the two.
Ratios are fractions (0..1) per slice and percent in fold and cross-validation summaries.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = [
    "Counts",
    "confusion_counts",
    "dice",
    "sensitivity",
    "specificity",
    "iou",
    "precision",
    "hausdorff_px",
    "pooled_miou",
    "slice_metrics",
    "fold_summary",
    "cv_summary",
    "SUMMARY_KEYS",
]

SUMMARY_KEYS = ("dsc", "sen", "spc", "hd", "miou")
STRICT_SLICE_KEYS = ("dsc", "sen", "spc", "iou", "precision", "hd", "hd95")
_PERCENT_KEYS = ("dsc", "sen", "spc", "iou", "precision")
HD_PERCENTILE = 95.0


class Counts(NamedTuple):
    """Per-slice confusion counts, each an int64 array of shape (N,)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray


def _as_masks(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both stacks as bool (N, H, W) arrays of one shape, or a ValueError saying why not."""
    pred, gt = np.asarray(pred).astype(bool, copy=False), np.asarray(gt).astype(bool, copy=False)
    if pred.ndim != 3 or pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must both be (N, H, W) of one shape")
    return pred, gt


def confusion_counts(pred: np.ndarray, gt: np.ndarray) -> Counts:
    """TP/FP/FN/TN of every slice of two (N, H, W) masks, in one vectorised pass."""
    pred, gt = _as_masks(pred, gt)
    axes = (1, 2)
    tp = np.count_nonzero(pred & gt, axis=axes).astype(np.int64)
    fp = np.count_nonzero(pred, axis=axes).astype(np.int64) - tp
    fn = np.count_nonzero(gt, axis=axes).astype(np.int64) - tp
    tn = np.int64(pred.shape[1] * pred.shape[2]) - tp - fp - fn
    return Counts(tp, fp, fn, tn)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den as float64, NaN where den == 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def dice(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """DSC = 2TP / (2TP + FP + FN); NaN when both masks are empty."""
    return _ratio(2 * np.asarray(tp), 2 * np.asarray(tp) + fp + fn)


def sensitivity(tp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """SEN (recall) = TP / (TP + FN); NaN when the ground truth is empty."""
    return _ratio(tp, np.asarray(tp) + fn)


def specificity(tn: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """SPC = TN / (TN + FP) over the whole image; NaN when the ground truth fills the image."""
    return _ratio(tn, np.asarray(tn) + fp)


def iou(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """IoU (Jaccard) = TP / (TP + FP + FN); NaN when both masks are empty."""
    return _ratio(tp, np.asarray(tp) + fp + fn)


def precision(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Precision = TP / (TP + FP); NaN when the prediction is empty."""
    return _ratio(tp, np.asarray(tp) + fp)


def pooled_miou(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> float:
    """Mean of background and foreground IoU of one 2-class confusion matrix summed over all slices.

    A class absent from both masks of every slice has no IoU and is left out of the mean.
    """
    tp_sum, fp_sum, fn_sum, tn_sum = (np.sum(x, dtype=np.int64) for x in (tp, fp, fn, tn))
    fg = iou(tp_sum, fp_sum, fn_sum)
    bg = iou(tn_sum, fn_sum, fp_sum)  # background's TP is TN; its FP is the foreground's FN
    return _nanmean(np.array([fg, bg]))


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The smallest (rows, cols) window holding every True pixel of a non-empty 2-D mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _distances_to(target: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) from each True pixel of `at` to the nearest True pixel of `target`."""
    return ndimage.distance_transform_edt(~target)[at]


def _slice_hausdorff_px(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(HD, HD95) of two non-empty 2-D masks.

    The distance transforms run on the bounding box of both sets: every pixel that can be a
    nearest neighbour lies inside it, so the distances are exact and the work is much smaller.
    """
    window = _bounding_box(pred | gt)
    pred, gt = pred[window], gt[window]
    pred_to_gt, gt_to_pred = _distances_to(gt, pred), _distances_to(pred, gt)
    hd = max(pred_to_gt.max(), gt_to_pred.max())
    hd95 = max(np.percentile(pred_to_gt, HD_PERCENTILE), np.percentile(gt_to_pred, HD_PERCENTILE))
    return float(hd), float(hd95)


def hausdorff_px(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice (HD, HD95) in pixels of two (N, H, W) masks; NaN where either set is empty."""
    pred, gt = _as_masks(pred, gt)
    hd, hd95 = np.full(len(pred), np.nan), np.full(len(pred), np.nan)
    defined = pred.any(axis=(1, 2)) & gt.any(axis=(1, 2))
    for i in np.flatnonzero(defined):
        hd[i], hd95[i] = _slice_hausdorff_px(pred[i], gt[i])
    return hd, hd95


def _paper_values(counts: Counts, hd: np.ndarray) -> dict[str, np.ndarray]:
    """The paper's per-slice DSC/SEN/SPC/HD: every one 0 where the prediction is empty."""
    empty_pred = (counts.tp + counts.fp) == 0
    values = {
        "dsc": dice(counts.tp, counts.fp, counts.fn),
        "sen": sensitivity(counts.tp, counts.fn),
        "spc": specificity(counts.tn, counts.fp),
        "hd": hd.copy(),
    }
    for array in values.values():
        array[empty_pred] = 0.0
    return values


def _strict_values(counts: Counts, hd: np.ndarray, hd95: np.ndarray) -> dict[str, np.ndarray]:
    """Per-slice strict values: NaN wherever a metric is undefined."""
    return {
        "dsc": dice(counts.tp, counts.fp, counts.fn),
        "sen": sensitivity(counts.tp, counts.fn),
        "spc": specificity(counts.tn, counts.fp),
        "iou": iou(counts.tp, counts.fp, counts.fn),
        "precision": precision(counts.tp, counts.fp),
        "hd": hd,
        "hd95": hd95,
    }


def slice_metrics(pred: np.ndarray, gt: np.ndarray, ids: Sequence[str]) -> pd.DataFrame:
    """One row per slice: id, tp, fp, fn, tn, paper_{dsc,sen,spc,hd}, strict_{dsc,...,hd95} (fractions, px)."""
    pred, gt = _as_masks(pred, gt)
    if len(ids) != len(pred):
        raise ValueError(f"{len(ids)} slice ids for {len(pred)} slices")
    counts = confusion_counts(pred, gt)
    hd, hd95 = hausdorff_px(pred, gt)
    columns: dict[str, Sequence] = {"id": list(ids), **counts._asdict()}
    columns.update({f"paper_{k}": v for k, v in _paper_values(counts, hd).items()})
    columns.update({f"strict_{k}": v for k, v in _strict_values(counts, hd, hd95).items()})
    return pd.DataFrame(columns)


def _nanmean(values: np.ndarray) -> float:
    """Mean ignoring NaN; NaN (without a warning) when nothing is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if len(values) else float("nan")


def _scaled(key: str, value: float) -> float:
    """Ratios in percent, distances unchanged."""
    return 100.0 * value if key in _PERCENT_KEYS else value


def fold_summary(per_slice: pd.DataFrame) -> dict[str, dict[str, float]]:
    """One fold's values under both policies: ratios in percent, HD in px, plus slice counts."""
    counts = Counts(*(per_slice[k].to_numpy(np.int64) for k in Counts._fields))
    miou = 100.0 * pooled_miou(*counts)
    n_slices = len(per_slice)
    paper = {k: _scaled(k, _nanmean(per_slice[f"paper_{k}"].to_numpy(float))) for k in SUMMARY_KEYS[:-1]}
    strict = {k: _scaled(k, _nanmean(per_slice[f"strict_{k}"].to_numpy(float))) for k in STRICT_SLICE_KEYS}
    strict["dsc_pooled"] = 100.0 * float(dice(counts.tp.sum(), counts.fp.sum(), counts.fn.sum()))
    empty_pred, empty_gt = counts.tp + counts.fp == 0, counts.tp + counts.fn == 0
    return {
        "paper": {**paper, "miou": miou, "n_slices": n_slices},
        "strict": {
            **strict,
            "miou": miou,
            "n_slices": n_slices,
            "n_empty_gt": int(empty_gt.sum()),
            "n_empty_pred": int(empty_pred.sum()),
            "n_empty_both": int((empty_gt & empty_pred).sum()),
        },
    }


def _is_count(key: str) -> bool:
    return key.startswith("n_") or key == "fold"


def _policy_cv(folds: list[dict[str, float]]) -> dict[str, object]:
    """Mean and sample std (ddof=1; NaN for one fold) over folds, the folds themselves, summed counts."""
    metric_keys = [k for k in folds[0] if not _is_count(k)]
    table = np.array([[fold[k] for k in metric_keys] for fold in folds], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(table, axis=0)
        std = np.nanstd(table, axis=0, ddof=1) if len(folds) > 1 else np.full(len(metric_keys), np.nan)
    count_keys = [k for k in folds[0] if _is_count(k) and k != "fold"]
    return {
        "mean": dict(zip(metric_keys, map(float, mean))),
        "std": dict(zip(metric_keys, map(float, std))),
        "folds": [{"fold": fold.get("fold", i + 1), **fold} for i, fold in enumerate(folds)],
        "totals": {k: int(sum(fold[k] for fold in folds)) for k in count_keys},
    }


def cv_summary(fold_summaries: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, object]]:
    """Cross-validation summary per policy: the unweighted mean of fold values (the paper's rule), std, folds."""
    if not fold_summaries:
        raise ValueError("cv_summary needs at least one fold summary")
    return {policy: _policy_cv([s[policy] for s in fold_summaries]) for policy in fold_summaries[0]}
