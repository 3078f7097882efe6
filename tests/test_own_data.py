"""Datasets of your own (prepare from a folder of PNG slices or NIfTI volumes) and `predict` on new scans.

Every dataset here is built in the test: a few tiny "patients" with lesion blobs, in both layouts.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark import datasets as ds
from benchmark.cli import main
from benchmark.errors import BadValue
from benchmark.datasets.volumes import get_slice
from benchmark.evaluation import inference

SIDE = 32
AFFINE = np.array([[0.0, -0.7, 0.0, 12.0], [0.8, 0.0, 0.0, -5.0], [0.0, 0.0, 2.5, 3.0], [0.0, 0.0, 0.0, 1.0]])


def lesion_slice(rng: np.random.Generator, side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit slice (grey lungs, brighter lesion) and its 0/255 mask."""
    image = rng.integers(20, 90, (side, side)).astype(np.uint8)
    mask = np.zeros((side, side), np.uint8)
    y, x = rng.integers(4, side - 12, 2)
    mask[y:y + 8, x:x + 6] = 255
    image[mask > 0] = rng.integers(150, 230, int((mask > 0).sum()))
    return image, mask


def write_png_source(folder: Path, patients: int = 6, per_patient: int = 3, seed: int = 0) -> Path:
    """images/ + masks/ with ids p<NN>_<k>; p01_002's mask is empty, p02_001 repeats p02_000's image."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for p in range(1, patients + 1):
        for k in range(per_patient):
            image, mask = lesion_slice(rng)
            if (p, k) == (1, 2):
                mask[:] = 0
            if (p, k) == (2, 1):
                image = np.asarray(Image.open(folder / "images" / "p02_000.png"))
            Image.fromarray(image).save(folder / "images" / f"p{p:02d}_{k:03d}.png")
            Image.fromarray(mask).save(folder / "masks" / f"p{p:02d}_{k:03d}.png")
    return folder


def write_nifti_source(folder: Path, cases: int = 5, shape=(SIDE, SIDE, 4), seed: int = 0) -> Path:
    """images/<case>.nii.gz (int16 HU) + masks/<case>.nii.gz (uint8 0/1; slice 0 empty), one affine for all."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for c in range(cases):
        volume = rng.integers(-1100, 300, shape).astype(np.int16)
        mask = np.zeros(shape, np.uint8)
        mask[4:14, 6:20, 1:] = 1
        nib.Nifti1Image(volume, AFFINE).to_filename(str(folder / "images" / f"case{c}.nii.gz"))
        nib.Nifti1Image(mask, AFFINE).to_filename(str(folder / "masks" / f"case{c}.nii.gz"))
    return folder


def prepare(name: str, source: Path, root: Path, *extra: str) -> int:
    return main(["prepare", "--dataset", name, "--source", str(source), "--data-root", str(root), *extra])


@pytest.fixture(autouse=True)
def fresh_cache():
    ds.clear_cache()
    yield


@pytest.fixture(scope="module")
def png_source(tmp_path_factory) -> Path:
    return write_png_source(tmp_path_factory.mktemp("png") / "src")


@pytest.fixture(scope="module")
def nifti_source(tmp_path_factory) -> Path:
    return write_nifti_source(tmp_path_factory.mktemp("nifti") / "src")


# --- prepare: PNG slices -------------------------------------------------------------------------------

def test_png_folder_is_laid_out_with_its_patients_and_findings(png_source, tmp_path, capsys):
    root = tmp_path / "root"
    assert prepare("Mine", png_source, root, "--licence", "for testing only") == 0
    out, err = capsys.readouterr()
    assert "18 slices of 6 patients" in out and "1 group(s) of identical slices" in err and "p02_000, p02_001" in err
    folder = root / "Mine"
    stems = sorted(p.stem for p in (png_source / "images").glob("*.png"))
    assert sorted(p.stem for p in (folder / "tr_im").glob("*.png")) == stems
    record = json.loads((folder / "dataset.json").read_text())
    assert record["licence"] == "for testing only" and record["layout"] == "png"
    assert (record["n_slices"], record["n_patients"], record["n_empty_masks"]) == (18, 6, 1)
    assert record["empty_masks"] == ["p01_002"] and record["duplicates"] == [["p02_000", "p02_001"]]
    assert record["slices"]["p04_002"] == {"patient": "p04"}
    # the layout is read as the built-ins are: same spec, folds, masks
    spec = ds.get_spec("Mine", root)
    assert (spec.name, spec.n_slices, spec.n_patients) == ("Mine", 18, 6)
    assert ds.get_folds("Mine", root) and sum(spec.fold_sizes) == 18
    data = ds.load_dataset("Mine", root)
    assert data.images.shape == (18, SIDE, SIDE) and data.masks[data.ids.index("p01_002")].sum() == 0
    with pytest.raises(KeyError, match="no .*dataset.json"):
        ds.get_spec("Other", root)


def test_split_is_patient_grouped_stable_and_never_redrawn_silently(png_source, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert prepare("Mine", png_source, first, "--seed", "3") == 0
    assert prepare("Mine", png_source, second, "--seed", "3") == 0
    split = (first / "Mine" / "splits.json").read_bytes()
    assert (second / "Mine" / "splits.json").read_bytes() == split  # same seed, same file
    folds = ds.get_folds("Mine", first)
    assert len(folds) == 5 and all(folds)
    assert sorted(i for f in folds for i in f) == sorted(ds.load_dataset("Mine", first).ids)
    patients = [{i.split("_")[0] for i in fold} for fold in json.loads(split)["folds"]]  # ids are p<NN>_<k>
    assert sum(map(len, patients)) == len(set().union(*patients)) == 6  # each patient in exactly one fold
    assert prepare("Mine", png_source, first, "--force") == 0  # prepared again: the split is kept byte for byte
    assert (first / "Mine" / "splits.json").read_bytes() == split and "kept from the earlier" in capsys.readouterr().out
    assert prepare("Mine", png_source, first, "--force", "--seed", "4") == 1  # another seed would change it
    assert "drawn with seed 3" in capsys.readouterr().err
    assert (first / "Mine" / "splits.json").read_bytes() == split
    assert prepare("Mine", png_source, first, "--force", "--seed", "4", "--resplit") == 0
    assert json.loads((first / "Mine" / "splits.json").read_text())["seed"] == 4
    assert main(["folds", "--dataset", "Mine", "--data-root", str(first), "--check"]) == 0
    assert "no patient has slices in more than one fold" in capsys.readouterr().out
    with pytest.raises(ValueError, match="one split"):
        ds.get_folds("Mine", first, split="grouped")


def test_fewer_than_five_patients_is_refused_and_nothing_is_written(tmp_path, capsys):
    source = write_png_source(tmp_path / "src", patients=4)
    root = tmp_path / "root"
    assert prepare("Few", source, root) == 1
    err = capsys.readouterr().err
    assert "4 patient(s)" in err and "at least 5" in err and "Traceback" not in err
    assert not root.exists() or list(root.iterdir()) == []


@pytest.mark.parametrize("damage, expected", [
    ("small_mask", "mask is 16x16 but image"),
    ("three_labels", "mask has values [0, 1, 2]; expected 0 and one foreground value (pass --labels N,M"),
    ("no_mask", "no mask for it"),
])
def test_a_bad_pair_is_named_and_nothing_half_written(tmp_path, capsys, damage, expected):
    source = write_png_source(tmp_path / "src")
    culprit = source / "masks" / "p03_001.png"
    if damage == "small_mask":
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(culprit)
    elif damage == "three_labels":
        Image.fromarray(np.array([[0, 1], [2, 0]], np.uint8).repeat(16, 0).repeat(16, 1)).save(culprit)
    else:
        culprit.unlink()
        culprit = source / "images" / "p03_001.png"
    root = tmp_path / "root"
    assert prepare("Mine", source, root) == 1
    err = capsys.readouterr().err
    assert f"error: {culprit}: " in err and expected in err
    assert not root.exists() or list(root.iterdir()) == []  # no temporary folder left, no dataset folder
    if damage == "three_labels":  # --labels says which values are infection
        assert prepare("Mine", source, root, "--labels", "1,2") == 0


def test_a_name_or_option_that_does_not_fit_is_refused(png_source, tmp_path, capsys):
    root = tmp_path / "root"
    assert prepare("Mine-grouped", png_source, root) == 1
    assert prepare("CT100", png_source, root, "--seed", "1") == 1
    err = capsys.readouterr().err
    assert "reserved" in err and "--seed: for a dataset of your own; CT100 is built in" in err


# --- prepare: NIfTI volumes ----------------------------------------------------------------------------

def test_nifti_volumes_are_cut_windowed_and_keep_their_spacing(nifti_source, tmp_path):
    root = tmp_path / "root"
    assert prepare("Vols", nifti_source, root) == 0
    record = json.loads((root / "Vols" / "dataset.json").read_text())
    assert (record["n_slices"], record["n_patients"], record["n_dropped_empty"]) == (15, 5, 5)  # slice 0 is empty
    assert record["volumes"]["case2"]["spacing"] == {"row_mm": 0.7, "col_mm": 0.8, "slice_mm": 2.5}
    assert np.allclose(record["volumes"]["case2"]["affine"], AFFINE)
    assert record["slices"]["case2_0003"] == {"patient": "case2", "volume": "case2", "z": 3}
    hu = np.asarray(nib.load(str(nifti_source / "images" / "case2.nii.gz")).dataobj)
    expected = np.rint((np.clip(hu[:, :, 3].T.astype(np.float64), -1250, 250) + 1250) * 255 / 1500).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(root / "Vols" / "tr_im" / "case2_0003.png")), expected)
    assert ds.patient_map("Vols", root).volume_of("case2_0003") == "case2"
    # along axis 0, with the empty slices kept: one slice per row of the volume
    assert prepare("Rows", nifti_source, root, "--slice-axis", "0", "--empty-slices", "keep") == 0
    assert json.loads((root / "Rows" / "dataset.json").read_text())["n_slices"] == 5 * SIDE


def test_a_mask_volume_with_another_affine_is_named(tmp_path, capsys):
    source = write_nifti_source(tmp_path / "src")
    mask = source / "masks" / "case1.nii.gz"
    nib.Nifti1Image(np.asarray(nib.load(str(mask)).dataobj), np.eye(4)).to_filename(str(mask))
    assert prepare("Vols", source, tmp_path / "root") == 1
    assert f"error: {mask}: its affine" in capsys.readouterr().err


def test_help_explains_the_layouts_and_predict(capsys):
    for argv in (["prepare", "--help"], ["predict", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    text = " ".join(capsys.readouterr().out.split())
    assert "SOURCE/images/<id>.png" in text and "<case>_<z:04d>" in text and "splits.json" in text
    assert "--resplit" in text and "fewer than 5 patients is refused" in text.lower()
    assert "a NIfTI mask (0/1, uint8) with the input's shape, affine and header" in text and "--dataset NAME --fold K" in text


def test_compare_without_the_data_root_says_where_it_looked(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    assert main(["compare", "--dataset", "Mine", "--results", str(tmp_path / "results"),
                 "--data-root", str(tmp_path / "elsewhere")]) == 1
    assert f"no {tmp_path / 'elsewhere' / 'Mine' / 'dataset.json'}" in capsys.readouterr().err


# --- predict -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2])
def test_predicted_slices_go_back_where_they_came_from(axis):
    volume = np.random.default_rng(axis).random((6, 7, 8)) > 0.5
    slices = [get_slice(volume, axis, z) for z in range(volume.shape[axis])]
    assert np.array_equal(inference.mask_volume(slices, volume.shape, axis), volume.astype(np.uint8))


@pytest.fixture(scope="module")
def released_style_weights(tmp_path_factory) -> Path:
    """A plain MiniSeg state_dict (as the authors release theirs): no input statistics recorded."""
    from models import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "MiniSeg_CrossVal1.pth"
    torch.save(create_model("miniseg").state_dict(), path)
    return path


@pytest.mark.parametrize("shape", [(SIDE, SIDE, 3), (SIDE, SIDE, 3, 1)])
def test_predict_on_a_nifti_volume_keeps_its_shape_affine_and_header(released_style_weights, tmp_path, shape,
                                                                     one_thread, capsys):
    scan = tmp_path / "scan.nii.gz"
    image = nib.Nifti1Image(np.random.default_rng(1).integers(-1000, 200, shape).astype(np.int16), AFFINE)
    image.header.set_xyzt_units("mm", "sec")
    image.to_filename(str(scan))
    out = tmp_path / "scan_mask.nii.gz"
    argv = ["predict", "--model", "miniseg", "--weights", str(released_style_weights), "--input", str(scan),
            "--out", str(out), "--device", "cpu"]
    assert main(argv) == 1  # released weights record no statistics: they must be given
    assert "records no input statistics" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--mean", "0.3", "--std", "0.2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["normalization"]["source"] == "the given --mean/--std" and summary["n_slices"] == 3
    mask, scan_image = nib.load(str(out)), nib.load(str(scan))
    assert mask.shape == shape and np.array_equal(mask.affine, scan_image.affine)
    assert np.array_equal(mask.header.get_sform(), scan_image.header.get_sform())
    assert mask.header.get_zooms()[:3] == image.header.get_zooms()[:3] and mask.header.get_xyzt_units() == ("mm", "sec")
    assert mask.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    assert main([*argv, "--mean", "0.3", "--std", "0.2"]) == 1 and "already exists" in capsys.readouterr().err


GREY_PLUGIN = '''
from torch import nn
from models import register_model

@register_model("owndata-test-grey", family="test")
def grey(num_classes=2, in_channels=3):
    return nn.Conv2d(in_channels, num_classes, 1)
'''


def test_predict_backend_runs_one_exported_graph_per_size_it_runs_at(tmp_path, capsys, one_thread):
    """A 1x1 conv whose foreground logit is the normalised grey predicts 'grey/255 > mean': through ONNX Runtime,
    on slices of two sizes (two graphs, each exported at its size), the masks are exactly that; with --size, the
    slices of both sizes run through one graph."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    plugin, weights, slices = tmp_path / "grey_models.py", tmp_path / "grey.pth", tmp_path / "slices"
    plugin.write_text(GREY_PLUGIN)
    conv = torch.nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[1, 0] = 1.0
    torch.save(conv.state_dict(), weights)
    rng = np.random.default_rng(3)
    slices.mkdir()
    for name, side in (("a", 32), ("b", 48), ("c", 32)):
        Image.fromarray(rng.integers(0, 256, (side, side)).astype(np.uint8)).save(slices / f"{name}.png")
    argv = ["predict", "--plugin", str(plugin), "--model", "owndata-test-grey", "--weights", str(weights), "--input",
            str(slices), "--out", str(tmp_path / "masks"), "--mean", "0.41", "--std", "0.2", "--device", "cpu"]
    assert main([*argv, "--precision", "bf16"]) == 1  # a runtime's precision, not torch's
    assert "--precision bf16 does not go with --backend torch" in capsys.readouterr().err
    assert main([*argv, "--backend", "onnxruntime", "--exporter", "torchscript", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["backend"], summary["precision"]) == ("onnxruntime", "fp32")
    graphs = summary["deployment"]["graphs"]
    assert [(g["size"], g["exporter"], g["execution_precision"]) for g in graphs] == [
        ([32, 32], "torchscript", "fp32"), ([48, 48], "torchscript", "fp32")]
    for name in ("a", "b", "c"):
        grey = np.asarray(Image.open(slices / f"{name}.png")).astype(np.float32) / 255
        mask = np.asarray(Image.open(tmp_path / "masks" / f"{name}.png")) > 0
        assert np.array_equal(mask, grey > np.float32(0.41)) and mask.any() and not mask.all(), name
    argv[argv.index(str(tmp_path / "masks"))] = str(tmp_path / "masks32")
    assert main([*argv, "--backend", "onnxruntime", "--exporter", "torchscript", "--size", "32", "--json"]) == 0
    graphs = json.loads(capsys.readouterr().out)["deployment"]["graphs"]
    assert [g["size"] for g in graphs] == [[32, 32]]  # both slice sizes run at 32 px: one graph


def test_fold_statistics_are_those_of_the_fold_training_slices(png_source, tmp_path):
    root = tmp_path / "root"
    assert prepare("Mine", png_source, root) == 0
    folds = ds.get_folds("Mine", root)
    train = ds.load_dataset("Mine", root, ids=ds.train_ids(folds, 2)).images
    stats = inference.input_stats({}, Path("w.pth"), dataset="Mine", fold=2, data_root=root)
    assert (stats.mean, stats.std) == ds.normalization_stats(train)
    with pytest.raises(ValueError, match="folds 0..4"):
        inference.input_stats({}, Path("w.pth"), dataset="Mine", fold=5, data_root=root)


# --- end to end: prepare, train, compare, report, predict ----------------------------------------------

@pytest.mark.slow  # ~10 s of CPU: 10 one-epoch smoke jobs on 18 slices of 32 px
def test_own_dataset_end_to_end(png_source, tmp_path, one_thread, capsys):
    root, results, reports = tmp_path / "root", tmp_path / "results", tmp_path / "reports"
    assert prepare("Clinic", png_source, root) == 0
    assert main(["train", "--models", "miniseg,enet", "--datasets", "Clinic", "--folds", "0-4", "--protocol", "smoke",
                 "--set", "epochs=1", "--data-root", str(root), "--results", str(results), "--device", "cpu",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", "--dataset", "Clinic", "--data-root", str(root), "--results", str(results), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["models"]) == {"miniseg", "enet"} and result["n_cases"] == 18
    assert (result["resampled"], result["n_clusters"]) == ("patients", 6)  # the bootstrap resamples its patients
    assert main(["report", "--results", str(results), "--out", str(reports), "--data-root", str(root)]) == 0
    capsys.readouterr()
    table = (reports / "tables" / "table5_accuracy.md").read_text()
    block = table[table.index("## Table 5, Clinic"):]
    header = next(line for line in block.splitlines() if line.startswith("| Method"))
    assert header.startswith("| Method (paper) | Ours | Source | Folds | mIoU | SEN | SPC | DSC | HD |")
    assert " paper |" not in header and "Δ" not in header and "| 5/5 |" in block
    assert "| mIoU paper |" in table[table.index("## Table 5, CT100"):]  # the built-in blocks keep the paper's columns
    assert (reports / "stats" / "compare_Clinic.json").is_file()
    # evaluate finds the five runs' last.pt through {fold0} (fold0..fold4) and scores them as training did
    runs = results / "runs" / "Clinic" / "miniseg"
    assert main(["evaluate", "--dataset", "Clinic", "--data-root", str(root), "--results", str(results), "--model",
                 "miniseg", "--weights", str(runs / "fold{fold0}" / "last.pt"), "--label", "ours", "--precision",
                 "float32", "--device", "cpu", "--json"]) == 0
    capsys.readouterr()
    record = json.loads((results / "eval" / "Clinic" / "ours.json").read_text())
    assert record["source"]["normalization"] == ["fold"] * 5  # the statistics each last.pt records
    scored = pd.read_csv(results / "eval" / "Clinic" / "ours.csv").set_index("id")
    trained = pd.concat(pd.read_csv(runs / f"fold{k}" / "per_slice.csv") for k in range(5)).set_index("id")
    assert sorted(scored.index) == sorted(trained.index) and len(scored) == 18
    counts = ["tp", "fp", "fn", "tn"]  # the same pixels predicted, slice by slice
    assert np.array_equal(scored.loc[trained.index, counts].to_numpy(), trained[counts].to_numpy())
    # the trained model segments new slices, with the statistics and size it was trained with
    masks = tmp_path / "masks"
    assert main(["predict", "--weights", str(results / "runs" / "Clinic" / "miniseg" / "fold0" / "last.pt"),
                 "--input", str(png_source / "images"), "--out", str(masks), "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "miniseg" and summary["normalization"]["source"] == "the statistics recorded in last.pt"
    written = sorted(masks.glob("*.png"))
    assert [p.stem for p in written] == sorted(p.stem for p in (png_source / "images").glob("*.png"))
    assert np.asarray(Image.open(written[0])).shape == (SIDE, SIDE)


@pytest.mark.shared_data
def test_predict_with_released_weights_reproduces_the_released_map(shared_data, release_dir, ct100_dir, tmp_path,
                                                                   one_thread):
    """The authors' CT100 fold-1 weights, normalised with that fold's training slices (--dataset/--fold), in
    float64: the released map of a test slice, pixel for pixel."""
    maps = release_dir / "SegMaps" / "COVID-19-CT100" / "CrossVal1"
    slice_file = sorted(maps.glob("*.png"))[0]
    out = tmp_path / "masks"
    assert main(["predict", "--model", "miniseg", "--weights",
                 str(release_dir / "Pretrained" / "COVID-19-CT100" / "MiniSeg_CrossVal1.pth"), "--dataset", "CT100",
                 "--fold", "0", "--data-root", str(shared_data), "--input", str(ct100_dir / "tr_im" / slice_file.name),
                 "--out", str(out), "--precision", "float64", "--device", "cpu"]) == 0
    ours, released = (np.asarray(Image.open(p)) > 0 for p in (out / slice_file.name, slice_file))
    assert released.any() and np.array_equal(ours, released)


def test_a_hand_edited_split_that_puts_a_patient_in_two_folds_is_refused(png_source, tmp_path):
    assert prepare("Mine", png_source, tmp_path) == 0
    path = tmp_path / "Mine" / "splits.json"
    data = json.loads(path.read_text())
    moved = data["folds"][0].pop()  # one slice of a fold-0 patient into fold 1: that patient is now in two folds
    data["folds"][1].append(moved)
    path.write_text(json.dumps(data))
    ds.clear_cache()
    patient = moved.split("_")[0]  # ids are p<NN>_<k>
    with pytest.raises(BadValue, match=rf"splits.json: patient '{patient}' is in fold 0 and fold 1"):
        ds.get_folds("Mine", tmp_path)


def test_a_damaged_split_file_is_named_by_the_loader_and_by_prepare(png_source, tmp_path, capsys):
    assert prepare("Mine", png_source, tmp_path) == 0
    path = tmp_path / "Mine" / "splits.json"
    path.write_text(json.dumps({"schema": "something/else", "folds": []}))
    ds.clear_cache()
    with pytest.raises(BadValue, match=r"splits.json: not a split file \(expected schema miniseg-bench/folds/1"):
        ds.get_folds("Mine", tmp_path)
    capsys.readouterr()
    assert prepare("Mine", png_source, tmp_path, "--force") == 1
    assert f"error: {path}: not a split file (remove it or pass --resplit" in capsys.readouterr().err
