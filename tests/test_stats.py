"""Statistics: known answers (scipy's documented Wilcoxon example, hand-computed Friedman/Holm/ranks, Demšar's
critical differences), bootstrap coverage, and `compare` on fabricated per-slice results (bad input included)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.evaluation import stats
from benchmark.evaluation.comparison import compare


def test_wilcoxon_matches_scipys_documented_example():
    # scipy.stats.wilcoxon docs: these 15 differences give statistic 24, two-sided p = 0.041259765625 (exact)
    d = np.array([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75], dtype=float)
    assert stats.wilcoxon_p(d, np.zeros_like(d)) == pytest.approx(0.041259765625)
    assert stats.wilcoxon_p(d, d) == 1.0  # no difference at all


def test_friedman_hand_computed():
    # 4 cases, 3 models always ranked 1, 2, 3: chi2 = 12/(N k (k+1)) * sum R_j^2 - 3N(k+1) = 56 - 48 = 8, p = e^-4
    matrix = np.tile([3.0, 2.0, 1.0], (4, 1))
    statistic, p = stats.friedman(matrix)
    assert statistic == pytest.approx(8.0) and p == pytest.approx(math.exp(-4))
    assert stats.mean_ranks(matrix, higher_is_better=True).tolist() == [1.0, 2.0, 3.0]
    assert stats.mean_ranks(matrix, higher_is_better=False).tolist() == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="at least 3"):
        stats.friedman(matrix[:, :2])


def test_holm_hand_computed():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(stats.holm([0.01, math.nan])[1]) and stats.holm([0.01, math.nan])[0] == pytest.approx(0.01)


@pytest.mark.parametrize("k, q", [(3, 2.343), (4, 2.569), (5, 2.728), (10, 3.164)])
def test_critical_difference_matches_demsar_table(k: int, q: float):
    # Demšar (2006), Table 5(a): q_0.05 of the Nemenyi test; CD = q sqrt(k(k+1)/(6N))
    assert stats.critical_difference(k, 30) == pytest.approx(q * math.sqrt(k * (k + 1) / 180), abs=2e-3)


def test_nemenyi_is_symmetric_and_separates_consistent_rankings():
    matrix = np.tile([3.0, 2.0, 1.0], (4, 1))
    p = stats.nemenyi(matrix)
    assert np.allclose(p, p.T) and np.allclose(np.diag(p), 1.0)
    cd = stats.critical_difference(3, 4)  # 2.343 sqrt(12/24) = 1.657
    assert 1.0 < cd < 2.0
    assert p[0, 2] < 0.05 < p[0, 1]  # mean ranks 1 vs 3 differ by 2 > CD: significant; 1 vs 2 by 1 < CD: not


def test_bootstrap_ci_covers_the_true_mean_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    draws, covered = 300, 0
    for i in range(draws):
        sample = rng.normal(10.0, 2.0, size=40)
        resampler = stats.Resampler.draw([str(j) for j in range(40)], 2000, seed=i)
        _, (low, high) = stats.mean_ci(sample, resampler)
        covered += low <= 10.0 <= high
    # percentile bootstrap at n = 40 undercovers slightly (~0.93); binomial sd over 300 draws ~0.013
    assert 0.90 <= covered / draws <= 0.98


def test_cluster_bootstrap_keeps_patients_together_and_is_seeded():
    clusters = ["a"] * 5 + ["b"] * 5
    values = np.array([1.0] * 5 + [3.0] * 5)
    r = stats.Resampler.draw(clusters, 500, seed=3)
    means = r.means(values)
    assert set(np.round(means, 9)) <= {1.0, 2.0, 3.0}  # whole patients only: 1, 2 or 3, never 1.4
    assert np.array_equal(r.counts, stats.Resampler.draw(clusters, 500, seed=3).counts)
    diff = values - 2.0 + np.arange(10) / 100  # distinct values, so the weighted median is checked exactly
    members = [np.flatnonzero(r.cluster_index == c) for c in range(r.n_clusters)]
    brute = [np.median(diff[np.concatenate([np.tile(members[c], n) for c, n in enumerate(r.counts[b]) if n])])
             for b in range(50)]
    assert np.allclose(r.medians(diff)[:50], brute)


def test_rank_stability_of_a_clear_ordering():
    rng = np.random.default_rng(0)
    matrix = np.column_stack([rng.normal(m, 0.1, 200) for m in (0.9, 0.5, 0.1)])
    result = stats.rank_stability(matrix, stats.Resampler.draw([str(i) for i in range(200)], 300), True)
    assert np.all(result.tau == 1.0) and result.rank_distribution(0) == {1: 1.0}


# --- compare on fabricated per-slice results ------------------------------------------------------

IDS = [f"synth_{p:02d}_{z:04d}" for p in range(10) for z in range(4)]


def _write_run(results: Path, model: str, dsc: np.ndarray, folds=range(5), ids=IDS) -> None:
    """Per-slice CSVs and done records of a model on synthetic, 8 slices (2 patients) per fold."""
    for k in folds:
        part = slice(8 * k, 8 * k + 8)
        fold_dir = results / "runs" / "synthetic" / model / f"fold{k}"
        fold_dir.mkdir(parents=True)
        pd.DataFrame({"id": ids[part], "tp": 10, "fp": 1, "fn": 1, "tn": 100, "paper_dsc": dsc[part],
                      "strict_dsc": dsc[part]}).to_csv(fold_dir / "per_slice.csv", index=False)
        (fold_dir / "record.json").write_text(json.dumps({"schema": "miniseg-bench/run/1", "status": "done"}))


@pytest.fixture()
def fabricated(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.6, len(IDS))
    _write_run(tmp_path, "miniseg", base + 0.2)
    _write_run(tmp_path, "enet", base)
    _write_run(tmp_path, "espnet", base + rng.normal(0.2, 0.01, len(IDS)))
    _write_run(tmp_path, "unet", base, folds=range(3))  # missing folds 3 and 4
    other = list(IDS)
    other[0] = "synth_11_0000"
    _write_run(tmp_path, "segnet", base, ids=other)  # a different slice set
    return tmp_path


def test_compare_reports_every_key_and_leaves_bad_models_out(fabricated: Path):
    result = compare(fabricated, "synthetic", n_resamples=500).result
    assert sorted(result["models"]) == ["enet", "espnet", "miniseg"] and result["reference"] == "miniseg"
    left_out = {e["model"]: e["reason"] for e in result["excluded"]}
    assert "missing fold(s) 3, 4" in left_out["unet"] and "differ" in left_out["segnet"]
    assert result["resampled"] == "patients" and result["n_clusters"] == 10 and result["n_cases"] == 40
    enet = result["models"]["enet"]
    assert enet["median_diff"] == pytest.approx(-20.0) and enet["direction"] == "worse"
    assert enet["p_holm"] == pytest.approx(min(1.0, 2 * enet["p_wilcoxon"])) and enet["p_holm"] < 0.05
    assert result["models"]["miniseg"]["mean"] == pytest.approx(100 * (np.mean(
        pd.concat(pd.read_csv(p) for p in sorted(fabricated.glob("runs/synthetic/miniseg/fold*/per_slice.csv")))
        ["paper_dsc"])))
    low, high = result["models"]["miniseg"]["ci95"]
    assert low < result["models"]["miniseg"]["mean"] < high
    assert result["friedman_p"] < 0.05 and result["models"]["enet"]["mean_rank"] == 3.0
    assert result["rank_tau_median"] is not None and "critical_difference" in result["posthoc"]


def test_compare_cli_json_and_too_few_models(fabricated: Path, tmp_path: Path, capsys):
    assert main(["compare", "--results", str(fabricated), "--dataset", "synthetic", "--json", "--resamples", "200"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["friedman_p"] is not None and "unet: left out" in out.err
    lonely = tmp_path / "lonely"
    _write_run(lonely, "miniseg", np.full(len(IDS), 0.5))
    assert main(["compare", "--results", str(lonely), "--dataset", "synthetic"]) == 1
    assert "only 1 complete model" in capsys.readouterr().err  # a message, not a traceback
    assert main(["compare", "--results", str(fabricated), "--dataset", "synthetic", "--metric", "nsd"]) == 1
    assert "only under --policy strict" in capsys.readouterr().err


# --- per-patient (3-D) comparison -----------------------------------------------------------------

def _write_volume_run(results: Path, model: str, rng: np.random.Generator, with_hd95: bool = True) -> pd.DataFrame:
    """Per-slice CSVs with the per-volume columns (counts, 3-D distances, HD95 3-D) of a model on synthetic."""
    rows = []
    for p in range(10):
        hd95 = rng.uniform(2.0, 20.0)
        for z in range(4):
            tp, fp, fn = rng.integers(5, 50, 3)
            rows.append({"id": f"synth_{p:02d}_{z:04d}", "tp": tp, "fp": fp, "fn": fn, "tn": 1000,
                         "paper_dsc": 0.5, "strict_dsc": 0.5, "hd3d_pred_to_gt": rng.uniform(1, 9),
                         "hd3d_gt_to_pred": rng.uniform(1, 9), "hd95_3d": hd95})
    frame = pd.DataFrame(rows if with_hd95 else [{k: v for k, v in r.items() if k != "hd95_3d"} for r in rows])
    for k in range(5):
        fold_dir = results / "runs" / "synthetic" / model / f"fold{k}"
        fold_dir.mkdir(parents=True)
        frame.iloc[8 * k: 8 * k + 8].to_csv(fold_dir / "per_slice.csv", index=False)
        (fold_dir / "record.json").write_text(json.dumps({"schema": "miniseg-bench/run/1", "status": "done"}))
    return frame


def test_compare_by_patient_rebuilds_each_volume_from_its_slices(tmp_path: Path):
    rng = np.random.default_rng(1)
    frames = {m: _write_volume_run(tmp_path, m, rng) for m in ("miniseg", "enet", "cgnet")}
    _write_volume_run(tmp_path, "old-run", rng, with_hd95=False)  # scored before HD95 3-D existed
    by_volume = {m: f.assign(volume=f["id"].str[:8]).groupby("volume") for m, f in frames.items()}
    for metric, expected in (
        ("hd95", {m: g["hd95_3d"].first().mean() for m, g in by_volume.items()}),
        ("hd", {m: g[["hd3d_pred_to_gt", "hd3d_gt_to_pred"]].max().max(axis=1).mean() for m, g in by_volume.items()}),
        ("dsc", {m: (2 * g.tp.sum() / (2 * g.tp.sum() + g.fp.sum() + g.fn.sum())).mean() * 100
                 for m, g in by_volume.items()}),
    ):
        result = compare(tmp_path, "synthetic", metric=metric, unit="patient", n_resamples=200).result
        assert result["n_cases"] == 10 and result["resampled"] == "patients"
        assert {m: result["models"][m]["mean"] for m in expected} == pytest.approx(expected), metric
        left_out = {e["model"]: e["reason"] for e in result["excluded"]}
        if metric == "hd95":  # a run without the column is named, not scored as if it had none
            assert "hd95_3d" in left_out["old-run"] and "old-run" not in result["models"]
        else:
            assert "old-run" in result["models"] and not left_out
