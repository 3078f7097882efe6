"""The report's statistics: Table 5's 95% CIs, the significance column, and what the CD and rank plots draw.

Per dataset with per-slice results: `compare` on DSC (paper policy, slices, bootstrap over
patients) against the reference (miniseg, else a model of the paper's MiniSeg row), and for
every entry a 95% bootstrap CI of each Table 5 value: the paper's fold-averaged mean with the
patients (or slices) resampled within each fold, 2,000 seeded resamples.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation import PAPER_METRICS, percent_scale, stats
from ..evaluation.comparison import Comparison, ModelCases, compare, load_cases
from ..evaluation.metrics import miou_of_sums


@dataclass(frozen=True)
class DatasetStats:
    """One dataset's statistics for the report."""

    dataset: str  # the report's dataset key ('CT100', 'P20-grouped')
    comparison: Comparison
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # entry -> metric -> CI

    @property
    def n_complete(self) -> int:
        return len(self.comparison.models)

    def versus_reference(self, label: str) -> dict[str, Any] | None:
        """The entry's paired result against the reference ({'reference': True} for the reference itself)."""
        result = self.comparison.result
        if label == result.get("reference"):
            return {"reference": True}
        model = result["models"].get(label)
        return model if model and "p_holm" in model else None


def _miou_draws(frame, resampler: stats.Resampler, rows: np.ndarray) -> np.ndarray:
    """Resampled pooled mIoU of a fold (percent) from its summed confusion counts."""
    sums = resampler.sums(frame[["tp", "fp", "fn", "tn"]].to_numpy(np.float64)[rows])
    return 100.0 * miou_of_sums(*sums.T)


def entry_intervals(model: ModelCases, clusters_of, n_resamples: int = stats.N_RESAMPLES) -> dict[str, tuple]:
    """95% CIs of an entry's Table 5 values (paper policy, fold-averaged means) from its per-slice rows."""
    frame = model.frame.reset_index(drop=True)
    clusters = [clusters_of(i) for i in frame["id"]]
    out = {}
    for metric in PAPER_METRICS:
        if metric == "miou":
            if not {"tp", "fp", "fn", "tn"} <= set(frame):  # per-slice rows without confusion counts
                continue
            draws = stats.fold_mean_draws(None, frame["fold"], clusters, n_resamples,
                                          statistic=lambda r, rows: _miou_draws(frame, r, rows))
        elif f"paper_{metric}" in frame:
            values = frame[f"paper_{metric}"].to_numpy(np.float64)
            draws = percent_scale(metric) * stats.fold_mean_draws(values, frame["fold"], clusters, n_resamples)
        else:
            continue
        out[metric] = stats.percentile_interval(draws)
    return out


def dataset_stats(results_dir: str | Path, dataset_key: str,
                  data_root: str | Path | None = None) -> DatasetStats | None:
    """Statistics of one dataset key, or None where no entry has per-slice results (or a dataset of your own
    is not found under `data_root`: its patients are in its dataset.json)."""
    from ..datasets import get_spec, patient_map
    from ..records import parse_results_key

    name, split = parse_results_key(dataset_key)
    try:
        name = get_spec(name, data_root).name
    except KeyError:
        return None
    cases = load_cases(results_dir, name, split, data_root)
    if not cases:
        return None
    pmap = patient_map(name, data_root)
    intervals = {c.name: entry_intervals(c, pmap.patient_of) for c in cases}  # names = the report's labels
    return DatasetStats(dataset_key, compare(results_dir, name, split=split, data_root=data_root), intervals)


def all_stats(results_dir: str | Path, dataset_keys: list[str],
              data_root: str | Path | None = None) -> dict[str, DatasetStats]:
    """Statistics of every dataset key that has per-slice results."""
    found = {key: dataset_stats(results_dir, key, data_root) for key in dataset_keys}
    return {key: value for key, value in found.items() if value is not None}
