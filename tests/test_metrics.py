"""Metrics: hand-computed tiny cases, both policies, HD and HD95 against brute force and HD95 against MONAI,
fold and CV summaries."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from benchmark.evaluation import metrics


def _masks(shape: tuple[int, int], *pixel_lists: list[tuple[int, int]]) -> np.ndarray:
    """(N, H, W) bool stack with the listed (row, col) pixels set in each slice."""
    out = np.zeros((len(pixel_lists), *shape), dtype=bool)
    for i, pixels in enumerate(pixel_lists):
        for r, c in pixels:
            out[i, r, c] = True
    return out


def _brute_force_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of a 2-D mask with one of their 4 neighbours outside it or outside the image, pixel by pixel."""
    out = np.zeros_like(mask)
    rows, cols = mask.shape
    for r, c in np.argwhere(mask):
        neighbours = [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
        out[r, c] = any(not (0 <= y < rows and 0 <= x < cols) or not mask[y, x] for y, x in neighbours)
    return out


def _brute_force_hd(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(HD, HD95) from all pairwise distances, slowly: HD between the foreground pixels, HD95 between the
    boundary pixels (95th percentile of each direction, the larger of the two)."""
    d = cdist(np.argwhere(pred), np.argwhere(gt))
    edges = cdist(np.argwhere(_brute_force_boundary(pred)), np.argwhere(_brute_force_boundary(gt)))
    return (max(d.min(axis=1).max(), d.min(axis=0).max()),
            max(np.percentile(edges.min(axis=1), 95), np.percentile(edges.min(axis=0), 95)))


def test_counts_and_ratios_hand_computed():
    pred = _masks((4, 4), [(0, 0), (0, 1), (1, 1)])
    gt = _masks((4, 4), [(1, 1), (3, 3)])
    counts = metrics.confusion_counts(pred, gt)
    assert [int(x[0]) for x in counts] == [1, 2, 1, 12]
    tp, fp, fn, tn = counts
    assert metrics.dice(tp, fp, fn)[0] == pytest.approx(2 / 5)
    assert metrics.sensitivity(tp, fn)[0] == pytest.approx(1 / 2)
    assert metrics.specificity(tn, fp)[0] == pytest.approx(12 / 14)
    assert metrics.iou(tp, fp, fn)[0] == pytest.approx(1 / 4)
    assert metrics.precision(tp, fp)[0] == pytest.approx(1 / 3)


def test_hd_of_two_single_pixels_is_their_distance():
    pred = _masks((16, 16), [(2, 3)])
    gt = _masks((16, 16), [(5, 7)])
    hd, hd95 = metrics.hausdorff_px(pred, gt)
    assert hd[0] == pytest.approx(5.0) and hd95[0] == pytest.approx(5.0)


def test_hd95_ignores_one_outlier_that_sets_hd():
    gt = _masks((32, 32), [(0, c) for c in range(20)])
    pred = _masks((32, 32), [(0, c) for c in range(20)] + [(10, 0)])
    hd, hd95 = metrics.hausdorff_px(pred, gt)
    assert hd[0] == pytest.approx(10.0)
    assert hd95[0] == pytest.approx(0.0)


def test_hd_max_can_lie_inside_the_prediction():
    """A filled disc inside a ring: the disc's centre, not its border, is farthest from the ring."""
    yy, xx = np.mgrid[:41, :41]
    r = np.hypot(yy - 20, xx - 20)
    gt = ((r >= 15) & (r < 16))[None]
    pred = (r <= 5)[None]
    hd, hd95 = metrics.hausdorff_px(pred, gt)
    expected = _brute_force_hd(pred[0], gt[0])
    assert hd[0] == pytest.approx(expected[0]) and hd95[0] == pytest.approx(expected[1])


@pytest.mark.parametrize("seed", range(6))
def test_hd_matches_brute_force_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    pred = rng.random((3, 24, 30)) < rng.uniform(0.01, 0.3)
    gt = rng.random((3, 24, 30)) < rng.uniform(0.01, 0.3)
    pred[:, 0, 0] = gt[:, -1, -1] = True  # non-empty and touching the image border
    hd, hd95 = metrics.hausdorff_px(pred, gt)
    for i in range(3):
        assert (hd[i], hd95[i]) == pytest.approx(_brute_force_hd(pred[i], gt[i]))


def test_hd95_is_taken_over_boundaries_not_every_pixel():
    """Two 20x20 squares one column apart: half of each boundary is 1 px from the other boundary, so HD95 is 1;
    over every pixel (the former definition) 380 of 400 pixels lie inside the other square and it was 0.05."""
    pred = _masks((24, 24), [(r, c) for r in range(2, 22) for c in range(2, 22)])
    gt = _masks((24, 24), [(r, c) for r in range(2, 22) for c in range(3, 23)])
    hd, hd95 = metrics.hausdorff_px(pred, gt)
    assert hd[0] == pytest.approx(1.0) and hd95[0] == pytest.approx(1.0)
    every_pixel = cdist(np.argwhere(pred[0]), np.argwhere(gt[0])).min(axis=1)
    assert np.percentile(every_pixel, 95) == pytest.approx(0.05)


def _monai_hd95(pred: np.ndarray, gt: np.ndarray) -> float:
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics", reason="MONAI is the dev extra's reference HD95")

    def onehot(mask: np.ndarray):
        return torch.from_numpy(np.stack([~mask, mask])[None].astype(np.float32))

    return float(monai_metrics.compute_hausdorff_distance(onehot(pred), onehot(gt), percentile=95)[0, 0])


def _random_masks(rng: np.random.Generator, shape: tuple[int, ...], blobs: bool) -> tuple[np.ndarray, np.ndarray]:
    """A prediction (in-plane blobs or speckle) and a ground truth (in-plane blobs) of `shape`, each non-empty."""
    from scipy import ndimage

    plane = ndimage.generate_binary_structure(2, 1).reshape((1,) * (len(shape) - 2) + (3, 3))
    for _ in range(100):
        pred = rng.random(shape) < rng.uniform(0.05, 0.7)
        pred = ndimage.binary_opening(pred, plane) if blobs else pred
        gt = ndimage.binary_closing(rng.random(shape) < rng.uniform(0.05, 0.7), plane)
        if pred.any() and gt.any():
            return pred, gt
    raise AssertionError("no non-empty random masks in 100 draws")


@pytest.mark.filterwarnings("ignore")
def test_slice_hd95_equals_monai_on_random_masks():
    rng = np.random.default_rng(2)
    for i in range(40):
        pred, gt = _random_masks(rng, tuple(rng.integers(6, 40, 2)), blobs=bool(i % 2))
        ours = metrics.hausdorff_px(pred[None], gt[None])[1][0]
        assert ours == pytest.approx(_monai_hd95(pred, gt), abs=1e-5), i


@pytest.mark.filterwarnings("ignore")
def test_volume_hd95_equals_monai_on_random_volumes_stacked_with_gaps():
    """Slices given in any order with missing z indices: MONAI on the dense stack (empty slices at the missing
    indices, so a voxel next to one is on the boundary) gives the same HD95."""
    rng = np.random.default_rng(3)
    for i in range(15):
        n, rows, cols = rng.integers(1, 7), rng.integers(5, 14), rng.integers(5, 14)
        z = np.sort(rng.choice(10, n, replace=False))
        pred, gt = _random_masks(rng, (n, rows, cols), blobs=bool(i % 2))
        dense_pred, dense_gt = (np.zeros((z.max() + 1, rows, cols), bool) for _ in range(2))
        dense_pred[z], dense_gt[z] = pred, gt
        order = rng.permutation(n)
        ours = metrics.volume_hd95(pred[order], gt[order], z[order])
        assert ours == pytest.approx(_monai_hd95(dense_pred, dense_gt), abs=1e-5), i


def test_volume_hd95_of_an_empty_set_is_nan_and_z_must_fit():
    cube = np.zeros((3, 8, 8), dtype=bool)
    cube[:, 2:5, 2:5] = True
    assert math.isnan(metrics.volume_hd95(cube, np.zeros_like(cube), [0, 1, 2]))
    assert metrics.volume_hd95(cube, cube, [4, 5, 6]) == 0.0
    with pytest.raises(ValueError, match="one distinct z index per slice"):
        metrics.volume_hd95(cube, cube, [0, 0, 1])


def test_empty_prediction_scores_zero_under_paper_nan_under_strict():
    pred = _masks((8, 8), [])
    gt = _masks((8, 8), [(1, 1), (1, 2)])
    row = metrics.slice_metrics(pred, gt, ["a"]).iloc[0]
    assert [row[f"paper_{k}"] for k in ("dsc", "sen", "spc", "hd")] == [0.0, 0.0, 0.0, 0.0]
    assert row.strict_dsc == 0.0 and row.strict_sen == 0.0 and row.strict_spc == 1.0 and row.strict_iou == 0.0
    assert math.isnan(row.strict_precision) and math.isnan(row.strict_hd) and math.isnan(row.strict_hd95)


def test_empty_ground_truth_under_both_policies():
    pred = _masks((8, 8), [(2, 2)])
    gt = _masks((8, 8), [])
    row = metrics.slice_metrics(pred, gt, ["a"]).iloc[0]
    assert row.paper_dsc == 0.0 and row.paper_spc == pytest.approx(63 / 64)
    assert math.isnan(row.paper_sen) and math.isnan(row.paper_hd)
    assert row.strict_dsc == 0.0 and row.strict_precision == 0.0 and row.strict_iou == 0.0
    assert math.isnan(row.strict_sen) and math.isnan(row.strict_hd)


def test_both_empty_under_both_policies():
    empty = _masks((8, 8), [])
    row = metrics.slice_metrics(empty, empty, ["a"]).iloc[0]
    assert [row[f"paper_{k}"] for k in ("dsc", "sen", "spc", "hd")] == [0.0, 0.0, 0.0, 0.0]
    assert row.strict_spc == 1.0
    for key in ("dsc", "sen", "iou", "precision", "hd", "hd95"):
        assert math.isnan(row[f"strict_{key}"]), key


def test_slice_metrics_columns_follow_the_contract():
    pred = gt = _masks((4, 4), [(0, 0)], [(1, 1)])
    df = metrics.slice_metrics(pred, gt, ["x", "y"])
    assert list(df.columns) == [
        "id", "tp", "fp", "fn", "tn", "paper_dsc", "paper_sen", "paper_spc", "paper_hd",
        "strict_dsc", "strict_sen", "strict_spc", "strict_iou", "strict_precision", "strict_hd", "strict_hd95",
        "strict_nsd",
    ]
    assert list(df.id) == ["x", "y"] and df.paper_dsc.tolist() == [1.0, 1.0]


def test_fold_summary_paper_counts_empty_predictions_strict_skips_them():
    perfect = [(1, 1), (1, 2)]
    pred = _masks((4, 4), perfect, [])
    gt = _masks((4, 4), perfect, [(2, 2), (3, 3)])
    summary = metrics.fold_summary(metrics.slice_metrics(pred, gt, ["a", "b"]))
    paper, strict = summary["paper"], summary["strict"]
    assert (paper["dsc"], paper["sen"], paper["spc"], paper["hd"]) == pytest.approx((50.0, 50.0, 50.0, 0.0))
    assert (strict["dsc"], strict["sen"], strict["spc"], strict["hd"]) == pytest.approx((50.0, 50.0, 100.0, 0.0))
    assert strict["precision"] == pytest.approx(100.0)
    assert strict["n_empty_pred"] == 1 and strict["n_empty_gt"] == 0 and paper["n_slices"] == 2
    # pooled over the fold: TP 2, FP 0, FN 2, TN 28 -> fg IoU 2/4, bg IoU 28/30
    assert paper["miou"] == pytest.approx(100 * (2 / 4 + 28 / 30) / 2)
    assert strict["dsc_pooled"] == pytest.approx(100 * 4 / 6)


def test_cv_summary_is_the_unweighted_mean_of_fold_means():
    def fold(dsc: float, n: int) -> dict:
        values = {"dsc": dsc, "sen": 50.0, "spc": 90.0, "hd": 10.0, "miou": 70.0, "n_slices": n}
        return {"paper": dict(values), "strict": dict(values)}

    cv = metrics.cv_summary([fold(60.0, 1), fold(80.0, 100)])
    assert cv["paper"]["mean"]["dsc"] == pytest.approx(70.0)
    assert cv["paper"]["std"]["dsc"] == pytest.approx(np.std([60.0, 80.0], ddof=1))
    assert cv["paper"]["totals"] == {"n_slices": 101}
    assert [f["fold"] for f in cv["strict"]["folds"]] == [1, 2]
    assert "n_slices" not in cv["paper"]["mean"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="one shape"):
        metrics.slice_metrics(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 5), bool), ["a"])
    with pytest.raises(ValueError, match="slice ids"):
        metrics.slice_metrics(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4), bool), ["a"])
    with pytest.raises(ValueError):
        metrics.cv_summary([])
    assert isinstance(metrics.slice_metrics(np.ones((1, 2, 2)), np.ones((1, 2, 2)), ["a"]), pd.DataFrame)


def test_miou_of_sums_is_pooled_miou_row_by_row():
    """The bootstrap's vectorised mIoU gives, for each row of summed counts, what `pooled_miou` gives."""
    sums = np.array([[3, 1, 2, 10], [0, 0, 0, 16], [0, 4, 0, 12], [16, 0, 0, 0]], dtype=np.float64)
    expected = [metrics.pooled_miou(*row) for row in sums]
    assert expected[0] == pytest.approx((3 / 6 + 10 / 13) / 2)
    assert expected[1] == pytest.approx(1.0)  # no foreground anywhere: background IoU only
    np.testing.assert_allclose(metrics.miou_of_sums(*sums.T), expected)
