"""Evaluation: per-slice confusion statistics and the paper's / strict metrics, and scoring of prediction maps
or per-fold weights.

The constants below are what the CLI's options offer; they live here, apart from the modules that
import scipy.stats and pandas, so that building the parser stays fast.
"""

#: Metric semantics: the authors' evaluation code ("paper") and the conventional definitions ("strict").
POLICIES = ("paper", "strict")
#: What a comparison resamples and ranks: slices, or patients (per-volume 3-D metrics).
UNITS = ("slice", "patient")
#: Bootstrap resamples and seed of every confidence interval.
N_RESAMPLES = 2000
SEED = 0
