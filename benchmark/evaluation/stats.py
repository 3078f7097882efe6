"""Is a difference real? Statistics over per-case results of several models on the same cases.

Glue around the well-kept libraries: scipy.stats (Wilcoxon signed-rank, Friedman, Kendall's
tau, the studentized range), statsmodels (Holm correction) and scikit-posthocs (Nemenyi
post-hoc test). What is ours is the case handling:

- A *case* is a slice (or a patient, for per-patient metrics); a *cluster* is what the
  bootstrap resamples: the patient of a slice where slice ids carry one, else the slice.
  Resampling patients keeps the slices of one patient together, since they are not independent.
- Bootstrap: percentile intervals from `n_resamples` resamples with replacement of the
  clusters, drawn from one seeded generator, so results repeat exactly.
- Cases where a model's value is undefined (NaN: the strict policy) are left out of that
  model's mean, of the pairs that involve it and of the all-model tests; the counts say so.
- Ranks: 1 is best (higher DSC, lower HD). Mean ranks are per case, averaged (Demšar 2006);
  the ranking whose stability is bootstrapped is the leaderboard's: models ordered by mean.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from . import N_RESAMPLES, SEED  # noqa: F401 - part of this module's interface

ALPHA = 0.05


@dataclass(frozen=True)
class Resampler:
    """Cluster bootstrap draws: per resample, how many times each cluster is drawn (seeded)."""

    cluster_index: np.ndarray  # (n_cases,) int: each case's cluster, 0..n_clusters-1
    counts: np.ndarray  # (n_resamples, n_clusters) int: draws of each cluster in each resample

    @classmethod
    def draw(cls, clusters: Sequence[str], n_resamples: int = N_RESAMPLES, seed: int = SEED) -> "Resampler":
        """Resample the distinct clusters with replacement, `n_resamples` times, from `default_rng(seed)`."""
        if n_resamples < 1:
            raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
        names, index = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
        if len(names) == 0:
            raise ValueError("no cases to resample")
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(names), size=(n_resamples, len(names)))
        counts = np.zeros((n_resamples, len(names)), dtype=np.int64)
        np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1)
        return cls(index.astype(np.int64), counts)

    @property
    def n_clusters(self) -> int:
        return self.counts.shape[1]

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Resampled sums (n_resamples, k) of each column of `values` (n_cases, k); NaN counts as 0."""
        values = np.asarray(values, dtype=np.float64)
        per_cluster = np.zeros((self.n_clusters, values.shape[1]))
        np.add.at(per_cluster, self.cluster_index, np.nan_to_num(values, nan=0.0))
        return self.counts @ per_cluster

    def means(self, values: np.ndarray) -> np.ndarray:
        """Resampled means of each column of `values` (n_cases,) or (n_cases, k), NaN cases left out."""
        values = np.asarray(values, dtype=np.float64)
        flat = values.ndim == 1
        values = values[:, None] if flat else values
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.sums(values) / self.sums((~np.isnan(values)).astype(np.float64))
        return out[:, 0] if flat else out

    def medians(self, values: np.ndarray) -> np.ndarray:
        """Resampled medians of `values` (n_cases,), NaN cases left out: weighted medians of the sorted values."""
        values = np.asarray(values, dtype=np.float64)
        keep = np.flatnonzero(~np.isnan(values))
        if not len(keep):
            return np.full(self.counts.shape[0], np.nan)
        order = keep[np.argsort(values[keep], kind="stable")]
        weights = self.counts[:, self.cluster_index[order]]  # (n_resamples, n_defined): copies of each case
        cumulative = np.cumsum(weights, axis=1)
        total = cumulative[:, -1]
        low = np.argmax(cumulative > ((total - 1) // 2)[:, None], axis=1)
        high = np.argmax(cumulative > (total // 2)[:, None], axis=1)
        out = (values[order][low] + values[order][high]) / 2.0
        return np.where(total > 0, out, np.nan)


def percentile_interval(draws: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    """The (alpha/2, 1 - alpha/2) percentiles of bootstrap draws, NaN draws left out."""
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        return math.nan, math.nan
    low, high = np.percentile(draws, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def nanmean(values: np.ndarray) -> float:
    """Mean without NaN; NaN (silently) when nothing is left."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else math.nan


def mean_ci(values: np.ndarray, resampler: Resampler, alpha: float = ALPHA) -> tuple[float, tuple[float, float]]:
    """The mean of the defined values and its cluster-bootstrap percentile interval."""
    return nanmean(values), percentile_interval(resampler.means(values), alpha)


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of paired values (NaN pairs dropped); 1.0 when every difference is 0."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff = diff[~np.isnan(diff)]
    if not len(diff):
        return math.nan
    if not np.any(diff):
        return 1.0
    return float(stats.wilcoxon(diff).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels' multipletests); NaN entries stay NaN and do not count."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), np.nan)
    present = ~np.isnan(p)
    if present.any():
        out[present] = multipletests(p[present], method="holm")[1]
    return [float(v) for v in out]


def median_difference(
    a: np.ndarray, b: np.ndarray, resampler: Resampler, alpha: float = ALPHA
) -> tuple[float, tuple[float, float]]:
    """Median of the paired differences a - b (NaN pairs dropped) and its cluster-bootstrap interval."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    defined = diff[~np.isnan(diff)]
    median = float(np.median(defined)) if len(defined) else math.nan
    return median, percentile_interval(resampler.medians(diff), alpha)


def case_ranks(matrix: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Per case (row), each model's rank, 1 = best, ties share their average rank."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return stats.rankdata(-matrix if higher_is_better else matrix, axis=1)


def mean_ranks(matrix: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Each model's (column's) rank averaged over the cases (rows): Demšar's statistic."""
    return case_ranks(matrix, higher_is_better).mean(axis=0)


def friedman(matrix: np.ndarray) -> tuple[float, float]:
    """Friedman's chi-square and p over complete rows (cases) of k >= 3 models (columns); scipy's test."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape[1] < 3:
        raise ValueError(f"the Friedman test needs at least 3 models, got {matrix.shape[1]}")
    result = stats.friedmanchisquare(*matrix.T)
    return float(result.statistic), float(result.pvalue)


def nemenyi(matrix: np.ndarray) -> np.ndarray:
    """Nemenyi post-hoc p-values (k x k) after Friedman, from scikit-posthocs (symmetric, 1 on the diagonal)."""
    import scikit_posthocs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return scikit_posthocs.posthoc_nemenyi_friedman(np.asarray(matrix, dtype=np.float64)).to_numpy()


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of mean ranks: q_alpha sqrt(k(k+1) / 6N), q from the studentized range / sqrt 2."""
    if k < 2 or n < 1:
        raise ValueError(f"a critical difference needs k >= 2 models and n >= 1 cases, got k={k}, n={n}")
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6.0 * n)))


def leaderboard_ranks(means: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Ranks of models by their mean, 1 = best, tied models sharing the better rank (1, 1, 3): a results table's."""
    means = np.asarray(means, dtype=np.float64)
    return stats.rankdata(-means if higher_is_better else means, method="min", axis=-1)


@dataclass(frozen=True)
class RankStability:
    """The leaderboard ranking under resampling: rank draws per model and Kendall's tau against the full data."""

    ranks: np.ndarray  # (n_resamples, k) rank of each model in each resample
    tau: np.ndarray  # (n_resamples,) Kendall's tau between the full-data and the resampled means

    def rank_distribution(self, model: int) -> dict[int, float]:
        """Fraction of resamples that put the model at each rank."""
        values, counts = np.unique(self.ranks[:, model].astype(int), return_counts=True)
        return {int(v): float(c) / len(self.ranks) for v, c in zip(values, counts)}


def rank_stability(matrix: np.ndarray, resampler: Resampler, higher_is_better: bool) -> RankStability:
    """Bootstrap the ranking by mean over cases (columns = models); tau of each resample against the full data."""
    full = np.array([nanmean(col) for col in np.asarray(matrix, dtype=np.float64).T])
    ranks = leaderboard_ranks(resampler.means(matrix), higher_is_better)
    full_ranks = leaderboard_ranks(full, higher_is_better)
    patterns, which = np.unique(ranks, axis=0, return_inverse=True)  # few distinct rankings: one tau each
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a ranking of all ties has no tau (NaN)
        taus = np.array([stats.kendalltau(full_ranks, row).statistic for row in patterns])
    return RankStability(ranks, taus[np.ravel(which)])


def fold_mean_draws(
    values: np.ndarray, folds: Sequence[int], clusters: Sequence[str], n_resamples: int = N_RESAMPLES, seed: int = SEED,
    statistic=None,
) -> np.ndarray:
    """Bootstrap draws of the mean over folds of a per-fold statistic, resampling clusters within each fold.

    This is the paper's fold-averaged mean (each fold's mean, then their unweighted mean) under
    a bootstrap stratified by fold. `statistic(resampler, rows)` gives a fold's draws; default: the
    resampled mean of `values` (n_cases,) over the fold's rows.
    """
    folds, clusters = np.asarray(folds), np.asarray(clusters, dtype=str)
    draws = []
    for k, fold in enumerate(sorted(set(folds.tolist()))):
        rows = np.flatnonzero(folds == fold)
        resampler = Resampler.draw(clusters[rows], n_resamples, seed + k)
        draws.append(statistic(resampler, rows) if statistic else resampler.means(np.asarray(values)[rows]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.vstack(draws), axis=0)
