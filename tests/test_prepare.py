"""prepare: raw NIfTI volumes (made here) and the real P1110 masks -> the release layout."""
from __future__ import annotations

import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from benchmark import datasets as ds
from benchmark.cli import main
from benchmark.datasets import prepare as prep


def save_nifti(path: Path, volume: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.Nifti1Image(volume, np.eye(4)).to_filename(str(path))
    return path


def hu_volume(shape=(20, 12, 4), seed=0) -> np.ndarray:
    """An int16 CT-like volume spanning -2000..1000 HU."""
    return np.random.default_rng(seed).integers(-2000, 1000, shape).astype(np.int16)


def lesion_mask(shape=(20, 12, 4), slices=(1, 3), value=1) -> np.ndarray:
    """Non-symmetric blobs (so a missing transpose shows) in the given slices."""
    mask = np.zeros(shape, np.int16)
    for z in slices:
        mask[2:9, 1:4, z] = value
    return mask


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def lung_window(slice_hu: np.ndarray, low=-1250.0, high=250.0) -> np.ndarray:
    return np.rint((np.clip(slice_hu.astype(np.float64), low, high) - low) * 255.0 / (high - low)).astype(np.uint8)


@pytest.fixture(autouse=True)
def fresh_cache():
    ds.clear_cache()
    yield


# ---- the real P1110 masks --------------------------------------------------------------------

@pytest.mark.slow  # ~7 s of CPU: decompresses the 50 real mask volumes
@pytest.mark.shared_data
def test_p1110_masks_only_yields_the_segmaps_slices(shared_data, release_dir, tmp_path):
    source = shared_data / "COVID-19-P1110"
    if not (source / "masks").is_dir():
        pytest.skip(f"P1110 masks not present: {source / 'masks'}")
    root = tmp_path / "root"
    rc = main(["prepare", "--dataset", "P1110", "--masks-only", "--source", str(source), "--data-root", str(root)])
    assert rc == 0
    segmaps = release_dir / "SegMaps" / "COVID-19-P1110"
    expected = {p.stem for p in segmaps.glob("CrossVal*/*.png")}
    written = {p.stem for p in (root / "COVID-19-P1110" / "tr_mask").glob("*.png")}
    assert len(expected) == 785 and written == expected
    assert not (root / "COVID-19-P1110" / "tr_im").exists()
    # orientation: the ground truth overlaps the authors' predictions only as volume[:, :, z].T
    fold = ds.load_dataset("P1110", root, ids=ds.get_folds("P1110")[0], masks_only=True).masks
    pred = np.stack([png(segmaps / "CrossVal1" / f"{i}.png") > 0 for i in ds.get_folds("P1110")[0]])
    dice = 2 * (pred & fold).sum() / (pred.sum() + fold.sum())
    dice_flipped = 2 * (pred & fold.transpose(0, 2, 1)).sum() / (pred.sum() + fold.sum())
    assert dice > 0.7 > 0.1 > dice_flipped
    assert set(np.unique(png(next((root / "COVID-19-P1110" / "tr_mask").glob("*.png")))).tolist()) == {0, 255}


# ---- converters on small volumes -------------------------------------------------------------

def test_p1110_volumes_to_slices(tmp_path):
    src = tmp_path / "COVID19_1110"
    image, mask = hu_volume(), lesion_mask()
    save_nifti(src / "studies" / "CT-1" / "study_0001.nii.gz", image)
    save_nifti(src / "masks" / "study_0001_mask.nii.gz", mask)
    result = prep.prepare_dataset("P1110", src, tmp_path / "root")
    folder = tmp_path / "root" / "COVID-19-P1110"
    assert result.slices_per_case == {"study_0001": 2}
    assert sorted(p.stem for p in (folder / "tr_im").glob("*.png")) == ["study_0001_0001", "study_0001_0003"]
    for z in (1, 3):
        got_image = png(folder / "tr_im" / f"study_0001_{z:04d}.png")
        got_mask = png(folder / "tr_mask" / f"study_0001_{z:04d}.png")
        assert got_image.shape == (12, 20)
        assert np.array_equal(got_image, lung_window(image[:, :, z].T))
        assert np.array_equal(got_mask, (mask[:, :, z].T > 0).astype(np.uint8) * 255)
    assert (folder / prep.RECORD_FILE).is_file()
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["COVID-19-P1110"]  # no temp folder left
    slices = ds.load_dataset("P1110", tmp_path / "root", ids=["study_0001_0003"])
    assert slices.masks[0].sum() == 21


def test_window_option(tmp_path):
    src = tmp_path / "src"
    image = hu_volume()
    save_nifti(src / "studies" / "study_0002.nii.gz", image)
    save_nifti(src / "masks" / "study_0002_mask.nii.gz", lesion_mask())
    rc = main(["prepare", "--dataset", "P1110", "--source", str(src), "--data-root", str(tmp_path / "r"),
               "--window=-1000,400"])
    assert rc == 0
    got = png(tmp_path / "r" / "COVID-19-P1110" / "tr_im" / "study_0002_0001.png")
    assert np.array_equal(got, lung_window(image[:, :, 1].T, -1000, 400))


def test_ct100_keeps_every_slice_and_labels_option(tmp_path):
    src = tmp_path / "medseg"
    mask = lesion_mask(shape=(20, 12, 3), slices=(0, 2))
    mask[0:2, 0:2, 2] = 3  # pleural effusion label
    save_nifti(src / "tr_im.nii.gz", hu_volume((20, 12, 3)))
    save_nifti(src / "tr_mask.nii.gz", mask)
    prep.prepare_dataset("CT100", src, tmp_path / "a")
    folder = tmp_path / "a" / "COVID-19-CT100"
    assert sorted(p.stem for p in (folder / "tr_im").glob("*.png")) == ["tr_im_0000", "tr_im_0001", "tr_im_0002"]
    assert sorted(p.stem for p in (folder / "tr_mask").glob("*.png")) == ["tr_mask_0000", "tr_mask_0001", "tr_mask_0002"]
    assert png(folder / "tr_mask" / "tr_mask_0001.png").max() == 0  # an empty slice is kept
    assert (png(folder / "tr_mask" / "tr_mask_0002.png") > 0).sum() == 25
    prep.prepare_dataset("CT100", src, tmp_path / "b", labels=(1, 2))
    assert (png(tmp_path / "b" / "COVID-19-CT100" / "tr_mask" / "tr_mask_0002.png") > 0).sum() == 21


def test_p20_zenodo_names_and_8bit_volumes(tmp_path):
    src = tmp_path / "zenodo"
    shape = (20, 12, 3)
    radiopaedia = np.random.default_rng(1).integers(0, 256, shape).astype(np.float32)
    save_nifti(src / "COVID-19-CT-Seg_20cases" / "coronacases_org_001.nii.gz", hu_volume(shape))
    save_nifti(src / "COVID-19-CT-Seg_20cases" / "radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii.gz", radiopaedia)
    save_nifti(src / "Infection_Mask" / "coronacases_001.nii.gz", lesion_mask(shape, (0,)))
    save_nifti(src / "Infection_Mask" / "radiopaedia_4_85506_1.nii.gz", lesion_mask(shape, (2,)))
    result = prep.prepare_dataset("P20", src, tmp_path / "root")
    assert result.slices_per_case == {"coronacases_001": 1, "radiopaedia_4_85506_1": 1}
    got = png(tmp_path / "root" / "COVID-19-P20" / "tr_im" / "radiopaedia_4_85506_1_0002.png")
    assert np.array_equal(got, radiopaedia[:, :, 2].T.astype(np.uint8))  # already 0..255: not windowed


def test_p9_rp_volumes(tmp_path):
    src = tmp_path / "rp"
    save_nifti(src / "rp_im" / "3.nii.gz", hu_volume())
    save_nifti(src / "rp_msk" / "3.nii.gz", lesion_mask(slices=(2,), value=2))
    prep.prepare_dataset("P9", src, tmp_path / "root")
    assert [p.stem for p in (tmp_path / "root" / "COVID-19-P9" / "tr_mask").glob("*.png")] == ["3_0002"]


def test_release_zip_is_copied_and_its_datalist_defines_folds(tmp_path):
    archive = tmp_path / "datasets.zip"
    ids = [f"tr_im_{i:04d}" for i in range(5)]
    with zipfile.ZipFile(archive, "w") as zf:
        for k, slice_id in enumerate(ids):
            for sub, stem in (("tr_im", slice_id), ("tr_mask", slice_id.replace("tr_im", "tr_mask"))):
                img = tmp_path / f"{stem}.png"
                Image.fromarray(np.full((8, 8), 255 if sub == "tr_mask" else k, np.uint8)).save(img)
                zf.write(img, f"datasets/COVID-19-CT100/{sub}/{stem}.png")
            zf.writestr(f"datasets/COVID-19-CT100/dataList/val{k}.txt",
                        f"COVID-19-CT100/tr_im/{slice_id}.png COVID-19-CT100/tr_mask/{slice_id.replace('im', 'mask')}.png\n")
    root = tmp_path / "root"
    result = prep.prepare_dataset("CT100", archive, root)
    assert result.n_slices == 5
    assert ds.get_folds("CT100", root) == [[i] for i in ids]
    slices = ds.load_dataset("CT100", root)
    assert slices.images[:, 0, 0].tolist() == [0, 1, 2, 3, 4] and slices.masks.all()
    assert sorted(p.name for p in root.iterdir()) == ["COVID-19-CT100"]


# ---- failures leave nothing behind, errors name the file -------------------------------------

def test_interrupted_prepare_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for case in ("study_0001", "study_0002"):
        save_nifti(src / "masks" / f"{case}_mask.nii.gz", lesion_mask())
    real = prep.convert_volume
    calls = []

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prep, "convert_volume", interrupt_second)
    root = tmp_path / "root"
    with pytest.raises(KeyboardInterrupt):
        prep.prepare_dataset("P1110", src, root, masks_only=True)
    assert list(root.iterdir()) == []


def test_existing_dataset_needs_force(tmp_path, capsys):
    src = tmp_path / "src"
    save_nifti(src / "masks" / "study_0001_mask.nii.gz", lesion_mask())
    args = ["prepare", "--dataset", "P1110", "--masks-only", "--source", str(src), "--data-root", str(tmp_path / "r")]
    assert main(args) == 0
    assert main(args) == 1
    assert "already exists; pass --force" in capsys.readouterr().err
    save_nifti(src / "masks" / "study_0001_mask.nii.gz", lesion_mask(slices=(0,)))
    assert main(args + ["--force"]) == 0
    assert [p.stem for p in (tmp_path / "r" / "COVID-19-P1110" / "tr_mask").glob("*.png")] == ["study_0001_0000"]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["COVID-19-P1110"]


def test_missing_ct_volume_and_shape_mismatch(tmp_path):
    src = tmp_path / "src"
    save_nifti(src / "masks" / "study_0001_mask.nii.gz", lesion_mask())
    with pytest.raises(FileNotFoundError, match=r"study_0001_mask\.nii\.gz.*--masks-only"):
        prep.prepare_dataset("P1110", src, tmp_path / "r")
    save_nifti(src / "studies" / "study_0001.nii.gz", hu_volume(shape=(20, 12, 5)))
    with pytest.raises(ValueError, match=r"study_0001_mask\.nii\.gz: mask shape \(20, 12, 4\) differs .*study_0001\.nii\.gz"):
        prep.prepare_dataset("P1110", src, tmp_path / "r")
    assert list((tmp_path / "r").iterdir()) == []


def test_no_masks_found_and_bad_nifti(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no P20 mask volumes found"):
        prep.prepare_dataset("P20", tmp_path / "empty", tmp_path / "r")
    bad = tmp_path / "bad" / "masks" / "study_0003_mask.nii.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"study_0003_mask\.nii\.gz: unreadable NIfTI"):
        prep.prepare_dataset("P1110", tmp_path / "bad", tmp_path / "r", masks_only=True)


def test_help_names_the_sources(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--help"])
    text = capsys.readouterr().out
    assert exit_info.value.code == 0
    for needle in ("MedSeg", "rp_im", "Zenodo record 3757476", "MosMedData", "datasets.zip", "-1250,250"):
        assert needle in text


def test_p20_case_names_are_the_published_ones_and_the_folds_ones():
    """The 20 names the dataset's authors publish are exactly the cases of the paper's P20 folds."""
    fold_cases = {sid.rsplit("_", 1)[0] for fold in ds.get_folds("P20") for sid in fold}
    assert sorted(prep.P20_CASES) == sorted(fold_cases)
    assert len(set(prep.P20_CASES)) == 20


@pytest.mark.parametrize(
    "stem, case",
    [
        ("coronacases_org_001", "coronacases_001"),
        ("coronacases_org_case007", "coronacases_007"),
        ("case009", "coronacases_009"),
        ("radiopaedia_org_covid-19-pneumonia-10_85902_3-dcm", "radiopaedia_10_85902_3"),
        ("radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm", "radiopaedia_4_85506_1"),
        ("lung_mask_001", None),
    ],
)
def test_p20_image_names_map_to_case_names(stem, case):
    assert prep._p20_case(stem) == case


def test_p20_foreign_mask_name_is_named(tmp_path):
    src = tmp_path / "zenodo"
    save_nifti(src / "Infection_Mask" / "coronacases_011.nii.gz", lesion_mask())
    with pytest.raises(ValueError, match=r"coronacases_011\.nii\.gz: not a COVID-19-CT-Seg case name"):
        prep.prepare_dataset("P20", src, tmp_path / "root", masks_only=True)
