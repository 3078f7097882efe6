"""Evaluation: per-slice confusion statistics and the paper's / strict metrics, and scoring of prediction maps
or per-fold weights.

The constants below are what the CLI's options offer; they live here, apart from the modules that
import scipy.stats and pandas, so that building the parser stays fast.
"""

#: Metric semantics: the authors' evaluation code ("paper") and the conventional definitions ("strict").
POLICIES = ("paper", "strict")
#: The paper's Table 5 metrics in its column order: the paper policy's fold values (ratios in %, HD in px).
PAPER_METRICS = ("miou", "sen", "spc", "dsc", "hd")
#: Ratio metrics: fractions per slice, percent in every summary (a per-volume `<name>_3d` as its 2-D name).
PERCENT_METRICS = frozenset({"miou", "dsc", "dsc_pooled", "sen", "spc", "iou", "precision", "nsd"})
#: Distances, where lower is better; every other metric is better higher.
LOWER_IS_BETTER = frozenset({"hd", "hd95"})
#: Default tolerance tau of the normalised surface Dice, in pixels.
NSD_TOLERANCE_PX = 2.0
#: What a comparison resamples and ranks: slices, or patients (per-volume 3-D metrics).
UNITS = ("slice", "patient")
#: Bootstrap resamples and seed of every confidence interval.
N_RESAMPLES = 2000
SEED = 0


def percent_scale(metric: str) -> float:
    """100 for a ratio metric (shown in percent), 1 for a distance; `dsc_3d` scales as `dsc`."""
    return 100.0 if metric.removesuffix("_3d") in PERCENT_METRICS else 1.0
