"""Datasets: specs, the paper's folds, loading and its errors, statistics, the synthetic generator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark import datasets as ds
from benchmark.datasets import loading
from benchmark.datasets.folds import patient_folds
from benchmark.datasets.synthetic import GENERATOR_SCHEMA, PATIENTS_FILE, ensure_synthetic, slice_ids

REAL_DATASETS = ("CT100", "P9", "P20", "P1110")


# ---- helpers ---------------------------------------------------------------------------------

def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_root(tmp_path: Path, ids=("1_0000", "1_0001"), name="P9", size=(16, 16)) -> Path:
    """A tiny data root for `name` with uint8 images and 0/255 masks."""
    folder = tmp_path / ds.get_spec(name).folder
    rng = np.random.default_rng(0)
    for slice_id in ids:
        write_png(folder / "tr_im" / f"{slice_id}.png", rng.integers(0, 256, size, dtype=np.uint8))
        mask = np.zeros(size, np.uint8)
        mask[2:5, 3:7] = 255
        write_png(folder / "tr_mask" / f"{ds.get_spec(name).mask_id(slice_id)}.png", mask)
    return tmp_path


@pytest.fixture(autouse=True)
def fresh_cache():
    ds.clear_cache()
    yield
    ds.clear_cache()


# ---- specs -----------------------------------------------------------------------------------

def test_get_spec_accepts_short_and_folder_names_in_any_case():
    assert ds.get_spec("ct100").name == "CT100"
    assert ds.get_spec("COVID-19-P1110").name == "P1110"
    assert ds.get_spec("Synthetic").folder == "synthetic"
    assert ds.DATASET_NAMES == ("CT100", "P9", "P20", "P1110", "synthetic")


def test_unknown_dataset_lists_the_names():
    with pytest.raises(KeyError, match="CT100, P9, P20, P1110, synthetic"):
        ds.get_spec("P21x")


def test_mask_ids():
    assert ds.get_spec("CT100").mask_id("tr_im_0048") == "tr_mask_0048"
    assert ds.get_spec("CT100").image_id("tr_mask_0048") == "tr_im_0048"
    assert ds.get_spec("P1110").mask_id("study_0255_0011") == "study_0255_0011"
    assert ds.get_spec("P20").slice_id("coronacases_001", 7) == "coronacases_001_0007"


def test_dataset_dir_layout(tmp_path):
    assert ds.dataset_dir("P20", tmp_path) == tmp_path / "COVID-19-P20"
    assert ds.dataset_dir("synthetic", tmp_path) == tmp_path / "synthetic"


# ---- folds -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ds.DATASET_NAMES)
def test_committed_folds_match_the_spec(name):
    spec = ds.get_spec(name)
    folds = ds.get_folds(name)
    every = [i for fold in folds for i in fold]
    assert tuple(len(f) for f in folds) == spec.fold_sizes
    assert len(every) == len(set(every)) == spec.n_slices
    assert all(spec.is_valid_id(i) for i in every)


def test_ct100_folds_leave_out_slice_48():
    folds = ds.get_folds("CT100")
    every = {i for fold in folds for i in fold}
    assert len(every) == 99
    assert "tr_im_0048" not in every
    assert every == {f"tr_im_{i:04d}" for i in range(100)} - {"tr_im_0048"}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", REAL_DATASETS)
def test_folds_equal_the_release_segmaps(name, release_dir):
    folder = release_dir / "SegMaps" / ds.get_spec(name).folder
    expected = [sorted(p.stem for p in (folder / f"CrossVal{k}").glob("*.png")) for k in range(1, 6)]
    assert ds.get_folds(name) == expected


def test_folds_are_copies():
    ds.get_folds("CT100")[0].clear()
    assert len(ds.get_folds("CT100")[0]) == 20


def test_train_ids_are_the_other_folds():
    folds = ds.get_folds("CT100")
    train = ds.train_ids(folds, 0)
    assert len(train) == 79 and not set(train) & set(folds[0])
    with pytest.raises(ValueError, match="out of range"):
        ds.train_ids(folds, 5)


def test_patient_folds_keep_patients_together():
    patient_of = {f"s{i:03d}": f"p{i // 3}" for i in range(30)}
    folds = patient_folds(patient_of, seed=3)
    assert sorted(i for f in folds for i in f) == sorted(patient_of)
    for k, fold in enumerate(folds):
        others = {patient_of[i] for j, f in enumerate(folds) if j != k for i in f}
        assert not {patient_of[i] for i in fold} & others
    assert folds == patient_folds(patient_of, seed=3)
    assert folds != patient_folds(patient_of, seed=4)


def test_datalist_overrides_committed_folds(tmp_path):
    ids = [f"1_{z:04d}" for z in range(5)]
    root = make_root(tmp_path, ids)
    lists = root / "COVID-19-P9" / "dataList"
    lists.mkdir()
    for k, slice_id in enumerate(ids):
        line = f"COVID-19-P9/tr_im/{slice_id}.png COVID-19-P9/tr_mask/{slice_id}.png\n"
        (lists / f"val{k}.txt").write_text(line)
    assert ds.get_folds("P9", root) == [[i] for i in ids]
    assert ds.get_folds("P9") != [[i] for i in ids]


def test_datalist_line_naming_a_missing_file(tmp_path):
    root = make_root(tmp_path, ["1_0000"])
    lists = root / "COVID-19-P9" / "dataList"
    lists.mkdir()
    for k in range(1, 6):
        (lists / f"val{k}.txt").write_text("COVID-19-P9/tr_im/1_0000.png COVID-19-P9/tr_mask/1_0000.png\n")
    (lists / "val3.txt").write_text("COVID-19-P9/tr_im/1_0009.png COVID-19-P9/tr_mask/1_0009.png\n")
    with pytest.raises(FileNotFoundError, match=r"val3\.txt:1: names a missing file 'COVID-19-P9/tr_im/1_0009.png'"):
        ds.get_folds("P9", root)


# ---- statistics ------------------------------------------------------------------------------

@pytest.mark.shared_data
def test_ct100_fold1_normalization_matches_the_paper(shared_data, ct100_dir):
    train = ds.train_ids(ds.get_folds("CT100"), 0)
    images = ds.load_dataset("CT100", shared_data, ids=train).images
    mean, std = ds.normalization_stats(images)
    assert len(train) == 79
    assert round(mean, 6) == round(0.6023964, 6)
    assert round(std, 6) == round(0.2961877, 6)


def test_normalization_stats_is_mean_of_per_image_stats():
    a = np.zeros((2, 2), np.uint8)
    b = np.array([[0, 255], [0, 255]], np.uint8)
    mean, std = ds.normalization_stats(np.stack([a, b]))
    assert mean == pytest.approx((0.0 + 0.5) / 2)
    assert std == pytest.approx((0.0 + 0.5) / 2)  # population std of {0, 1, 0, 1} is 0.5
    with pytest.raises(ValueError, match="non-empty"):
        ds.normalization_stats(np.zeros((0, 2, 2), np.uint8))


def test_class_weights_formula():
    masks = np.zeros((1, 10, 10), bool)
    masks[0, :2] = True  # 20 % infection
    weights = ds.class_weights(masks)
    assert weights.dtype == np.float64 and weights.shape == (2,)
    np.testing.assert_allclose(weights, [1 / np.log(1.10 + 0.8), 1 / np.log(1.10 + 0.2)])


# ---- loading ---------------------------------------------------------------------------------

@pytest.mark.shared_data
def test_ct100_palette_masks_load_as_bool(shared_data, ct100_dir):
    slices = ds.load_dataset("CT100", shared_data, ids=["tr_im_0000", "tr_im_0048"])
    assert slices.images.dtype == np.uint8 and slices.images.shape == (2, 512, 512)
    assert slices.masks.dtype == bool
    assert slices.masks[0].sum() > 0 and slices.masks[1].sum() == 0
    raw = np.asarray(Image.open(ct100_dir / "tr_mask" / "tr_mask_0000.png"))
    assert np.array_equal(slices.masks[0], raw > 0)


def test_default_ids_are_the_fold_slices_and_size_resizes(tmp_path):
    slices = ds.load_dataset("synthetic", tmp_path, size=64)
    assert slices.ids == sorted(i for f in ds.get_folds("synthetic") for i in f)
    assert slices.images.shape == slices.masks.shape == (40, 64, 64)
    assert slices.masks.dtype == bool and slices.masks.any()


def test_masks_only_has_no_images(tmp_path):
    root = make_root(tmp_path)
    slices = ds.load_dataset("P9", root, ids=["1_0000"], masks_only=True)
    assert slices.images is None and slices.masks.shape == (1, 16, 16)
    assert slices.masks.sum() == 12


def test_each_slice_is_decoded_once(tmp_path, monkeypatch):
    root = make_root(tmp_path)
    calls = []
    real = loading._decode_image
    monkeypatch.setattr(loading, "_decode_image", lambda p: calls.append(p) or real(p))
    first = ds.load_dataset("P9", root, ids=["1_0000", "1_0001"])
    second = ds.load_dataset("P9", root, ids=["1_0001", "1_0000"])
    assert len(calls) == 2
    assert np.array_equal(first.images[0], second.images[1])
    second.images[0, 0, 0] ^= 1  # callers own their arrays; the cache is untouched
    assert np.array_equal(ds.load_dataset("P9", root, ids=["1_0001"]).images[0], first.images[1])


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"COVID-19-P20: folder not found.*prepare --dataset P20"):
        ds.load_dataset("P20", tmp_path, ids=["coronacases_001_0001"])


def test_missing_slice_file(tmp_path):
    root = make_root(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"tr_mask/1_0007\.png: file not found"):
        ds.load_dataset("P9", root, ids=["1_0007"])


def test_unreadable_png(tmp_path):
    root = make_root(tmp_path)
    (root / "COVID-19-P9" / "tr_im" / "1_0000.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"tr_im/1_0000\.png: unreadable PNG"):
        ds.load_dataset("P9", root, ids=["1_0000"])


def test_image_mask_size_mismatch(tmp_path):
    root = make_root(tmp_path)
    write_png(root / "COVID-19-P9" / "tr_mask" / "1_0000.png", np.zeros((8, 16), np.uint8))
    with pytest.raises(ValueError, match=r"tr_mask/1_0000\.png: mask is 16x8 but image .*tr_im/1_0000\.png is 16x16"):
        ds.load_dataset("P9", root, ids=["1_0000"])


def test_mask_with_two_foreground_values(tmp_path):
    root = make_root(tmp_path)
    mask = np.zeros((16, 16), np.uint8)
    mask[0, 0], mask[1, 1] = 1, 2
    write_png(root / "COVID-19-P9" / "tr_mask" / "1_0001.png", mask)
    with pytest.raises(ValueError, match=r"tr_mask/1_0001\.png: mask has values \[0, 1, 2\]"):
        ds.load_dataset("P9", root, ids=["1_0001"], masks_only=True)


def test_mixed_sizes_need_size(tmp_path):
    root = make_root(tmp_path, ["1_0000"])
    make_root(tmp_path, ["1_0001"], size=(24, 24))
    with pytest.raises(ValueError, match="size=512"):
        ds.load_dataset("P9", root, ids=["1_0000", "1_0001"])
    assert ds.load_dataset("P9", root, ids=["1_0000", "1_0001"], size=20).images.shape == (2, 20, 20)


# ---- synthetic -------------------------------------------------------------------------------

def test_synthetic_is_deterministic_and_built_like_the_real_data(tmp_path):
    a = ds.load_dataset("synthetic", tmp_path / "a")
    ds.clear_cache()
    b = ds.load_dataset("synthetic", tmp_path / "b")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert a.images.shape == (40, 128, 128)
    areas = a.masks.sum(axis=(1, 2))
    assert (areas > 0).all()  # infected slices only, as the paper keeps them
    share = areas / a.masks[0].size
    assert 0.003 < np.median(share) < 0.08 and share.max() < 0.15  # lesion sizes of CT100's order
    assert areas.max() >= 5 * areas.min()  # varied lesion sizes
    lesion_means = [a.images[i][a.masks[i]].mean() for i in range(len(areas))]
    assert max(lesion_means) - min(lesion_means) > 25  # ground glass and consolidation
    for image, mask in zip(a.images, a.masks):
        lung_field = (image > 30) & (image < 100) & ~mask  # lung parenchyma in the lung window
        assert np.median(image[mask]) > np.median(image[lung_field]) + 30  # lesions stand out of the lung
        assert (image > 100).mean() > 0.2  # a body around the lungs


def test_synthetic_lesions_lie_inside_the_lungs():
    from benchmark.datasets import synthetic

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:synthetic.SIZE_PX, 0:synthetic.SIZE_PX].astype(np.float64)
    for _ in range(5):
        anatomy = synthetic._anatomy(rng)
        lungs = synthetic._lungs(yy, xx, anatomy)
        _, mask = synthetic.synthetic_slice(np.random.default_rng(rng.integers(1 << 30)), anatomy)
        assert mask.any() and not (mask & ~(lungs[0] | lungs[1])).any()


def test_synthetic_from_an_older_generator_is_regenerated(tmp_path):
    folder = ds.dataset_dir("synthetic", tmp_path)
    ensure_synthetic(tmp_path)
    (folder / PATIENTS_FILE).write_text(json.dumps({"schema": "miniseg-bench/synthetic/1", "patients": {}}))
    (folder / "stale.txt").write_text("from the old generator")
    ensure_synthetic(tmp_path)
    assert not (folder / "stale.txt").exists()
    assert json.loads((folder / PATIENTS_FILE).read_text())["schema"] == GENERATOR_SCHEMA


def test_synthetic_layout_and_patient_folds(tmp_path):
    folder = ds.dataset_dir("synthetic", tmp_path)
    assert len(list((folder / "tr_im").glob("*.png"))) == 40
    assert len(list((folder / "tr_mask").glob("*.png"))) == 40
    assert (folder / PATIENTS_FILE).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp folder renamed away
    patients = slice_ids()
    folds = ds.get_folds("synthetic", tmp_path)
    assert folds == patient_folds(patients, seed=0)
    fold_of_patient = {patients[i]: k for k, f in enumerate(folds) for i in f}
    assert all(fold_of_patient[patients[i]] == k for k, f in enumerate(folds) for i in f)
