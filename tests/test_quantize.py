"""INT8 deployment: the exported graph quantised (QDQ) on training slices only, run with integer kernels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.cli import main
from benchmark.deploy.agreement import agreement, eager_logits, reference_slice
from benchmark.deploy.backends import adapter, plan_targets
from benchmark.deploy.evaluate import FoldDeployer, deployment_target
from benchmark.deploy.export import export_onnx
from benchmark.deploy.quantize import (CALIBRATION_SLICES, Calibration, evenly_spaced, int8_path, profile_calibration,
                                       quantize_int8)
from benchmark.env import device_slug
from benchmark.errors import Unavailable
from benchmark.evaluation import evaluate

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
CPU = torch.device("cpu")
SIDE = 32


def conv_net() -> nn.Module:
    """Three convolutions with fp32 layers between them, seeded: what the quantiser takes and leaves."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.PReLU(8),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1)).eval()


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """(model, fp32 export, int8 result) of `conv_net` at 32 px, calibrated on 16 synthetic slices."""
    folder = tmp_path_factory.mktemp("int8")
    model = conv_net()
    export = export_onnx(model, "conv", folder / "conv.onnx", SIDE, "torchscript")
    assert export.ok, export.error
    calibration = profile_calibration(SIDE, None)
    return model, export, quantize_int8(export.path, int8_path(export.path), calibration)


def test_calibration_slices_are_evenly_spaced_and_never_more_than_asked():
    assert evenly_spaced(79, 16).tolist()[:3] == [0, 5, 10] and evenly_spaced(79, 16)[-1] == 78
    assert len(evenly_spaced(79, 16)) == 16 and len(set(evenly_spaced(79, 16).tolist())) == 16
    assert evenly_spaced(5, 16).tolist() == [0, 1, 2, 3, 4]


def test_profile_calibration_without_ct100_is_seeded_synthetic_and_normalised(tmp_path):
    first, second = profile_calibration(SIDE, tmp_path), profile_calibration(SIDE, tmp_path)
    assert first.inputs.shape == (CALIBRATION_SLICES, 3, SIDE, SIDE) and first.inputs.dtype == np.float32
    assert np.array_equal(first.inputs, second.inputs) and first.source.startswith("synthetic (seeds 1-16")
    assert abs(float(first.inputs.mean())) < 1e-4 and abs(float(first.inputs.std()) - 1) < 1e-3
    assert not np.array_equal(first.inputs[0], first.inputs[1])  # distinct slices, not one slice 16 times


@pytest.mark.shared_data
def test_profile_calibration_takes_ct100_fold_1_training_slices_not_the_agreement_slice(shared_data):
    from benchmark.datasets import get_folds

    calibration = profile_calibration(64, shared_data)
    folds = get_folds("COVID-19-CT100", shared_data)
    assert "tr_im_0000" in folds[0]  # the agreement slice is a test slice of fold 1
    assert calibration.source.startswith("COVID-19-CT100 fold 1's training slices (16 of 79")
    agreement_input, _ = reference_slice(64, shared_data)
    assert not any(np.allclose(x[0] - x[0].mean(), agreement_input[0, 0] - agreement_input[0, 0].mean(), atol=1e-3)
                   for x in calibration.inputs)


def test_int8_graph_is_written_whole_and_describes_itself(quantized):
    _, export, result = quantized
    assert result.ok and result.path == export.path.with_name("conv_int8.onnx") and result.path.is_file()
    assert sorted(p.name for p in export.path.parent.iterdir()) == ["conv.onnx", "conv_int8.onnx"]  # no temporaries
    described = result.to_dict()
    assert described["format"] == "QDQ" and described["calibration_slices"] == 16 and described["error"] is None
    assert described["calibration"].startswith("synthetic")


def test_onnxruntime_runs_the_int8_graph_with_integer_kernels_close_to_eager(quantized):
    model, _, result = quantized
    target = deployment_target("onnxruntime", CPU, "int8")
    session = adapter("onnxruntime").open(result.path, target, threads=1)
    inputs, _ = reference_slice(SIDE, None)
    match = agreement(eager_logits(model, inputs), session.run(inputs))
    assert session.execution_precision() == "int8"
    assert session.details()["integer_nodes"] == 3  # the three convolutions became QLinearConv
    assert match["finite"] and match["argmax_agreement"] >= 0.95
    assert 0 < match["max_abs_diff"] < 0.1 * match["max_abs_reference"]  # quantised: close, not identical


def test_openvino_runs_the_int8_graph_in_int8(quantized):
    pytest.importorskip("openvino")
    model, _, result = quantized
    session = adapter("openvino").open(result.path, deployment_target("openvino", CPU, "int8"), threads=1)
    inputs, _ = reference_slice(SIDE, None)
    match = agreement(eager_logits(model, inputs), session.run(inputs))
    assert session.execution_precision() == "int8" and session.details()["runtime_precisions"].get("i8", 0) >= 3
    assert match["argmax_agreement"] >= 0.95 and not session.notes


def test_a_graph_the_quantiser_cannot_read_is_a_result_with_its_reason(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    calibration = Calibration(np.zeros((2, 3, SIDE, SIDE), np.float32), "zeros")
    result = quantize_int8(broken, int8_path(broken), calibration)
    assert not result.ok and result.path is None and result.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx"]  # nothing half-written


def test_int8_runs_only_when_asked_for():
    pytest.importorskip("openvino")
    auto = plan_targets(["onnxruntime", "openvino"], CPU, None)
    assert auto and all(t.precision != "int8" for t in auto)
    asked = plan_targets(["onnxruntime", "openvino"], CPU, ["int8"])
    assert [(t.backend, t.precision, t.skip) for t in asked] == [("onnxruntime", "int8", None),
                                                                  ("openvino", "int8", None)]


def test_fold_deployer_without_training_slices_refuses_int8(tmp_path):
    deployer = FoldDeployer("conv", deployment_target("onnxruntime", CPU, "int8"), tmp_path, 1, "torchscript")
    with pytest.raises(Unavailable, match="int8 needs calibration slices"):
        deployer(conv_net(), 1, (SIDE, SIDE))


def test_predict_refuses_int8_it_has_nothing_to_calibrate_on(tmp_path, capsys):
    argv = ["predict", "--weights", str(tmp_path / "w.pt"), "--model", "miniseg", "--input", str(tmp_path),
            "--out", str(tmp_path / "out"), "--backend", "onnxruntime", "--precision", "int8"]
    assert main(argv) == 1
    assert "no training slices to calibrate on" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


class _Recorder:
    """A deploy hook that keeps what each fold handed it and runs a model predicting background everywhere."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, object]] = []

    def __call__(self, model, fold, size, training):
        self.seen.append((fold, training))
        return _Background()


class _Background(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.ones_like(x[:, 0]), torch.zeros_like(x[:, 0])], dim=1)


def test_evaluate_hands_the_hook_each_folds_training_slices_normalised_as_its_test_slices(tmp_path, monkeypatch):
    import models

    from benchmark.datasets import get_folds, load_dataset, normalization_stats

    root = tmp_path / "data"
    data = load_dataset("synthetic", root)
    for k in range(1, 6):
        torch.save(nn.Conv2d(3, 2, 1).state_dict(), tmp_path / f"w{k}.pth")
    monkeypatch.setattr(models, "create_model", lambda name: nn.Conv2d(3, 2, 1))
    hook = _Recorder()
    evaluate.evaluate_weights("synthetic", root, "conv", str(tmp_path / "w{fold}.pth"), normalization="fold",
                              deploy=hook)
    folds, index = get_folds("synthetic", root), {i: n for n, i in enumerate(data.ids)}
    assert [fold for fold, _ in hook.seen] == [1, 2, 3, 4, 5]
    for (k, training), test_ids in zip(hook.seen, folds):
        expected = data.images[[index[i] for fold in folds if fold is not test_ids for i in fold]]
        assert np.array_equal(training.images, expected)  # the other four folds, none of fold k's slices
        mean, std = normalization_stats(expected)
        x = training.take([0, 3])
        assert x.shape == (2, 3, *expected.shape[1:]) and x.dtype == np.float32
        np.testing.assert_allclose(x[1, 2], (expected[3] / np.float32(255) - mean) / std, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_evaluate_int8_scores_the_quantised_graph_and_records_its_calibration(tmp_path, capsys):
    """The 1x1 'grey > fold mean' conv quantised per fold: its maps are the exact ones but for pixels within a
    quantisation step of the threshold (none, here: a step is about one grey level), and the record says how each
    fold was calibrated and that it ran int8."""
    from test_deploy import evaluate_grey_conv

    agree = evaluate_grey_conv(tmp_path, "int8-test-grey", "--backend", "onnxruntime", "--precision", "int8")
    capsys.readouterr()
    assert float(np.mean(agree)) >= 0.99  # int8 moves the threshold by at most a quantisation step
    path = tmp_path / "results" / "eval" / "synthetic" / "int8-test-grey-onnxruntime-int8.json"
    deployment = json.loads(path.read_text())["source"]["deployment"]
    assert deployment["precision"] == deployment["execution_precision"] == "int8"
    for k, fold in enumerate(deployment["folds"], start=1):
        assert fold["quantization"]["calibration"] == f"fold {k}'s training slices (16 of 32, evenly spaced)"
        assert fold["quantization"]["error"] is None and fold["execution_precision"] == "int8"


def test_profile_int8_entries_say_how_the_graph_was_quantised(tmp_path, capsys, one_thread):
    argv = ["profile", "--models", "espnet", "--device", "cpu", "--size", "32", "--batch-sizes", "1",
            "--repeats", "1", "--warmup", "0", "--backends", "onnxruntime", "--precisions", "fp32,int8",
            "--exporter", "torchscript", "--export-dir", str(tmp_path / "exports"), "--data-root", str(tmp_path),
            "--results", str(tmp_path / "results")]
    assert main(argv) == 0
    capsys.readouterr()
    record = json.loads((tmp_path / "results" / "profile" / device_slug(CPU) / "espnet.json").read_text())
    assert record["quantization"]["path"].endswith("espnet_32px_int8.onnx")
    assert record["quantization"]["calibration"].startswith("synthetic")
    entries = {e["precision"]: e for e in record["backends"]}
    assert list(entries) == ["fp32", "int8"]
    assert entries["int8"]["status"] == "ok" and entries["int8"]["execution_precision"] == "int8"
    assert entries["int8"]["integer_nodes"] > 0 and entries["fp32"].get("integer_nodes") is None
    assert entries["int8"]["agreement"]["max_abs_diff"] > entries["fp32"]["agreement"]["max_abs_diff"]


def test_auto_plus_int8_is_each_runtimes_default_and_int8():
    pytest.importorskip("openvino")
    from benchmark.deploy import parse_precisions

    assert parse_precisions("auto,int8") == ["auto", "int8"] and parse_precisions("auto") is None
    planned = plan_targets(["torch", "onnxruntime", "openvino"], CPU, parse_precisions("auto,int8"))
    default = plan_targets(["onnxruntime", "openvino"], CPU, None)
    assert [t.key for t in planned] == [t.key for t in default[:1]] + ["onnxruntime:CPUExecutionProvider:int8"] + [
        t.key for t in default[1:]] + ["openvino:CPU:int8"]
    assert all(t.skip is None for t in planned)  # no bf16 asked of ONNX Runtime's CPU provider, as fp32,bf16 would
