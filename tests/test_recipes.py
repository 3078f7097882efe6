"""Each paper row's effective recipe under `paper` and `uniform`, checked against PROTOCOL.md's facts;
the pre-run checks of `train`; `train --dry-run --json`."""
from __future__ import annotations

import json

import pytest

from benchmark import cli
from benchmark.paper import paper_rows, registered_rows, table4
from benchmark.preflight import TrainRequest, run_checks
from benchmark.protocol import PRESETS, get_protocol
from benchmark.recipes import ROWS, effective_recipe, resolve
from models import get_model_info

# PROTOCOL.md, "The baselines as the authors trained them (release full_code/)" and "Training recipe".
TRAIN_PRETRAIN = {"FCN-8s", "PSPNet", "DFN", "DeepLabv3", "DeepLabv3+", "OCNet", "DUpsampling", "DANet", "EncNet",
                  "BiSeNet", "ShuffleNet", "ShuffleNetv2", "MobileNet", "MobileNetv2", "EfficientNet", "ANNNet",
                  "CCNet", "GFF"}
TRAIN_BL = {"U-Net", "UNet++", "Attention U-Net", "ESPNet", "EDANet", "ESPNetv2", "ENet", "CGNet", "SegNet", "FRRN",
            "DenseASPP", "LEDNet"}
TRAIN_INFNET = {"Inf-Net"}
ROOT = {"MiniSeg"}
MAIN_PLUS_AUX = {"DFN": (1.0, 0.4), "ANNNet": (1.0, 0.4)}
SCRIPT_PATH = {**{r: "full_code/trainPretrain.py" for r in TRAIN_PRETRAIN},
               **{r: "full_code/train_bl.py" for r in TRAIN_BL}, "Inf-Net": "full_code/trainInfNet.py"}
MULTI_SCALE = ((1.5, 50), (1.25, 50), (0.75, 16), (1.0, 16))
NO_IMAGENET_WEIGHTS_HERE = {"ShuffleNet"}  # ShuffleNet v1: in neither torchvision nor timm


def imagenet_rows() -> set[str]:
    """Table 4's ImageNet-pretrained column."""
    t4 = table4()
    return set(t4.loc[t4["imagenet_pretrained"] == "yes", "method"])


def test_the_scripts_partition_the_32_rows_and_the_table_holds_each_once():
    rows = set(paper_rows())
    assert len(rows) == 32 and TRAIN_PRETRAIN | TRAIN_BL | TRAIN_INFNET | ROOT == rows
    assert not (TRAIN_PRETRAIN & TRAIN_BL) and set(ROWS) == rows


@pytest.mark.parametrize("row", paper_rows())
def test_each_rows_recipe_under_paper_and_uniform_is_protocol_md(row):
    model = registered_rows().get(row)
    assert model is not None, f"no registered model stands for the paper's {row} row"
    info = get_model_info(model)
    imagenet = row in imagenet_rows() and row not in NO_IMAGENET_WEIGHTS_HERE
    assert info.pretrained_backbone == (row in imagenet_rows()), "the registry disagrees with Table 4"

    paper, exception = resolve(PRESETS["paper"], model)
    assert (paper.lr, paper.batch_size, paper.epochs, paper.crop_prob, paper.flip_prob) == (1e-3, 5, 80, 0.5, 0.5)
    assert paper.passes == (MULTI_SCALE if row in ROOT else ((1.0, 16),))
    assert paper.normalization == ("imagenet" if row in TRAIN_PRETRAIN | TRAIN_INFNET else "fold")
    assert paper.pretrained is imagenet
    assert paper.loss == ("bce" if row in TRAIN_INFNET else "ce-weighted")
    if row in ROOT:
        expected_heads = info.aux_weights
    elif row in TRAIN_INFNET:
        expected_heads = (1.0, 0.4, 0.4, 0.4)
    else:
        expected_heads = MAIN_PLUS_AUX.get(row, (1.0,) + (0.0,) * (len(info.aux_weights) - 1))
    assert paper.aux_weights == expected_heads and len(paper.aux_weights) == len(info.aux_weights)
    if row in ROOT:
        assert exception is None
    else:
        assert exception["script"] == SCRIPT_PATH[row] and exception["recipe"] == "paper"
        assert SCRIPT_PATH[row] in exception["text"] and row in exception["text"]
        assert ("trained from scratch" in " ".join(exception["deviations"])) == (row in NO_IMAGENET_WEIGHTS_HERE)

    uniform, exception = resolve(PRESETS["uniform"], model)
    assert uniform.passes == MULTI_SCALE and uniform.loss == "ce-weighted" and uniform.aux_weights == info.aux_weights
    assert uniform.pretrained is imagenet and uniform.normalization == ("imagenet" if imagenet else "fold")
    assert (uniform.lr, uniform.batch_size, uniform.epochs) == (1e-3, 5, 80)
    assert (exception is None) == (not imagenet and row not in NO_IMAGENET_WEIGHTS_HERE)


def test_library_models_and_ablations():
    """No paper row: the uniform recipe under every preset, said so; MiniSeg's ablations: the root recipe."""
    smp, exception = resolve(PRESETS["paper"], "smp-unet-resnet34")
    assert smp.passes == MULTI_SCALE and smp.normalization == "fold" and exception["recipe"] == "uniform"
    assert "no row in the paper" in exception["text"]
    assert resolve(PRESETS["uniform"], "smp-unet-resnet34")[1] is None
    ablation, exception = resolve(PRESETS["paper"], "miniseg-ah")
    assert ablation.passes == MULTI_SCALE and exception is None
    fast, exception = resolve(PRESETS["fast"], "pspnet-resnet101")
    assert fast.epochs == 10 and fast.pretrained and exception["script"] == "full_code/trainPretrain.py"


def test_user_fields_win_and_are_recorded_as_deviations():
    protocol = get_protocol("paper", ["pretrained=false", "bn_init=torch041"])
    effective, exception = resolve(protocol, "pspnet-resnet101")
    assert not effective.pretrained and effective.normalization == "imagenet" and effective.bn_init == "torch041"
    assert exception["deviations"] == ["pretrained=False set with --set (the recipe's: True)"]
    assert effective.to_dict()["differs_from_preset"] == ["bn_init", "pretrained"]
    view = effective_recipe(protocol, "pspnet-resnet101")
    assert view["pretrained"] is False and "deviations: pretrained=False" in view["protocol_exception"]
    with pytest.raises(ValueError, match=r"aux_weights=\(1.0, 0.4\) needs 1 weights"):
        resolve(get_protocol("paper", ["aux_weights=(1.0, 0.4)"]), "unet")


def _request(preset: str = "paper", assignments: tuple[str, ...] = (), models: tuple[str, ...] = ("miniseg",)):
    return TrainRequest(preset, assignments, models, download=False)


def test_preflight_names_unknown_presets_and_fields_with_what_is_accepted():
    assert run_checks(_request()) == []
    assert run_checks(_request("papers")) == [
        "--protocol 'papers' is not a preset; accepted: paper, uniform, fast, smoke"]
    (problem,) = run_checks(_request(assignments=("lrate=1",)))
    assert problem.startswith("--set: unknown protocol field(s) ['lrate']; fields: name, epochs") and "bn_init" in problem


def test_preflight_rejects_fields_that_do_not_apply_to_a_model():
    problems = run_checks(_request(assignments=("pretrained=true",), models=("unet", "miniseg-ah")))
    assert problems[0] == ("unet: --set pretrained=true does not apply: its builder takes no `pretrained` "
                           "(it has no ImageNet backbone)")
    assert problems[-1].startswith("--set pretrained applies to the models with an ImageNet backbone: ")
    assert "pspnet-resnet101" in problems[-1] and len(problems) == 3
    (problem,) = run_checks(_request(assignments=("aux_weights=(1.0, 0.4)",), models=("enet",)))
    assert "enet: aux_weights=(1.0, 0.4) needs 1 weights" in problem


def test_preflight_missing_imagenet_weights_say_how_to_fetch_or_opt_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (problem,) = run_checks(_request(models=("pspnet-resnet101", "unet")))
    assert problem.startswith("pspnet-resnet101: ImageNet weights torchvision resnet101.IMAGENET1K_V1 are not cached")
    assert "resnet101-63fe2227.pth" in problem and "run_benchmark.py weights --models pspnet-resnet101" in problem
    assert "--set pretrained=false" in problem
    assert run_checks(_request(assignments=("pretrained=false",), models=("pspnet-resnet101",))) == []


def test_train_stops_before_the_first_job_when_a_check_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["train", "--models", "pspnet-resnet101", "--datasets", "synthetic", "--folds", "0",
            "--data-root", str(tmp_path / "data"), "--results", str(tmp_path / "results"), "--no-progress"]
    assert cli.main(argv) != 0
    err = capsys.readouterr().err
    assert "no job was started" in err and "HF_HUB_OFFLINE is set" in err
    assert not (tmp_path / "results").exists()  # no job folder, no record
    assert cli.main(argv[:2] + ["miniseg"] + argv[3:] + ["--protocol", "quick"]) != 0
    assert "accepted: paper, uniform, fast, smoke" in capsys.readouterr().err


def test_dry_run_json_prints_each_jobs_recipe(tmp_path, capsys):
    argv = ["train", "--models", "miniseg,unet,infnet-resnet50", "--datasets", "synthetic", "--folds", "0",
            "--data-root", str(tmp_path), "--results", str(tmp_path), "--dry-run", "--json",
            "--set", "pretrained=false", "--set", "base_size=64"]
    assert cli.main(argv) == 0
    rows = {row["model"]: row["recipe"] for row in json.loads(capsys.readouterr().out)}
    assert rows["miniseg"]["passes"] == [list(p) for p in MULTI_SCALE] and rows["miniseg"]["protocol_exception"] is None
    unet, infnet = rows["unet"], rows["infnet-resnet50"]
    assert (unet["passes"], unet["normalization"], unet["loss"], unet["aux_weights"]) == ([[1.0, 16]], "fold",
                                                                                      "ce-weighted", [1.0])
    assert (infnet["loss"], infnet["aux_weights"], infnet["normalization"]) == ("bce", [1.0, 0.4, 0.4, 0.4],
                                                                                "imagenet")
    assert infnet["pretrained"] is False and "trainInfNet.py" in infnet["protocol_exception"]
    for recipe in rows.values():
        assert {"passes", "lr", "batch_size", "epochs", "normalization", "pretrained", "loss", "aux_weights",
                "protocol_exception"} <= set(recipe) and recipe["base_size"] == 64


def _record(preset: str, model: str, assignments: tuple[str, ...] = ()) -> dict:
    """The parts of a run record that say how it was trained."""
    effective, exception = resolve(get_protocol(preset, assignments), model)
    return {"protocol": effective.to_dict(), "protocol_exception": exception,
            "data": {"size_px": effective.base_size, "score_size_px": 512}}


def test_report_markers_tell_the_presets_apart_and_index_html_has_the_full_text():
    from benchmark.reporting.html import recipes_html
    from benchmark.reporting.load import Entry, Results, recipe_marker, recipe_note

    assert recipe_marker(_record("paper", "miniseg")) == "paper"
    assert recipe_marker(_record("paper", "unet")) == "paper, train_bl.py"
    assert recipe_marker(_record("uniform", "unet")) == "uniform"
    assert recipe_marker(_record("fast", "smp-unet-resnet34", ("base_size=128",))) == "fast, uniform recipe, base_size=128"
    assert recipe_marker(_record("paper", "shufflenet-g3")) == "paper, trainPretrain.py*"
    assert recipe_marker(_record("paper", "pspnet-resnet101", ("pretrained=false",))) == \
        "paper, trainPretrain.py, pretrained=False"
    note = recipe_note(_record("paper", "pspnet-resnet101", ("pretrained=false",)))
    assert note.startswith("preset paper; PSPNet as the authors trained it (full_code/trainPretrain.py)")
    assert note.endswith("set with --set: pretrained=False") and ".;" not in note  # the recipe's text ends in a stop
    old = {"protocol": {"name": "fast", "differs_from_preset": []}, "data": {"size_px": 128}}
    assert "scored on 128 px masks" in recipe_note(old)
    entry = Entry("CT100", "unet", "run", "unet", "U-Net", "trained (uniform)", (),
                  recipe_notes=(recipe_note(_record("uniform", "unet")),))
    html = recipes_html(Results((entry,), (), 1, 0))
    assert "CT100 / unet</strong> (trained (uniform)): preset uniform; the preset&#x27;s base recipe" in html
    assert "so not the paper's own numbers" in html
