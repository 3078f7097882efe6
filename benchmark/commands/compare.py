"""Is a difference real? Compare every model with all 5 folds on a dataset, from its per-slice results.

Each model's out-of-fold predictions are pooled over the five test folds and paired with the
other models' by slice id (runs/<dataset>/<model>/fold<k>/per_slice.csv and evaluations
eval/<dataset>/<label>.csv of --results). A model with a missing fold or a different slice
set is named and left out, never paired on a subset.

Reported (JSON keys in brackets):
  each model     mean with a 95% bootstrap CI [mean, ci95]: 2,000 seeded resamples of the
                 patients where slice ids carry one (P9, P20, P1110, synthetic), else of slices
  vs reference   Wilcoxon signed-rank on the paired values [p_wilcoxon], Holm-corrected across
                 the models [p_holm, significant], median paired difference (model - reference)
                 with its bootstrap CI [median_diff, median_diff_ci95]
  all models     Friedman test [friedman_p] and the Nemenyi post-hoc test with its critical
                 difference (Demšar 2006) [posthoc]; mean rank per case, 1 = best [mean_rank]
  ranking        each model's rank over the resamples [rank_distribution] and Kendall's tau
                 between the full-data ranking and the resampled ones [rank_tau_median]

--unit patient runs the same on per-patient 3-D metrics (dsc, sen, hd, hd95 over each volume's
stacked test slices; strict policy; built-in datasets). Ratios print in percent, HD in pixels.
A dataset of your own is found under --data-root, and its patients in its dataset.json.

EXAMPLES
  run_benchmark.py compare --dataset CT100
  run_benchmark.py compare --results demo-output/results --dataset synthetic --json
  run_benchmark.py compare --dataset P20 --metric nsd --policy strict --reference unet
  run_benchmark.py compare --dataset P20 --unit patient --metric hd
  run_benchmark.py compare --dataset MyHospital --data-root /data/ct   # a dataset of your own
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..cli import add_data_root, add_json, add_results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..evaluation import N_RESAMPLES, POLICIES, SEED, UNITS
    from .folds import add_split

    add_results(parser)
    parser.add_argument("--dataset", required=True,
                        help="CT100, P9, P20, P1110, synthetic, or a dataset of your own under --data-root")
    add_data_root(parser)
    add_split(parser)
    parser.add_argument("--reference", default=None,
                        help="model the others are tested against (default: miniseg; else a model of the paper's "
                        "MiniSeg row, such as its released maps; else the first by name)")
    parser.add_argument("--metric", default="dsc",
                        help="dsc (default), sen, spc, hd; strict only: hd95, iou, precision, nsd; "
                        "--unit patient: dsc, sen, hd, hd95")
    parser.add_argument("--policy", choices=POLICIES, default="paper", help="metric semantics (default: paper)")
    parser.add_argument("--unit", choices=UNITS, default="slice",
                        help="slice (default) or patient (per-volume 3-D metrics, strict policy)")
    parser.add_argument("--resamples", type=int, default=N_RESAMPLES,
                        help=f"bootstrap resamples (default {N_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed (default {SEED})")
    add_json(parser)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _fmt_p(value: float | None) -> str:
    return "—" if value is None else (f"{value:.2e}" if value < 1e-3 else f"{value:.4f}")


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One printed row per model, best mean first."""
    models = result["models"]
    order = sorted(models, key=lambda n: (models[n].get("rank") or 0, n))
    rows = []
    for name in order:
        m = models[name]
        low, high = m["ci95"]
        if name == result["reference"]:
            versus = "reference"
        elif "p_holm" in m:
            lo_d, hi_d = m["median_diff_ci95"]
            mark = {"better": "better", "worse": "worse"}.get(m.get("direction") or "", "n.s.")
            versus = f"{mark} (p_holm {_fmt_p(m['p_holm'])}; median diff {_fmt(m['median_diff'])} " \
                     f"[{_fmt(lo_d)}, {_fmt(hi_d)}])"
        else:
            versus = "—"
        rows.append({"model": name, "mean [95% CI]": f"{_fmt(m['mean'])} [{_fmt(low)}, {_fmt(high)}]",
                     "n": m["n"], "mean rank": _fmt(m.get("mean_rank")), "rank": _fmt(m.get("rank"), 0),
                     "vs reference": versus})
    return rows


def _print_text(result: dict[str, Any]) -> None:
    from .._format import print_table
    from ..datasets.specs import builtin_name

    units = "%" if result["metric"] in ("dsc", "sen", "spc", "iou", "precision", "nsd") else "px"
    split = f"{result['split']} split" if builtin_name(result["dataset"]) else "its own split"
    print(f"{result['dataset']} ({split}) · {result['metric']} ({units}) · policy {result['policy']} "
          f"· unit {result['unit']} · {result.get('n_cases', 0)} cases, bootstrap over "
          f"{result.get('n_clusters', 0)} {result.get('resampled', 'cases')} x {result['n_resamples']}")
    if result["models"]:
        print_table(_rows(result), ["model", "mean [95% CI]", "n", "mean rank", "rank", "vs reference"])
    if result.get("friedman_p") is not None:
        cd = result["posthoc"]["critical_difference"]
        print(f"Friedman p = {_fmt_p(result['friedman_p'])} over {result['n_cases_all_models']} cases; "
              f"Nemenyi critical difference of mean ranks {cd:.3f}")
    if result.get("rank_tau_median") is not None:
        low, high = result["rank_tau_ci95"]
        print(f"ranking stability: Kendall's tau vs the full-data ranking, median {_fmt(result['rank_tau_median'])} "
              f"[{_fmt(low)}, {_fmt(high)}] over the resamples")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.comparison import compare

    if not args.results.is_dir():
        raise FileNotFoundError(f"results folder not found: {args.results}")
    result = compare(args.results, args.dataset, split=args.split, reference=args.reference, metric=args.metric,
                     policy=args.policy, unit=args.unit, n_resamples=args.resamples, seed=args.seed,
                     data_root=args.data_root).result
    for line in result["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_text(result)
    if "message" in result:
        print(f"compare: {result['message']}", file=sys.stderr)
        return 1
    if args.reference is not None and result["reference"] is None:
        return 1
    return 0
