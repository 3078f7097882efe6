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
(spacing 1, exact Euclidean, from distance transforms), as the paper computes it. HD95 (strict)
is the 95th percentile of the boundary-to-boundary distances in each direction, the larger of the
two, as MONAI's `compute_hausdorff_distance(percentile=95)`, medpy and Metrics Reloaded define it:
boundary pixels are those with a 4-neighbour (in 3-D a 6-neighbour) outside the mask, the same
boundary NSD uses (below). Percentiles interpolate linearly between the sorted distances.
Ratios are fractions (0..1) per slice and percent in fold and cross-validation summaries.

The strict policy also has:

- NSD, the normalised surface Dice at a tolerance of tau pixels (Metrics Reloaded's boundary
  metric): boundary pixels are a mask's pixels with a 4-neighbour outside it (image borders count
  as outside), and NSD = (#pred boundary pixels within tau of the GT boundary + #GT boundary
  pixels within tau of the pred boundary) / (#pred + #GT boundary pixels); NaN when both masks
  are empty, 0 when one is. Boundary lengths are pixel counts, as in MONAI's
  `compute_surface_dice` without sub-voxels and MetricsReloaded.
- Per-volume (3D) metrics where slice ids carry a volume (P9, P20, P1110, synthetic): a
  volume's test slices are stacked at their z index (the id's trailing number), pixel spacing 1
  in plane and one pixel per slice index along z (PNG slices carry no spacing: this assumes
  isotropic voxels). Dice and sensitivity come from the volume's summed counts; HD is the 3D
  Hausdorff distance in those pixel units, HD95 the 3D one over boundary voxels (a 6-neighbour
  outside the mask; a missing slice index counts as outside). Each slice row stores the largest 3D
  distance of its predicted pixels to the volume's ground truth and of its ground-truth pixels to the
  volume's prediction (`hd3d_pred_to_gt`, `hd3d_gt_to_pred`) and its volume's HD95 (`hd95_3d`, a
  percentile does not split by slice), so `volume_metrics` rebuilds each volume's values from the
  per-slice table alone.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from . import NSD_TOLERANCE_PX, percent_scale

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
    "miou_of_sums",
    "surface_dice",
    "volume_distances",
    "volume_hd95",
    "volume_metrics",
    "slice_metrics",
    "fold_summary",
    "cv_summary",
    "SUMMARY_KEYS",
]

SUMMARY_KEYS = ("dsc", "sen", "spc", "hd", "miou")
STRICT_SLICE_KEYS = ("dsc", "sen", "spc", "iou", "precision", "hd", "hd95", "nsd")
VOLUME_KEYS = ("dsc", "sen", "hd", "hd95")  # per-volume (3D) metrics, `<key>_3d` in the strict summaries
HD_PERCENTILE = 95.0
Z_SPACING_PX = 1.0  # distance between consecutive slice indices, in in-plane pixels (PNGs carry no spacing)
_CROSS = ndimage.generate_binary_structure(2, 1)


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
    sums = (np.sum(x, dtype=np.int64) for x in (tp, fp, fn, tn))
    return float(miou_of_sums(*sums))


def miou_of_sums(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    """`pooled_miou` of confusion counts already summed, element-wise (e.g. one per bootstrap resample)."""
    fg = iou(tp, fp, fn)
    bg = iou(tn, fn, fp)  # background's TP is TN; its FP is the foreground's FN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # both classes absent: NaN
        return np.nanmean(np.stack([fg, bg]), axis=0)


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The smallest (rows, cols) window holding every True pixel of a non-empty 2-D mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _distances_to(target: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) from each True pixel of `at` to the nearest True pixel of `target`."""
    return ndimage.distance_transform_edt(~target)[at]


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of a 2-D mask with a 4-neighbour outside it (outside the image counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def _edge_distances(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each boundary pixel of `pred` to `gt`'s boundary, and back, of two non-empty 2-D masks
    already cut to the window of both (the pixels outside it are background in both, so this is exact)."""
    edge_pred, edge_gt = boundary(pred), boundary(gt)
    return _distances_to(edge_gt, edge_pred), _distances_to(edge_pred, edge_gt)


def _symmetric_percentile(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, percentile: float) -> float:
    """The larger of the two directed percentiles of a pair of distance sets."""
    return float(max(np.percentile(pred_to_gt, percentile), np.percentile(gt_to_pred, percentile)))


def _slice_distances(pred: np.ndarray, gt: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """(HD, HD95, NSD) of two non-empty 2-D masks: HD over the foreground pixels (the paper's), HD95 and NSD
    over the boundaries, whose distances are computed once for both."""
    window = _bounding_box(pred | gt)
    pred, gt = pred[window], gt[window]
    hd = max(_distances_to(gt, pred).max(), _distances_to(pred, gt).max())
    pred_to_gt, gt_to_pred = _edge_distances(pred, gt)
    within = np.count_nonzero(pred_to_gt <= tolerance) + np.count_nonzero(gt_to_pred <= tolerance)
    nsd = within / (len(pred_to_gt) + len(gt_to_pred))
    return float(hd), _symmetric_percentile(pred_to_gt, gt_to_pred, HD_PERCENTILE), nsd


def _distance_metrics(
    pred: np.ndarray, gt: np.ndarray, tolerance: float = NSD_TOLERANCE_PX
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-slice HD, HD95 (NaN where either mask is empty) and NSD at `tolerance` px (NaN both empty, 0 one empty)
    of two (N, H, W) stacks."""
    pred, gt = _as_masks(pred, gt)
    if not (tolerance >= 0 and np.isfinite(tolerance)):
        raise ValueError(f"NSD tolerance must be a finite number >= 0 pixels, got {tolerance}")
    has_pred, has_gt = pred.any(axis=(1, 2)), gt.any(axis=(1, 2))
    hd, hd95 = np.full(len(pred), np.nan), np.full(len(pred), np.nan)
    nsd = np.where(has_pred | has_gt, 0.0, np.nan)
    for i in np.flatnonzero(has_pred & has_gt):
        hd[i], hd95[i], nsd[i] = _slice_distances(pred[i], gt[i], tolerance)
    return hd, hd95, nsd


def hausdorff_px(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice (HD, HD95) in pixels of two (N, H, W) masks; NaN where either set is empty."""
    hd, hd95, _ = _distance_metrics(pred, gt)
    return hd, hd95


def surface_dice(pred: np.ndarray, gt: np.ndarray, tolerance: float = NSD_TOLERANCE_PX) -> np.ndarray:
    """Per-slice normalised surface Dice of two (N, H, W) masks at `tolerance` px; NaN both empty, 0 one empty."""
    return _distance_metrics(pred, gt, tolerance)[2]


def _stack_boundary(masks: np.ndarray, z: np.ndarray) -> np.ndarray:
    """3-D boundary of slices stacked at indices `z` (sorted, distinct): in-plane boundary, or no mask at z +- 1."""
    out = np.stack([boundary(m) for m in masks])
    for i in range(len(masks)):
        for j in (i - 1, i + 1):
            neighbour = masks[j] if 0 <= j < len(masks) and abs(int(z[j]) - int(z[i])) == 1 else None
            out[i] |= masks[i] if neighbour is None else masks[i] & ~neighbour
    return out


def _directed_3d(source: np.ndarray, target: np.ndarray, target_edge: cKDTree, z: np.ndarray,
                 z_spacing: float) -> np.ndarray:
    """Per slice: the largest distance from a `source` voxel to the `target` set (NaN where a slice has none).

    A source voxel's nearest target voxel is a 3-D boundary voxel of the target (a voxel with a
    6-neighbour outside it), so a KD-tree of the boundary (`target_edge`) answers exactly; voxels inside
    the target are at distance 0.
    """
    out = np.where(source.any(axis=(1, 2)), 0.0, np.nan)
    outside = source & ~target
    if not outside.any():
        return out
    distances, _ = target_edge.query(_voxel_points(outside, z, z_spacing))
    np.maximum.at(out, np.argwhere(outside)[:, 0], distances)
    return out


def _voxel_points(stack: np.ndarray, z: np.ndarray, z_spacing: float) -> np.ndarray:
    """(n, 3) coordinates in pixels of the True voxels of slices stacked at indices `z` (z scaled by `z_spacing`)."""
    points = np.argwhere(stack).astype(np.float64)
    points[:, 0] = z[points[:, 0].astype(int)] * z_spacing
    return points


def _slice_indices(z: Sequence[int], n_slices: int) -> np.ndarray:
    """`z` as int64, or a ValueError unless it holds one distinct index per slice."""
    z = np.asarray(z, dtype=np.int64)
    if len(z) != n_slices or len(np.unique(z)) != len(z):
        raise ValueError(f"one distinct z index per slice needed, got {len(z)} ({len(np.unique(z))} distinct) "
                         f"for {n_slices} slices")
    return z


def volume_distances(
    pred: np.ndarray, gt: np.ndarray, z: Sequence[int], z_spacing: float = Z_SPACING_PX
) -> tuple[np.ndarray, np.ndarray]:
    """Per slice of one volume: largest 3-D distance (px) pred -> GT and GT -> pred; NaN where undefined.

    Slices are stacked at their z index (any order given; the result follows the input order).
    Both directions are NaN on every slice when the volume's prediction or ground truth is empty.
    """
    p2g, g2p, _ = _volume_3d(pred, gt, z, z_spacing)
    return p2g, g2p


def volume_hd95(pred: np.ndarray, gt: np.ndarray, z: Sequence[int], z_spacing: float = Z_SPACING_PX) -> float:
    """3-D HD95 (px) of one volume's slices stacked at their z index (any order): the 95th percentile of the
    boundary-to-boundary distances in each direction, the larger of the two; NaN when either set is empty.

    Boundary voxels have a 6-neighbour outside the mask (a missing slice index counts as outside, as in
    `volume_distances`); a KD-tree of each boundary gives the exact distances.
    """
    return _volume_3d(pred, gt, z, z_spacing)[2]


def _volume_3d(pred: np.ndarray, gt: np.ndarray, z: Sequence[int],
               z_spacing: float) -> tuple[np.ndarray, np.ndarray, float]:
    """`volume_distances`' two per-slice directions and `volume_hd95`, from one pair of 3-D boundaries and trees."""
    pred, gt = _as_masks(pred, gt)
    z = _slice_indices(z, len(pred))
    nan = np.full(len(pred), np.nan)
    if not (pred.any() and gt.any()):
        return nan, nan.copy(), float("nan")
    order = np.argsort(z)
    window = (order, *_bounding_box((pred | gt).any(axis=0)))  # in-plane: exact (outside it both are empty)
    zs, p, g = z[order], pred[window], gt[window]
    edge_p, edge_g = (_voxel_points(_stack_boundary(m, zs), zs, z_spacing) for m in (p, g))
    tree_p, tree_g = cKDTree(edge_p), cKDTree(edge_g)
    p2g, g2p = np.empty(len(z)), np.empty(len(z))
    p2g[order] = _directed_3d(p, g, tree_g, zs, z_spacing)
    g2p[order] = _directed_3d(g, p, tree_p, zs, z_spacing)
    hd95 = _symmetric_percentile(tree_g.query(edge_p)[0], tree_p.query(edge_g)[0], HD_PERCENTILE)
    return p2g, g2p, hd95


def _volume_columns(pred: np.ndarray, gt: np.ndarray, ids: Sequence[str]) -> dict[str, Sequence] | None:
    """`volume`, `z` and the 3-D distance columns where the ids carry a volume (their dataset's patient map):
    each slice's largest distances to the volume's other set, and the volume's HD95 (on each of its rows)."""
    from ..datasets import patient_map, spec_for_ids

    spec = spec_for_ids(ids)
    if spec is None or patient_map(spec.name).volume_regex is None:
        return None
    pmap = patient_map(spec.name)
    volumes = [pmap.volume_of(i) for i in ids]
    z = np.array([pmap.z_of(i) for i in ids], dtype=np.int64)
    p2g, g2p, hd95 = (np.full(len(ids), np.nan) for _ in range(3))
    for volume in dict.fromkeys(volumes):
        rows = np.array([v == volume for v in volumes])
        p2g[rows], g2p[rows], hd95[rows] = _volume_3d(pred[rows], gt[rows], z[rows], Z_SPACING_PX)
    return {"volume": volumes, "z": z, "hd3d_pred_to_gt": p2g, "hd3d_gt_to_pred": g2p, "hd95_3d": hd95}


def volume_metrics(per_slice: pd.DataFrame) -> pd.DataFrame:
    """One row per volume of a per-slice table: slices, summed counts, 3-D Dice, sensitivity, HD and HD95 (strict:
    NaN if undefined; HD95 only where the table has its `hd95_3d` column, written since issue 27).

    Empty (no columns) where the table has no `volume` column (slices carry no volume, as in CT100).
    """
    if "volume" not in per_slice or per_slice["volume"].isna().all():
        return pd.DataFrame(columns=["volume", "n_slices", "tp", "fp", "fn", "tn", *VOLUME_KEYS])
    frame = per_slice.assign(hd3d=per_slice[["hd3d_pred_to_gt", "hd3d_gt_to_pred"]].max(axis=1, skipna=True))
    grouped = frame.groupby("volume", sort=True)
    out = grouped[["tp", "fp", "fn", "tn"]].sum().astype(np.int64)
    out.insert(0, "n_slices", grouped.size())
    out["dsc"] = dice(out.tp, out.fp, out.fn)
    out["sen"] = sensitivity(out.tp, out.fn)
    defined = (out.tp + out.fp > 0) & (out.tp + out.fn > 0)
    out["hd"] = grouped["hd3d"].max().where(defined)
    if "hd95_3d" in frame:
        out["hd95"] = grouped["hd95_3d"].first().where(defined)
    return out.reset_index()


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


def _strict_values(counts: Counts, hd: np.ndarray, hd95: np.ndarray, nsd: np.ndarray) -> dict[str, np.ndarray]:
    """Per-slice strict values: NaN wherever a metric is undefined."""
    return {
        "dsc": dice(counts.tp, counts.fp, counts.fn),
        "sen": sensitivity(counts.tp, counts.fn),
        "spc": specificity(counts.tn, counts.fp),
        "iou": iou(counts.tp, counts.fp, counts.fn),
        "precision": precision(counts.tp, counts.fp),
        "hd": hd,
        "hd95": hd95,
        "nsd": nsd,
    }


def slice_metrics(
    pred: np.ndarray, gt: np.ndarray, ids: Sequence[str], nsd_tolerance: float = NSD_TOLERANCE_PX
) -> pd.DataFrame:
    """One row per slice: id, tp, fp, fn, tn, paper_{dsc,sen,spc,hd}, strict_{dsc,...,hd95,nsd} (fractions, px).

    Where the ids carry a volume (P9, P20, P1110, synthetic), also `volume`, `z` and the slice's
    largest 3-D distances to the volume's other set (`hd3d_pred_to_gt`, `hd3d_gt_to_pred`).
    """
    pred, gt = _as_masks(pred, gt)
    if len(ids) != len(pred):
        raise ValueError(f"{len(ids)} slice ids for {len(pred)} slices")
    counts = confusion_counts(pred, gt)
    hd, hd95, nsd = _distance_metrics(pred, gt, nsd_tolerance)
    columns: dict[str, Sequence] = {"id": list(ids), **counts._asdict()}
    columns.update({f"paper_{k}": v for k, v in _paper_values(counts, hd).items()})
    columns.update({f"strict_{k}": v for k, v in _strict_values(counts, hd, hd95, nsd).items()})
    columns.update(_volume_columns(pred, gt, list(ids)) or {})
    return pd.DataFrame(columns)


def _nanmean(values: np.ndarray) -> float:
    """Mean ignoring NaN; NaN (without a warning) when nothing is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if len(values) else float("nan")


def _scaled(key: str, value: float) -> float:
    """Ratios in percent, distances unchanged."""
    return percent_scale(key) * value


def fold_summary(per_slice: pd.DataFrame) -> dict[str, dict[str, float]]:
    """One fold's values under both policies: ratios in percent, HD in px, plus slice counts."""
    counts = Counts(*(per_slice[k].to_numpy(np.int64) for k in Counts._fields))
    miou = 100.0 * pooled_miou(*counts)
    n_slices = len(per_slice)
    paper = {k: _scaled(k, _nanmean(per_slice[f"paper_{k}"].to_numpy(float))) for k in SUMMARY_KEYS[:-1]}
    strict = {k: _scaled(k, _nanmean(per_slice[f"strict_{k}"].to_numpy(float)))
              for k in STRICT_SLICE_KEYS if f"strict_{k}" in per_slice}
    strict["dsc_pooled"] = 100.0 * float(dice(counts.tp.sum(), counts.fp.sum(), counts.fn.sum()))
    volumes = volume_metrics(per_slice)
    strict.update({f"{k}_3d": _scaled(f"{k}_3d", _nanmean(volumes[k].to_numpy(float)))
                   for k in VOLUME_KEYS if len(volumes) and k in volumes})
    empty_pred, empty_gt = counts.tp + counts.fp == 0, counts.tp + counts.fn == 0
    return {
        "paper": {**paper, "miou": miou, "n_slices": n_slices},
        "strict": {
            **strict,
            "miou": miou,
            "n_slices": n_slices,
            **({"n_volumes": len(volumes)} if len(volumes) else {}),
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
