"""evaluate: predict(), maps and weights paths, clear errors, the CLI, and the paper's Table 5 MiniSeg rows."""
from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from benchmark import cli, normalization
from benchmark.evaluation import evaluate
from benchmark.datasets import get_folds, load_dataset, normalization_stats

# The paper's Table 5 MiniSeg rows (benchmark/paper/table5_accuracy.csv).
CT100_ROW = {"miou": 82.15, "sen": 84.95, "spc": 97.72, "dsc": 75.91, "hd": 74.42}
P1110_ROW = {"miou": 78.33, "sen": 79.62, "spc": 97.71, "dsc": 64.84, "hd": 71.69}
CT100_WEIGHTS = "Pretrained/COVID-19-CT100/MiniSeg_CrossVal{fold}.pth"


def _assert_row(mean: dict, row: dict, hd_tol: float = 0.01) -> None:
    for key, expected in row.items():
        assert mean[key] == pytest.approx(expected, abs=hd_tol if key == "hd" else 0.01), key


def _run_json(argv: list[str], capsys) -> dict:
    assert cli.main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


# --- predict -----------------------------------------------------------------------------------


class ThresholdModel(nn.Module):
    """Logits (0, x) per pixel, so argmax is 'normalised input > 0'; records how it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[bool, bool, tuple[int, ...]]] = []

    def forward(self, x: torch.Tensor):
        self.calls.append((self.training, torch.is_grad_enabled(), tuple(x.shape)))
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
        logits = torch.stack([torch.zeros_like(x[:, 0]), x[:, 0]], dim=1)
        return (logits, -logits) if self.training else logits


def test_predict_normalises_replicates_batches_in_eval_mode():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 6, 5), dtype=np.uint8)
    model = ThresholdModel().train()
    pred = evaluate.predict(model, images, mean=0.4, std=0.2, device="cpu", batch_size=3)
    assert pred.dtype == bool and pred.shape == images.shape
    assert np.array_equal(pred, images.astype(np.float32) / 255 > np.float32(0.4))
    assert [c[2][0] for c in model.calls] == [3, 3, 1]
    assert all(not training and not grad for training, grad, _ in model.calls)
    assert model.training  # handed back in the mode it came in


# --- synthetic data: maps, weights, errors ------------------------------------------------------


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    """A data root holding the generated synthetic dataset (128x128 slices, 5 folds of 8)."""
    root = tmp_path_factory.mktemp("synthetic-root")
    load_dataset("synthetic", root, masks_only=True)
    return root


def _write_maps(out_dir: Path, folds: list[list[str]], masks_of: dict[str, np.ndarray]) -> Path:
    for k, ids in enumerate(folds, start=1):
        evaluate.save_fold_maps(out_dir, k, ids, np.stack([masks_of[i] for i in ids]))
    return out_dir


@pytest.fixture()
def perfect_maps(synth_root, tmp_path) -> Path:
    """The synthetic ground truth (128x128, its own grid) written as maps: a perfect prediction."""
    folds = get_folds("synthetic", synth_root)
    data = load_dataset("synthetic", synth_root, masks_only=True)
    return _write_maps(tmp_path / "maps", folds, dict(zip(data.ids, data.masks)))


def test_perfect_maps_paper_policy_scores_empty_slices_zero_strict_skips_them(synth_root, tmp_path):
    """The synthetic slices are all infected, like the real datasets; blank one slice per fold to get
    empty ground truth that a perfect prediction matches."""
    root = tmp_path / "root"
    shutil.copytree(synth_root / "synthetic", root / "synthetic")
    folds = get_folds("synthetic", root)
    for fold in folds:
        Image.fromarray(np.zeros((128, 128), np.uint8)).save(root / "synthetic" / "tr_mask" / f"{fold[0]}.png")
    data = load_dataset("synthetic", root, masks_only=True)
    maps = _write_maps(tmp_path / "maps", folds, dict(zip(data.ids, data.masks)))
    result = evaluate.evaluate_maps("synthetic", root, maps)
    strict, paper = result.summary["strict"], result.summary["paper"]
    assert strict["totals"]["n_empty_both"] == 5 and strict["totals"]["n_slices"] == 40 == len(result.per_slice)
    assert strict["mean"]["dsc"] == pytest.approx(100.0) and strict["mean"]["hd"] == pytest.approx(0.0)
    empty_rows = result.per_slice[result.per_slice.tp + result.per_slice.fn == 0]
    assert len(empty_rows) == 5 and (empty_rows.paper_dsc == 0).all()
    assert paper["mean"]["dsc"] == pytest.approx(100.0 * 7 / 8)  # one of 8 slices per fold scores 0
    assert paper["mean"]["miou"] == pytest.approx(100.0)


def test_missing_map_is_an_error_naming_it(synth_root, perfect_maps):
    victim = next((perfect_maps / "CrossVal3").glob("*.png"))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=str(victim)):
        evaluate.evaluate_maps("synthetic", synth_root, perfect_maps)


def test_wrong_size_map_is_an_error_naming_it(synth_root, perfect_maps):
    """Maps are scored on the masks' own grid (128 px here), as training scores its test fold: a 512 px map is
    an error naming both files, not a silently resized ground truth."""
    victim = next((perfect_maps / "CrossVal2").glob("*.png"))
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(victim)
    mask = synth_root / "synthetic" / "tr_mask" / victim.name
    with pytest.raises(ValueError, match=rf"{victim}: map is 512x512, ground truth is 128x128 \({mask}\)"):
        evaluate.evaluate_maps("synthetic", synth_root, perfect_maps)


def test_map_of_a_slice_from_another_fold_is_an_error_naming_it(synth_root, perfect_maps):
    folds = get_folds("synthetic", synth_root)
    stray = perfect_maps / "CrossVal1" / f"{folds[1][0]}.png"
    shutil.copy(perfect_maps / "CrossVal2" / stray.name, stray)
    with pytest.raises(ValueError, match=rf"{stray}: unknown slice id .* \(it belongs to fold 2\)"):
        evaluate.evaluate_maps("synthetic", synth_root, perfect_maps)


def _save_grey_conv(path_of_fold, **checkpoint) -> None:
    """Per-fold weights of a 1x1 conv whose foreground logit is the normalised grey of channel 0, so its map
    is 'grey > mean': a state_dict, or a checkpoint dict with the given extra keys."""
    conv = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[1, 0] = 1.0
    for k in range(1, 6):
        torch.save({"model": conv.state_dict(), **checkpoint} if checkpoint else conv.state_dict(), path_of_fold(k))


def test_weights_path_runs_each_fold_with_its_training_normalisation(synth_root, tmp_path, monkeypatch):
    """A 1x1 conv model (logit_fg = normalised grey) predicts 'img/255 > fold mean'; --save-maps round-trips."""
    import models

    _save_grey_conv(lambda k: tmp_path / f"w{k}.pth")
    monkeypatch.setattr(models, "create_model", lambda name: nn.Conv2d(3, 2, 1))
    result = evaluate.evaluate_weights(
        "synthetic", synth_root, "conv", str(tmp_path / "w{fold}.pth"), save_maps=tmp_path / "saved",
        normalization="fold",
    )
    folds = get_folds("synthetic", synth_root)
    data = load_dataset("synthetic", synth_root)
    index = {i: n for n, i in enumerate(data.ids)}
    for k, ids in enumerate(folds, start=1):
        train = [index[i] for j, fold in enumerate(folds) if j != k - 1 for i in fold]
        mean, _ = normalization_stats(data.images[train])
        for slice_id in ids[:2]:
            saved = np.asarray(Image.open(tmp_path / "saved" / f"CrossVal{k}" / f"{slice_id}.png")) > 0
            expected = data.images[index[slice_id]].astype(np.float32) / 255 > np.float32(mean)
            assert np.array_equal(saved, expected), (k, slice_id)
    again = evaluate.evaluate_maps("synthetic", synth_root, tmp_path / "saved")
    assert again.summary == result.summary


def test_weights_trained_with_imagenet_statistics_are_run_with_them(synth_root, tmp_path, monkeypatch):
    """A checkpoint of our `train` that records ImageNet normalisation is run with ImageNet's mean/std
    (channel 0: 0.485, 0.229), not the fold's; 'fold' given explicitly overrides it."""
    import models

    _save_grey_conv(lambda k: tmp_path / f"c{k}.pt", protocol={"normalization": "imagenet"})
    monkeypatch.setattr(models, "create_model", lambda name: nn.Conv2d(3, 2, 1))
    monkeypatch.setattr(evaluate, "_collect", lambda *args: types.SimpleNamespace())  # the maps are what counts
    pattern = str(tmp_path / "c{fold}.pt")
    result = evaluate.evaluate_weights("synthetic", synth_root, "conv", pattern, save_maps=tmp_path / "imagenet")
    forced = evaluate.evaluate_weights("synthetic", synth_root, "conv", pattern, save_maps=tmp_path / "fold",
                                       normalization="fold")
    assert result.normalization == ["imagenet"] * 5 and forced.normalization == ["fold"] * 5
    folds = get_folds("synthetic", synth_root)
    data = load_dataset("synthetic", synth_root)
    index = {i: n for n, i in enumerate(data.ids)}
    mean, _ = normalization_stats(data.images[[index[i] for fold in folds[1:] for i in fold]])
    slice_id = folds[0][0]
    grey = data.images[index[slice_id]].astype(np.float64) / 255
    for folder, threshold in (("imagenet", 0.485), ("fold", mean)):
        saved = np.asarray(Image.open(tmp_path / folder / "CrossVal1" / f"{slice_id}.png")) > 0
        assert np.array_equal(saved, grey > threshold), folder
    assert abs(mean - 0.485) > 0.05  # the two normalisations give different maps


def test_a_checkpoint_that_records_its_training_statistics_is_run_with_them(synth_root, tmp_path, monkeypatch):
    """Our last.pt stores the mean/std the model was trained with (computed at the training size): 'auto' uses
    exactly those; the maps are thresholded at the recorded mean 0.7, not at the fold's own mean."""
    import models

    _save_grey_conv(lambda k: tmp_path / f"c{k}.pt", protocol={"normalization": "fold"}, input_mean=[0.7],
                    input_std=[0.1])
    monkeypatch.setattr(models, "create_model", lambda name: nn.Conv2d(3, 2, 1))
    monkeypatch.setattr(evaluate, "_collect", lambda *args: types.SimpleNamespace())
    result = evaluate.evaluate_weights("synthetic", synth_root, "conv", str(tmp_path / "c{fold}.pt"),
                                       save_maps=tmp_path / "maps")
    assert result.normalization == ["fold"] * 5
    data = load_dataset("synthetic", synth_root)
    slice_id = get_folds("synthetic", synth_root)[0][0]
    grey = data.images[list(data.ids).index(slice_id)].astype(np.float64) / 255
    saved = np.asarray(Image.open(tmp_path / "maps" / "CrossVal1" / f"{slice_id}.png")) > 0
    assert np.array_equal(saved, grey > 0.7) and saved.any() and not saved.all()


def test_auto_normalisation_follows_each_models_paper_recipe():
    assert normalization.recipe_normalization("miniseg") == "fold"
    assert normalization.recipe_normalization("pspnet-resnet101") == "imagenet"  # trained from ImageNet weights
    assert normalization.checkpoint_normalization({"model": {}, "protocol": {"normalization": "imagenet"}}) == "imagenet"
    assert normalization.checkpoint_normalization({"conv.weight": torch.zeros(1)}) is None
    assert normalization.checkpoint_statistics({"input_mean": [0.4], "input_std": [0.2]}) == (0.4, 0.2)
    assert normalization.checkpoint_statistics({"input_mean": [0.1, 0.2, 0.3], "input_std": [1.0, 1.0, 1.0]}) == (
        (0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    assert normalization.checkpoint_statistics({"input_mean": [0.4]}) is None
    # what train writes into a checkpoint reads back as it was
    assert normalization.checkpoint_statistics(normalization.checkpoint_fields(0.4, 0.2)) == (0.4, 0.2)
    imagenet = (normalization.IMAGENET_MEAN, normalization.IMAGENET_STD)
    assert normalization.checkpoint_statistics(normalization.checkpoint_fields(*imagenet)) == imagenet


def test_fold0_placeholder_counts_folds_as_our_run_folders_do(tmp_path):
    """`{fold0}` is 0..4 (runs/<dataset>/<model>/fold0..fold4/last.pt), `{fold}` 1..5 (the release's CrossVal):
    the same run folders are found, in fold order, only through `{fold0}`."""
    for k in range(5):
        (tmp_path / f"fold{k}").mkdir()
        (tmp_path / f"fold{k}" / "last.pt").write_bytes(b"")
    paths = evaluate.fold_weight_paths(str(tmp_path / "fold{fold0}" / "last.pt"), 5)
    assert paths == [tmp_path / f"fold{k}" / "last.pt" for k in range(5)]
    with pytest.raises(FileNotFoundError, match=r"fold5[/\\]last\.pt") as found:
        evaluate.fold_weight_paths(str(tmp_path / "fold{fold}" / "last.pt"), 5)
    assert "fold4" not in str(found.value)  # fold1..fold4 exist: only fold5 is missing under 1..5
    with pytest.raises(ValueError, match=r"\{fold\}.*\{fold0\}"):
        evaluate.fold_weight_paths(str(tmp_path / "fold" / "last.pt"), 5)


def test_weights_errors_name_the_file(synth_root, tmp_path):
    with pytest.raises(ValueError, match=r"\{fold\}"):
        evaluate.fold_weight_paths(str(tmp_path / "w.pth"), 5)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "w1.pth")):
        evaluate.fold_weight_paths(str(tmp_path / "w{fold}.pth"), 5)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=rf"{garbage}: not a loadable weights file"):
        evaluate.load_weights(nn.Conv2d(3, 2, 1), garbage, torch.device("cpu"))
    wrong = tmp_path / "wrong.pth"
    torch.save(nn.Conv2d(3, 4, 1).state_dict(), wrong)
    with pytest.raises(ValueError, match=rf"{wrong}: does not fit the model"):
        evaluate.load_weights(nn.Conv2d(3, 2, 1), wrong, torch.device("cpu"))


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_writes_records_and_prints_the_chosen_policy(synth_root, perfect_maps, tmp_path, capsys):
    base = ["evaluate", "--dataset", "synthetic", "--data-root", str(synth_root), "--maps", str(perfect_maps),
            "--results", str(tmp_path / "results"), "--label", "perfect"]
    strict = _run_json(base + ["--policy", "strict"], capsys)
    assert strict["policy"] == "strict" and strict["mean"]["dsc"] == pytest.approx(100.0)
    assert len(strict["folds"]) == 5 and "hd95" in strict["mean"]
    record = json.loads((tmp_path / "results/eval/synthetic/perfect.json").read_text())
    assert record["schema"] == "miniseg-bench/eval/1" and record["policy"] == "paper"
    assert record["source"] == {"kind": "maps", "path": str(perfect_maps), "model": None}
    # every synthetic slice is infected, so a perfect map scores 100 under both policies
    assert record["strict"]["mean"]["dsc"] == pytest.approx(100.0) == record["mean"]["dsc"]
    assert [f["fold"] for f in record["folds"]] == [1, 2, 3, 4, 5]
    assert set(record["mean"]) == {"dsc", "sen", "spc", "hd", "miou"}
    csv = (tmp_path / "results/eval/synthetic" / record["per_slice_csv"]).read_text().splitlines()
    assert len(csv) == 41 and csv[0].startswith("fold,id,tp,fp,fn,tn,paper_dsc")
    assert cli.main(base) == 0
    table = capsys.readouterr().out
    assert "policy paper" in table and "mean" in table and "hd95" not in table


def test_cli_errors_exit_1_with_a_message(synth_root, tmp_path, capsys):
    argv = ["evaluate", "--dataset", "synthetic", "--data-root", str(synth_root), "--results", str(tmp_path)]
    assert cli.main(argv + ["--model", "miniseg"]) == 1
    assert "--model needs --weights" in capsys.readouterr().err
    assert cli.main(argv + ["--maps", str(tmp_path / "nowhere")]) == 1
    assert f"{tmp_path / 'nowhere'}: maps folder not found" in capsys.readouterr().err


def test_help_explains_both_policies(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "paper " in text and "strict " in text and "empty" in text and "HD95" in text


# --- the paper's Table 5 MiniSeg rows from the authors' maps and weights ------------------------


def test_ct100_segmaps_reproduce_the_paper_row(shared_data, release_dir, ct100_dir, tmp_path, capsys):
    out = _run_json(["evaluate", "--dataset", "CT100", "--data-root", str(shared_data),
                     "--maps", str(release_dir / "SegMaps/COVID-19-CT100"), "--results", str(tmp_path)], capsys)
    _assert_row(out["mean"], CT100_ROW)
    assert [f["n_slices"] for f in out["folds"]] == [20, 20, 20, 20, 19]


@pytest.fixture(scope="module")
def p1110_root(shared_data, tmp_path_factory) -> Path:
    """P1110 ground truth prepared from the 50 real mask volumes (`prepare --masks-only`)."""
    source = shared_data / "COVID-19-P1110"
    if not (source / "masks").is_dir():
        pytest.skip(f"real data not present: {source / 'masks'}")
    root = tmp_path_factory.mktemp("p1110-root")
    argv = ["prepare", "--dataset", "P1110", "--masks-only", "--source", str(source), "--data-root", str(root)]
    assert cli.main(argv) == 0
    return root


def test_p1110_segmaps_reproduce_the_paper_row(p1110_root, release_dir):
    result = evaluate.evaluate_maps("P1110", p1110_root, release_dir / "SegMaps/COVID-19-P1110")
    _assert_row(result.summary["paper"]["mean"], P1110_ROW, hd_tol=1.0)
    assert result.summary["paper"]["totals"]["n_slices"] == 785


@pytest.mark.slow
def test_ct100_released_weights_reproduce_the_row_and_the_maps(shared_data, release_dir, ct100_dir, tmp_path, capsys):
    saved = tmp_path / "maps"
    out = _run_json(["evaluate", "--dataset", "CT100", "--data-root", str(shared_data), "--model", "miniseg",
                     "--weights", str(release_dir / CT100_WEIGHTS), "--device", "cpu",
                     "--save-maps", str(saved), "--results", str(tmp_path)], capsys)
    _assert_row(out["mean"], CT100_ROW)
    released = sorted((release_dir / "SegMaps/COVID-19-CT100").glob("CrossVal*/*.png"))
    assert len(released) == 99 and len(list(saved.glob("CrossVal*/*.png"))) == 99
    for path in released:
        ours = saved / path.relative_to(release_dir / "SegMaps/COVID-19-CT100")
        assert np.array_equal(np.asarray(Image.open(ours)), np.asarray(Image.open(path))), path.name


def test_predict_in_float64_hands_the_model_back_in_float32():
    model = nn.Conv2d(3, 2, 1)
    images = np.random.default_rng(1).integers(0, 256, size=(2, 8, 8), dtype=np.uint8)
    as32 = evaluate.predict(model, images, 0.5, 0.25, "cpu", dtype=torch.float32)
    as64 = evaluate.predict(model, images, 0.5, 0.25, "cpu", dtype=torch.float64)
    assert model.weight.dtype == torch.float32
    assert (as32 != as64).mean() < 0.01  # the same decisions up to near-ties
