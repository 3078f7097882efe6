"""Normalised surface Dice: hand-made cases with known answers and MONAI's `compute_surface_dice` on random masks;
per-volume 3-D distances against brute force."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from benchmark.evaluation import metrics


def _square(shape: tuple[int, int], top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_known_answers():
    square = _square((12, 12), 3, 3, 4)  # boundary: 12 pixels
    assert metrics.surface_dice(square[None], square[None], 0)[0] == 1.0
    shifted = _square((12, 12), 3, 6, 4)  # 3 px to the right
    # tau 2: of each 12-pixel boundary, the 4 pixels of the column facing the other square's far edge are 3 px
    # from the other boundary and the rest within 2 -> (8 + 8) / 24
    assert metrics.surface_dice(shifted[None], square[None], 2)[0] == pytest.approx(16 / 24)
    assert metrics.surface_dice(shifted[None], square[None], 3)[0] == 1.0
    far = _square((12, 12), 0, 8, 4)
    assert metrics.surface_dice(far[None], square[None], 0.5)[0] == 0.0
    empty = np.zeros((1, 12, 12), dtype=bool)
    assert np.isnan(metrics.surface_dice(empty, empty)[0])  # both empty: undefined (strict NaN)
    assert metrics.surface_dice(square[None], empty)[0] == 0.0 == metrics.surface_dice(empty, square[None])[0]
    with pytest.raises(ValueError, match="tolerance"):
        metrics.surface_dice(square[None], square[None], -1)


def _monai_nsd(pred: np.ndarray, gt: np.ndarray, tolerance: float) -> float:
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics", reason="MONAI is the dev extra's reference NSD")

    def onehot(mask: np.ndarray):
        return torch.from_numpy(np.stack([~mask, mask])[None].astype(np.float32))

    return float(monai_metrics.compute_surface_dice(onehot(pred), onehot(gt), [tolerance])[0, 0])


@pytest.mark.filterwarnings("ignore")
def test_equals_monai_on_random_masks():
    rng = np.random.default_rng(0)
    for i in range(60):
        shape = tuple(rng.integers(6, 40, 2))
        pred = rng.random(shape) < rng.uniform(0.1, 0.7)
        pred = ndimage.binary_opening(pred) if i % 2 else pred  # blobs and speckle
        gt = ndimage.binary_closing(rng.random(shape) < rng.uniform(0.1, 0.7))
        tolerance = float(rng.choice([0.0, 1.0, 1.5, 2.0, 3.0]))
        ours = metrics.surface_dice(pred[None], gt[None], tolerance)[0]
        reference = _monai_nsd(pred, gt, tolerance)
        assert (np.isnan(ours) and np.isnan(reference)) or ours == pytest.approx(reference, abs=1e-6), i


def test_strict_nsd_column_and_fold_mean():
    square = _square((12, 12), 3, 3, 4)
    shifted = _square((12, 12), 3, 6, 4)
    frame = metrics.slice_metrics(np.stack([square, shifted]), np.stack([square, square]), ["a", "b"], 2.0)
    assert frame.strict_nsd.tolist() == pytest.approx([1.0, 16 / 24])
    assert metrics.fold_summary(frame)["strict"]["nsd"] == pytest.approx(100 * (1 + 16 / 24) / 2)


def test_volume_distances_equal_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(40):
        n = int(rng.integers(1, 5))
        z = rng.choice(10, n, replace=False)  # unsorted, with gaps
        pred = rng.random((n, 7, 9)) < 0.3
        gt = rng.random((n, 7, 9)) < 0.3
        p2g, g2p = metrics.volume_distances(pred, gt, z)
        if not (pred.any() and gt.any()):
            assert np.isnan(p2g).all() and np.isnan(g2p).all()
            continue
        points = [np.argwhere(m).astype(float) for m in (pred, gt)]
        slices = [p[:, 0].astype(int) for p in points]
        for p in points:
            p[:, 0] = z[p[:, 0].astype(int)]
        d = cdist(points[0], points[1])
        for i in range(n):
            expected_p2g = d[slices[0] == i].min(axis=1).max() if (slices[0] == i).any() else np.nan
            expected_g2p = d[:, slices[1] == i].min(axis=0).max() if (slices[1] == i).any() else np.nan
            np.testing.assert_allclose([p2g[i], g2p[i]], [expected_p2g, expected_g2p])


def test_per_volume_metrics_from_the_per_slice_table():
    ids = ["synth_01_0000", "synth_01_0001", "synth_02_0003"]
    gt = np.stack([_square((8, 8), 1, 1, 3), _square((8, 8), 1, 1, 3), _square((8, 8), 4, 4, 2)])
    pred = np.stack([_square((8, 8), 1, 1, 3), np.zeros((8, 8), bool), _square((8, 8), 4, 4, 2)])
    frame = metrics.slice_metrics(pred, gt, ids)
    volumes = metrics.volume_metrics(frame).set_index("volume")
    assert volumes.loc["synth_01", "dsc"] == pytest.approx(2 * 9 / (9 + 18))  # 9 of 18 GT voxels found
    assert volumes.loc["synth_01", "sen"] == pytest.approx(0.5)
    assert volumes.loc["synth_01", "hd"] == pytest.approx(1.0)  # the missed slice is one slice away
    assert volumes.loc["synth_02", "dsc"] == 1.0 and volumes.loc["synth_02", "hd"] == 0.0
    assert volumes.loc["synth_02", "hd95"] == 0.0  # HD95 over the boundaries, 3-D, in every row of the volume
    assert volumes.loc["synth_01", "hd95"] == metrics.volume_hd95(pred[:2], gt[:2], [0, 1])
    assert (frame.hd95_3d[:2] == volumes.loc["synth_01", "hd95"]).all()
    strict = metrics.fold_summary(frame)["strict"]
    assert strict["n_volumes"] == 2 and strict["hd_3d"] == pytest.approx(0.5)
    assert strict["hd95_3d"] == pytest.approx(volumes.hd95.mean())
    assert "volume" not in metrics.slice_metrics(pred, gt, ["x", "y", "z"])  # ids without a volume
