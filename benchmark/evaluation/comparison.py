"""Compare models on one dataset from their per-case results: bootstrap CIs, paired tests, ranks, stability.

Reads the per-slice results a results folder holds for a dataset (training runs:
`runs/<dataset>/<model>/fold<k>/per_slice.csv`; evaluations: `eval/<dataset>/<label>.csv`),
pools each model's out-of-fold predictions over the five test folds and pairs the models by
slice id. A model with a missing fold, or whose slices differ from the others', is named and
left out (never paired on a subset). `compare` returns one JSON-ready dict; `stats` holds the tests.

Units: `slice` (every test slice; the bootstrap resamples patients where slice ids carry one)
or `patient` (per-volume 3-D metrics, strict policy; a patient with two volumes, P20's
radiopaedia_10_85902, gets the mean of its volumes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import LOWER_IS_BETTER, POLICIES, UNITS, percent_scale, stats  # noqa: F401 - POLICIES: this module's interface
from .metrics import volume_metrics
from ..datasets.folds import N_FOLDS
from ..records import (
    EVAL_DIR, EVAL_SCHEMA, PER_SLICE_NAME, RECORD_NAME, RUN_SCHEMA, RUNS_DIR, canonical_dataset, eval_csv_name,
    fold_dir_name, paper_label_for, parse_results_key, read_record,
)

PATIENT_METRICS = ("dsc", "sen", "hd", "hd95")
DEFAULT_REFERENCE = "miniseg"


@dataclass
class ModelCases:
    """One model's (or evaluated source's) per-slice rows on a dataset, pooled over the folds found."""

    name: str
    kind: str  # "run" or "eval"
    frame: pd.DataFrame  # per-slice rows with a 0-based `fold` column
    folds: tuple[int, ...]
    paper_name: str | None = None


@dataclass
class Comparison:
    """The outcome of `compare` as data: the JSON dict, and the matrices the figures draw from."""

    result: dict[str, Any]
    models: list[str] = field(default_factory=list)
    stability: stats.RankStability | None = None
    nemenyi_p: np.ndarray | None = None


def _dataset_dirs(base: Path, dataset: str, split: str) -> list[Path]:
    """Folders under `base` holding `dataset` under `split` ('CT100', 'COVID-19-CT100', 'P20-grouped')."""
    out = []
    for folder in sorted(p for p in base.glob("*") if p.is_dir()):
        name, folder_split = parse_results_key(folder.name)
        if canonical_dataset(name) == dataset and folder_split == split:
            out.append(folder)
    return out


def _read_csv(path: Path) -> pd.DataFrame:
    """A per-slice CSV with ids as text; a bad file is a ValueError naming it."""
    try:
        frame = pd.read_csv(path, dtype={"id": str, "volume": str})
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: unreadable per-slice CSV ({err})") from None
    if "id" not in frame:
        raise ValueError(f"{path}: per-slice CSV without an 'id' column")
    return frame


def _warn(err: BaseException, where: Path, consequence: str) -> None:
    """Name a damaged results file on stderr (or the folder holding it) and what compare does without it."""
    from ..errors import warn_damaged

    warn_damaged(where, str(err), consequence)


def _run_cases(model_dir: Path) -> ModelCases | None:
    """A trained model's finished folds (record status done and per_slice.csv present)."""
    frames, folds, paper_name = [], [], None
    for k in range(N_FOLDS):
        fold_dir = model_dir / fold_dir_name(k)
        record_path, csv_path = fold_dir / RECORD_NAME, fold_dir / PER_SLICE_NAME
        if not (record_path.is_file() and csv_path.is_file()):
            continue
        try:
            record = read_record(record_path, RUN_SCHEMA)
            if record.get("status", "done") != "done":
                continue
            frame = _read_csv(csv_path)
        except (OSError, ValueError) as err:  # a damaged file: that fold counts as not done, the rest is kept
            _warn(err, fold_dir, "the fold counts as not done")
            continue
        info = record.get("model_info") if isinstance(record.get("model_info"), dict) else {}
        paper_name = paper_name or info.get("paper_name")
        frames.append(frame.assign(fold=k))
        folds.append(k)
    if not frames:
        return None
    return ModelCases(model_dir.name, "run", pd.concat(frames, ignore_index=True), tuple(folds), paper_name)


def _eval_cases(json_path: Path) -> ModelCases | None:
    """An evaluation's per-slice CSV (folds numbered 1..5 there, 0..4 here)."""
    try:
        record = read_record(json_path, EVAL_SCHEMA)
        csv_name = record.get("per_slice_csv")
        csv_path = json_path.parent / str(csv_name or eval_csv_name(json_path.stem))
        if not csv_path.is_file():
            return None
        frame = _read_csv(csv_path)
        if "fold" not in frame or not pd.api.types.is_numeric_dtype(frame["fold"]):
            raise ValueError(f"{csv_path}: evaluation CSV without a numeric 'fold' column")
    except (OSError, ValueError) as err:  # a damaged file: this evaluation is left out, the rest is kept
        _warn(err, json_path, "the evaluation is left out")
        return None
    frame["fold"] = frame["fold"].astype(int) - 1
    label = str(record.get("label") or json_path.stem)  # the name the report shows, and compare uses
    return ModelCases(label, "eval", frame, tuple(sorted(set(frame["fold"]))), paper_label_for(label))


def load_cases(results_dir: str | Path, dataset: str, split: str = "paper",
               data_root: str | Path | None = None) -> list[ModelCases]:
    """Every model and evaluation with per-slice results for `dataset` under `split`, by name (runs first);
    `data_root` finds a dataset of your own."""
    from ..datasets import get_spec

    results_dir, dataset = Path(results_dir), get_spec(dataset, data_root).name
    found: list[ModelCases] = []
    for folder in _dataset_dirs(results_dir / RUNS_DIR, dataset, split):
        found += [c for c in map(_run_cases, sorted(p for p in folder.glob("*") if p.is_dir())) if c]
    for folder in _dataset_dirs(results_dir / EVAL_DIR, dataset, split):
        found += [c for c in map(_eval_cases, sorted(folder.glob("*.json"))) if c]
    names: set[str] = set()
    for case in found:  # an evaluation labelled like a trained model gets a prefix
        if case.name in names:
            case.name = f"eval:{case.name}"
        names.add(case.name)
    return found


# --- validation ------------------------------------------------------------------------------

def _value_column(metric: str, policy: str, unit: str) -> str:
    """The per-slice column of a metric under a policy ('paper_dsc', 'strict_nsd'); checks the combination."""
    if unit == "patient":
        if metric not in PATIENT_METRICS:
            raise ValueError(f"--unit patient has the per-volume metrics {', '.join(PATIENT_METRICS)}, not {metric!r}")
        return metric
    if metric in ("nsd", "iou", "precision", "hd95") and policy == "paper":
        raise ValueError(f"metric {metric!r} exists only under --policy strict")
    if metric not in ("dsc", "sen", "spc", "hd", "iou", "precision", "hd95", "nsd"):
        raise ValueError(f"unknown metric {metric!r}; known: dsc, sen, spc, hd, hd95, iou, precision, nsd")
    return f"{policy}_{metric}"


def _patient_columns(metric: str) -> list[str]:
    """The per-slice columns a per-volume metric is rebuilt from (HD95 3-D is stored per slice since issue 27)."""
    return ["tp", "fp", "fn", "hd3d_pred_to_gt", "hd3d_gt_to_pred"] + (["hd95_3d"] if metric == "hd95" else [])


def _usable(models: Sequence[ModelCases], column: str, unit: str) -> tuple[list[ModelCases], list[dict[str, str]]]:
    """Models with all five folds, no duplicate slice, and the value column; the others with the reason."""
    keep, excluded = [], []
    for model in models:
        missing = sorted(set(range(N_FOLDS)) - set(model.folds))
        needed = _patient_columns(column) if unit == "patient" else [column]
        absent = [c for c in needed if c not in model.frame]
        duplicated = model.frame["id"][model.frame["id"].duplicated()].tolist()
        if missing:
            reason = f"missing fold(s) {', '.join(map(str, missing))} (folds 0-4 are needed)"
        elif duplicated:
            reason = f"slice id {duplicated[0]!r} appears more than once"
        elif absent:
            reason = f"its per-slice results lack {', '.join(absent)} (evaluated before that metric existed?)"
        else:
            keep.append(model)
            continue
        excluded.append({"model": model.name, "reason": reason})
    return keep, excluded


def _common_slices(models: list[ModelCases], reference: str | None) -> tuple[list[ModelCases], list[dict[str, str]]]:
    """Models whose slice set equals the reference's (else the most common set); the others named, with counts."""
    sets = {m.name: frozenset(m.frame["id"]) for m in models}
    if not sets:
        return [], []
    if reference in sets:
        target = sets[reference]
    else:
        tally: dict[frozenset, int] = {}
        for s in sets.values():
            tally[s] = tally.get(s, 0) + 1
        target = max(tally, key=lambda s: (tally[s], len(s)))
    keep, excluded = [], []
    for m in models:
        if sets[m.name] == target:
            keep.append(m)
        else:
            lacking, extra = len(target - sets[m.name]), len(sets[m.name] - target)
            excluded.append({"model": m.name, "reason": f"its slices differ from the others' ({lacking} missing, "
                             f"{extra} extra of {len(target)}): not paired on a subset"})
    return keep, excluded


# --- per-case values -------------------------------------------------------------------------------

def patient_table(frame: pd.DataFrame, dataset: str, data_root: str | Path | None = None) -> pd.DataFrame:
    """Per-patient 3-D metrics of one model: volumes from the slice ids, a patient's values the mean of its volumes."""
    from ..datasets import patient_map

    pmap = patient_map(dataset, data_root)
    volumes = volume_metrics(frame.assign(volume=[pmap.volume_of(i) for i in frame["id"]]))
    volumes["patient"] = [pmap.patient_of_volume(v) for v in volumes["volume"]]
    return volumes.groupby("patient", sort=True)[[m for m in PATIENT_METRICS if m in volumes]].mean()


def _case_matrix(models: list[ModelCases], column: str, unit: str, dataset: str,
                 data_root: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """Case ids (sorted) and the (n_cases, n_models) value matrix, as fractions / px."""
    if unit == "patient":
        series = [patient_table(m.frame, dataset, data_root)[column] for m in models]
    else:
        series = [m.frame.set_index("id")[column].astype(float) for m in models]
    ids = sorted(series[0].index)
    return ids, np.column_stack([s.reindex(ids).to_numpy(dtype=np.float64) for s in series])


def _clusters(ids: Sequence[str], unit: str, dataset: str,
              data_root: str | Path | None = None) -> tuple[list[str], str]:
    """What the bootstrap resamples: patients where slices carry one, else the cases themselves."""
    from ..datasets import patient_map

    pmap = patient_map(dataset, data_root)
    if unit == "patient" or pmap.unit == "slice":
        return list(ids), "patients" if unit == "patient" else "slices"
    return [pmap.patient_of(i) for i in ids], "patients"


def choose_reference(names: Sequence[str], paper_names: dict[str, str | None], requested: str | None) -> str | None:
    """The requested model; by default `miniseg`, else a model of the paper's MiniSeg row, else the first by name."""
    if requested is not None:
        return requested if requested in names else None
    if DEFAULT_REFERENCE in names:
        return DEFAULT_REFERENCE
    minisegs = sorted(n for n in names if paper_names.get(n) == "MiniSeg")
    return minisegs[0] if minisegs else (sorted(names)[0] if names else None)


# --- the comparison ----------------------------------------------------------------------------------

def _num(value: float) -> float | None:
    """A finite float, else None (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _model_summaries(names: list[str], matrix: np.ndarray, resampler: stats.Resampler, scale: float,
                     higher: bool) -> dict[str, dict[str, Any]]:
    """Per model: mean and bootstrap CI, number of defined cases, mean rank over complete cases."""
    complete = ~np.isnan(matrix).any(axis=1)
    ranks = stats.mean_ranks(matrix[complete], higher) if complete.any() else np.full(len(names), np.nan)
    out = {}
    for j, name in enumerate(names):
        mean, (low, high) = stats.mean_ci(matrix[:, j], resampler)
        out[name] = {"mean": _num(scale * mean), "ci95": [_num(scale * low), _num(scale * high)],
                     "n": int((~np.isnan(matrix[:, j])).sum()), "mean_rank": _num(ranks[j])}
    return out


def _paired(names: list[str], matrix: np.ndarray, reference: str, resampler: stats.Resampler, scale: float,
            higher: bool) -> dict[str, dict[str, Any]]:
    """Each model against the reference: Wilcoxon p, Holm-adjusted p, median paired difference with its CI."""
    ref = names.index(reference)
    others = [j for j in range(len(names)) if j != ref]
    raw = [stats.wilcoxon_p(matrix[:, j], matrix[:, ref]) for j in others]
    adjusted = stats.holm(raw)
    out = {}
    for j, p, p_holm in zip(others, raw, adjusted):
        median, (low, high) = stats.median_difference(matrix[:, j], matrix[:, ref], resampler)
        better = median > 0 if higher else median < 0
        significant = bool(p_holm < stats.ALPHA) if math.isfinite(p_holm) else False
        out[names[j]] = {
            "p_wilcoxon": _num(p), "p_holm": _num(p_holm), "significant": significant,
            "direction": ("better" if better else "worse") if significant and median != 0 else None,
            "median_diff": _num(scale * median), "median_diff_ci95": [_num(scale * low), _num(scale * high)],
            "n_pairs": int((~np.isnan(matrix[:, j] - matrix[:, ref])).sum()),
        }
    return out


def _all_models(names: list[str], matrix: np.ndarray, higher: bool) -> tuple[dict[str, Any], np.ndarray | None]:
    """Friedman over the cases every model has a value for, Nemenyi post-hoc p-values and the critical difference."""
    complete = ~np.isnan(matrix).any(axis=1)
    out: dict[str, Any] = {"n_cases_all_models": int(complete.sum())}
    if len(names) < 3 or complete.sum() < 2:
        out.update({"friedman_p": None, "friedman_statistic": None, "posthoc": None,
                    "note": "the Friedman test needs at least 3 models and 2 cases that all of them have"})
        return out, None
    statistic, p = stats.friedman(matrix[complete])
    nemenyi = stats.nemenyi(matrix[complete])
    cd = stats.critical_difference(len(names), int(complete.sum()))
    out.update({
        "friedman_statistic": _num(statistic), "friedman_p": _num(p),
        "posthoc": {"test": "Nemenyi (Demšar 2006), scikit-posthocs", "critical_difference": cd,
                    "p": {a: {b: _num(nemenyi[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)}},
    })
    return out, nemenyi


def compare(
    results_dir: str | Path,
    dataset: str,
    *,
    split: str = "paper",
    reference: str | None = None,
    metric: str = "dsc",
    policy: str = "paper",
    unit: str = "slice",
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = stats.SEED,
    data_root: str | Path | None = None,
) -> Comparison:
    """Compare every complete model on a dataset; problems with the data are reported in the result, not raised.

    `data_root` finds a dataset of your own (its patients come from its dataset.json)."""
    from ..datasets import get_spec

    dataset = get_spec(dataset, data_root).name
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(UNITS)}")
    policy = "strict" if unit == "patient" else policy
    column = _value_column(metric, policy, unit)
    if unit == "patient" and _no_volumes(dataset, data_root):
        raise ValueError(f"{dataset}: slice ids carry no volume, so there are no per-patient metrics")
    found = load_cases(results_dir, dataset, split, data_root)
    usable, excluded = _usable(found, column, unit)
    paper_names = {m.name: m.paper_name for m in found}
    ref = choose_reference([m.name for m in usable], paper_names, reference)
    usable, mismatched = _common_slices(usable, ref)
    excluded += mismatched
    names = [m.name for m in usable]
    ref = choose_reference(names, paper_names, reference)
    higher = metric not in LOWER_IS_BETTER
    result: dict[str, Any] = {
        "dataset": dataset, "split": split, "unit": unit, "metric": metric, "policy": policy,
        "higher_is_better": higher, "reference": ref, "models_found": [m.name for m in found],
        "models": {}, "excluded": excluded, "alpha": stats.ALPHA, "n_resamples": n_resamples, "seed": seed,
        "warnings": [f"{e['model']}: left out: {e['reason']}" for e in excluded],
    }
    if reference is not None and ref is None:
        result["warnings"].append(f"reference {reference!r} has no complete results here; choose --reference from: "
                                  f"{', '.join(names) or 'none'}")
    if not names:
        result["message"] = f"{dataset}: no model has complete per-slice results (all {N_FOLDS} folds)"
        return Comparison(result)
    ids, matrix = _case_matrix(usable, column, unit, dataset, data_root)
    clusters, resampled = _clusters(ids, unit, dataset, data_root)
    resampler = stats.Resampler.draw(clusters, n_resamples, seed)
    scale = percent_scale(metric)
    result.update({"n_cases": len(ids), "n_clusters": resampler.n_clusters, "resampled": resampled,
                   "n_undefined": {n: int(np.isnan(matrix[:, j]).sum()) for j, n in enumerate(names)}})
    result["models"] = _model_summaries(names, matrix, resampler, scale, higher)
    if len(names) < 2:
        result["message"] = (f"{dataset}: only {len(names)} complete model ({names[0]}); paired tests and ranks "
                             "need at least two")
        return Comparison(result, names)
    if ref is not None:
        for name, values in _paired(names, matrix, ref, resampler, scale, higher).items():
            result["models"][name].update(values)
    together, nemenyi = _all_models(names, matrix, higher)
    result.update(together)
    stability = stats.rank_stability(matrix, resampler, higher)
    full_ranks = stats.leaderboard_ranks(np.array([stats.nanmean(c) for c in matrix.T]), higher)
    for j, name in enumerate(names):
        result["models"][name]["rank"] = _num(full_ranks[j])
        result["models"][name]["rank_distribution"] = {str(r): f for r, f in stability.rank_distribution(j).items()}
    taus = stability.tau[~np.isnan(stability.tau)]
    result["rank_tau_median"] = _num(float(np.median(taus))) if len(taus) else None
    result["rank_tau_ci95"] = [_num(v) for v in stats.percentile_interval(stability.tau)]
    return Comparison(result, names, stability, nemenyi)


def _no_volumes(dataset: str, data_root: str | Path | None = None) -> bool:
    from ..datasets import patient_map

    return patient_map(dataset, data_root).volume_regex is None
