"""Deployment: ONNX export and its agreement with eager PyTorch, the runtime adapters, backend entries in
profile records, `evaluate --backend` on real data, and the deployment table of the report."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.cli import main
from benchmark.deploy import parse_backends, parse_precisions
from benchmark.deploy import export as export_module
from benchmark.deploy.agreement import agreement, eager_logits, reference_slice
from benchmark.deploy.backends import Session, Target, adapter, plan_targets
from benchmark.deploy.export import export_onnx
from benchmark.deploy.timing import measure_session, target_entries
from benchmark.env import device_slug
from benchmark.records import PROFILE_SCHEMA
from models import create_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
CPU = torch.device("cpu")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # as conftest.py; absent: a synthetic slice
SIDE = 64  # small slices keep each export and run well under a second


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.PReLU(4), nn.Conv2d(4, 2, 1)).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[nn.Module, object]]:
    """miniseg, espnet and enet at 64 px with the TorchScript exporter (the fast one), randomly initialised."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("exports")
    graphs = {}
    for name in ("miniseg", "espnet", "enet"):
        model = create_model(name).eval()
        graphs[name] = (model, export_onnx(model, name, out / f"{name}.onnx", SIDE, "torchscript"))
    return graphs


# --- options ----------------------------------------------------------------------------------------

def test_backend_and_precision_lists_are_checked():
    assert parse_backends("torch, openvino,torch") == ["torch", "openvino"]
    assert parse_precisions("auto") is None
    assert parse_precisions("fp32,bf16") == ["fp32", "bf16"]
    for bad in ("tensorflow", ""):
        with pytest.raises(ValueError, match="known: torch, onnxruntime, openvino"):
            parse_backends(bad)
    with pytest.raises(ValueError, match="int4"):
        parse_precisions("fp32,int4")


def test_paper_option_selects_the_32_table4_rows():
    from benchmark.commands.profile import model_names

    rows = model_names(None, paper=True)
    assert len(rows) == 32 and "miniseg" in rows and "pspnet-resnet101" in rows
    assert not any(name.startswith("smp-") or name == "pspnet-resnet50" for name in rows)
    assert model_names("unet*", paper=True) == ["unet", "unetplusplus"]
    with pytest.raises(ValueError, match="among the paper rows"):
        model_names("smp-*", paper=True)


# --- export and agreement -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["miniseg", "espnet", "enet"])
def test_exported_graph_agrees_with_eager_on_a_real_or_synthetic_slice(exported, name):
    model, result = exported[name]
    assert result.ok and result.error is None, result.error
    assert (result.exporter, result.opset, result.input_shape) == ("torchscript", 17, ["N", 3, SIDE, SIDE])
    inputs, _ = reference_slice(SIDE, SHARED_DATA)
    session = adapter("onnxruntime").open(result.path, Target("onnxruntime", "CPUExecutionProvider", "fp32"), 1)
    reference = eager_logits(model, inputs)
    match = agreement(reference, session.run(inputs))
    assert match["max_abs_diff"] <= 1e-4 * max(1.0, match["max_abs_reference"])
    assert match["argmax_agreement"] >= 0.999 and match["finite"]
    # The batch dimension is dynamic: two slices at once give each slice's logits.
    pair = np.concatenate([inputs, inputs[:, :, ::-1].copy()])
    assert np.allclose(session.run(pair)[0], session.run(inputs)[0], atol=1e-5)


def test_agreement_figures_are_those_of_the_logits():
    reference = np.zeros((1, 2, 2, 2), dtype=np.float32)
    reference[0, 1] = [[1.0, -1.0], [2.0, 0.5]]  # class 1 wins at three of four pixels
    candidate = reference.copy()
    candidate[0, 1, 0, 1] = 0.25  # flips that pixel's argmax to class 1
    match = agreement(reference, candidate)
    assert match["max_abs_diff"] == pytest.approx(1.25)
    assert match["argmax_agreement"] == 0.75 and match["pixels"] == 4 and match["max_abs_reference"] == 2.0
    with pytest.raises(ValueError, match="shape"):
        agreement(reference, candidate[:, :, :1])


def test_reference_slice_is_the_real_ct100_slice_or_a_synthetic_one(tmp_path):
    synthetic, source = reference_slice(32, tmp_path)
    assert source.startswith("synthetic") and synthetic.shape == (1, 3, 32, 32)
    assert abs(float(synthetic.mean())) < 1e-4 and float(synthetic.std()) == pytest.approx(1.0, abs=1e-3)
    if (SHARED_DATA / "COVID-19-CT100").is_dir():
        _, source = reference_slice(32, SHARED_DATA)
        assert source.endswith("tr_im_0000.png")


@pytest.mark.slow
def test_dynamo_exporter_exports_and_auto_falls_back_to_torchscript(tmp_path, monkeypatch):
    pytest.importorskip("onnxscript")
    result = export_onnx(tiny_net(), "tiny", tmp_path / "tiny.onnx", 16, "dynamo")
    assert result.ok and result.exporter == "dynamo" and result.opset >= 18

    real_export = export_module._export_once

    def dynamo_breaks(net, sample, path, exporter, opset):
        if exporter == "dynamo":
            raise RuntimeError("simulated dynamo failure\nwith a long second line")
        real_export(net, sample, path, exporter, opset)

    monkeypatch.setattr(export_module, "_export_once", dynamo_breaks)
    result = export_onnx(tiny_net(), "tiny", tmp_path / "auto.onnx", 16, "auto")
    assert result.ok and result.exporter == "torchscript"
    assert result.attempts == [{"exporter": "dynamo", "error": "RuntimeError: simulated dynamo failure"},
                               {"exporter": "torchscript", "error": None}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto.onnx", "tiny.onnx"]  # no temporary folder left


PLUGIN = '''
import torch
from torch import nn
from models import register_model

class Eigen(nn.Module):
    """Eigenvalues of 2x2 blocks: no ONNX operator exists for them."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
    def forward(self, x):
        y = self.conv(x)
        block = y[:, :, :2, :2]
        return y + torch.linalg.eigvalsh(block @ block.transpose(-1, -2)).sum()

@register_model("deploy-test-eigen", family="test")
def eigen(num_classes=2, in_channels=3):
    return Eigen()

@register_model("deploy-test-tiny", family="test")
def tiny(num_classes=2, in_channels=3):
    return nn.Sequential(nn.Conv2d(in_channels, num_classes, 3, padding=1))
'''


def test_export_command_lists_a_model_that_does_not_export_with_its_reason(tmp_path, capsys):
    plugin = tmp_path / "plugin_models.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "exports"
    argv = ["export", "--plugin", str(plugin), "--models", "deploy-test-*", "--size", "32", "--exporter",
            "torchscript", "--out", str(out), "--data-root", str(tmp_path), "--json"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    manifests = {m["model"]: m for m in json.loads(captured.out)}
    assert manifests["deploy-test-eigen"]["path"] is None
    assert "linalg_eigvalsh" in manifests["deploy-test-eigen"]["error"]
    tiny = manifests["deploy-test-tiny"]
    assert tiny["exporter"] == "torchscript" and tiny["verification"]["argmax_agreement"] == 1.0
    assert tiny["verification"]["input"].startswith("synthetic")
    assert sorted(p.name for p in out.iterdir()) == ["deploy-test-tiny_32px.json", "deploy-test-tiny_32px.onnx"]
    assert "error: 1 of 2 model(s) could not be exported: deploy-test-eigen" in captured.err
    assert "Traceback" not in captured.err


# --- adapters ---------------------------------------------------------------------------------------

def test_onnxruntime_gpu_providers_run_only_where_the_build_has_them(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    targets = adapter("onnxruntime").targets(cuda)
    assert [(t.device, t.precision) for t in targets] == [
        ("CUDAExecutionProvider", "fp32"), ("TensorrtExecutionProvider", "fp32"), ("TensorrtExecutionProvider", "fp16")]
    assert all(t.skip and "has no" in t.skip for t in targets)
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert all(t.skip is None for t in adapter("onnxruntime").targets(cuda))
    cpu = adapter("onnxruntime").targets(CPU, ["fp32", "bf16"])
    assert [(t.precision, t.skip is None) for t in cpu] == [("fp32", True), ("bf16", False)]


def test_a_missing_runtime_is_a_one_line_error_naming_the_extras(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    argv = ["profile", "--models", "miniseg", "--device", "cpu", "--backends", "torch,openvino", "--size", "32",
            "--results", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: OpenVINO (openvino) is not installed") and "pip install '.[deploy]'" in err
    assert "Traceback" not in err and not (tmp_path / "profile").exists()


def test_openvino_reads_back_the_precision_it_executes(exported):
    pytest.importorskip("openvino")
    ov_adapter = adapter("openvino")
    _, result = exported["miniseg"]
    native = ov_adapter.native_precisions()
    targets = ov_adapter.targets(CPU)
    assert [t.precision for t in targets] == ["fp32", *native] and all(t.skip is None for t in targets)
    fp32 = ov_adapter.open(result.path, targets[0], 1)
    assert fp32.execution_precision() == "fp32" and fp32.notes == []
    assert set(fp32.details()["runtime_precisions"]) <= {"fp32", "i32", "i64", "u8", "boolean"}
    missing = [p for p in ("bf16", "fp16") if p not in native]
    if missing:  # a reduced precision this CPU lacks: run anyway, and say so rather than pretend
        session = ov_adapter.open(result.path, Target("openvino", "CPU", missing[0]), 1)
        session.run(np.zeros((1, 3, SIDE, SIDE), np.float32))
        assert "not native on this CPU" in session.notes[0]
        compiled = session.execution_precision()
        assert compiled in ("fp32", "bf16", "fp16")
    assert ov_adapter.targets(torch.device("cuda"))[0].skip.startswith("skipped: OpenVINO runs on the CPU")


# --- timing entries ---------------------------------------------------------------------------------

class CountingSession:
    """A fake runtime: counts its calls and checks the batch it is given."""

    def __init__(self, expected_shape):
        self.calls, self.expected_shape = 0, expected_shape

    def run(self, batch):
        assert batch.shape == self.expected_shape and batch.dtype == np.float32
        self.calls += 1
        return batch[:, :2]


def test_backend_timing_has_the_profilers_discipline():
    fake = CountingSession((2, 3, 8, 8))
    entry = measure_session(fake, 2, 8, "events", warmup=2, repeats=3)
    assert fake.calls == 1 + 2 + 3  # first call (compilation, untimed), warm-up, timed calls
    assert (entry["repeats"], entry["warmup"], entry["statistic"], entry["timer"]) == (3, 2, "median", "perf_counter")
    assert len(entry["latency_ms_samples"]) == 3 and entry["first_call_s"] >= 0
    assert entry["throughput_img_s"] == pytest.approx(2e3 / entry["latency_ms_median"])
    paper = CountingSession((1, 3, 8, 8))
    assert measure_session(paper, 1, 8, "paper", warmup=0, repeats=1)["repeats"] == 89 and paper.calls == 101


def test_skipped_and_unexported_targets_are_entries_with_their_reason():
    inputs = np.zeros((1, 3, 8, 8), np.float32)
    skipped = Target("onnxruntime", "CUDAExecutionProvider", "fp32", "skipped: no CUDA here")
    fake_export = export_module.ExportResult("m", None, None, None, ["N", 3, 8, 8], 0.0,
                                             [{"exporter": "torchscript", "error": "Boom: no"}])
    entries = target_entries(fake_export, skipped, 8, inputs, inputs, batch_sizes=[1, 4], methods=["events"],
                             warmup=0, repeats=1, threads=1)
    assert [(e["batch_size"], e["status"], e["error"]) for e in entries] == [
        (1, "skipped", "skipped: no CUDA here"), (4, "skipped", "skipped: no CUDA here")]
    assert all(e["latency_ms_median"] is None for e in entries)
    cpu = Target("onnxruntime", "CPUExecutionProvider", "fp32")
    failed = target_entries(fake_export, cpu, 8, inputs, inputs, batch_sizes=[1], methods=["events"], warmup=0,
                            repeats=1, threads=1)
    assert failed[0]["status"] == "failed" and failed[0]["error"] == "not exported: torchscript: Boom: no"


@pytest.mark.slow
def test_profile_backends_write_entries_with_agreement_version_and_precision(tmp_path, capsys, one_thread):
    pytest.importorskip("openvino")
    import openvino

    argv = ["profile", "--models", "miniseg", "--device", "cpu", "--size", "32", "--batch-sizes", "1",
            "--repeats", "2", "--warmup", "0", "--backends", "torch,onnxruntime,openvino", "--exporter", "torchscript",
            "--export-dir", str(tmp_path / "exports"), "--data-root", str(tmp_path), "--results",
            str(tmp_path / "results"), "--json"]
    assert main(argv) == 0
    record = json.loads((tmp_path / "results" / "profile" / device_slug(CPU) / "miniseg.json").read_text())
    assert record["schema"] == PROFILE_SCHEMA == "miniseg-bench/profile/2"
    assert [t["mode"] for t in record["timings"]] == ["eager"]
    assert record["export"]["exporter"] == "torchscript" and record["export"]["path"].endswith("miniseg_32px.onnx")
    assert record["agreement_input"].startswith("synthetic")
    entries = {(e["backend"], e["precision"]): e for e in record["backends"]}
    native = adapter("openvino").native_precisions()
    assert list(entries) == [("onnxruntime", "fp32"), ("openvino", "fp32")] + [("openvino", p) for p in native]
    for (backend, precision), entry in entries.items():
        assert entry["status"] == "ok" and entry["threads"] == 1 and entry["repeats"] == 2
        assert entry["runtime_version"] == (ort.__version__ if backend == "onnxruntime" else openvino.__version__)
        assert entry["agreement"]["argmax_agreement"] >= (0.999 if precision == "fp32" else 0.95)
        if precision == "fp32":
            assert entry["execution_precision"] == "fp32" and entry["agreement"]["max_abs_diff"] < 1e-4
    printed = capsys.readouterr().out
    assert json.loads(printed)[0]["backends"] == record["backends"]


# --- evaluate --backend -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--backend", "openvino", "--precision", "float64"], "--precision float64 does not go with --backend openvino"),
    (["--precision", "bf16"], "--precision bf16 does not go with --backend torch"),
])
def test_evaluate_backend_precision_pairs_are_checked(tmp_path, capsys, argv, message):
    base = ["evaluate", "--dataset", "synthetic", "--data-root", str(tmp_path), "--model", "miniseg", "--weights",
            str(tmp_path / "w{fold}.pt"), "--results", str(tmp_path / "results")]
    assert main(base + argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


GREY_PLUGIN = '''
from torch import nn
from models import register_model

@register_model("{name}", family="test")
def grey(num_classes=2, in_channels=3):
    return nn.Conv2d(in_channels, num_classes, 1)
'''


def evaluate_grey_conv(tmp_path: Path, name: str, *options: str) -> list[float]:
    """`evaluate --backend ...` of a plugin model `name`, a 1x1 conv whose foreground logit is the normalised grey
    (test_evaluate's per-fold weights), on the synthetic data with --save-maps; per slice, the share of its pixels
    whose saved class is the exact 'grey > fold mean'."""
    from PIL import Image
    from test_evaluate import _save_grey_conv as save_grey_conv  # the weights of that 1x1 conv, per fold

    from benchmark.datasets import get_folds, load_dataset, normalization_stats

    plugin, root = tmp_path / "grey_models.py", tmp_path / "data"
    plugin.write_text(GREY_PLUGIN.format(name=name))
    data = load_dataset("synthetic", root)  # on its own grid (128 px), where evaluate scores and the graph runs
    save_grey_conv(lambda k: tmp_path / f"w{k}.pth")
    argv = ["evaluate", "--plugin", str(plugin), "--dataset", "synthetic", "--data-root", str(root), "--model", name,
            "--weights", str(tmp_path / "w{fold}.pth"), "--results", str(tmp_path / "results"), "--normalization",
            "fold", "--exporter", "torchscript", "--save-maps", str(tmp_path / "maps"), *options]
    assert main(argv) == 0
    folds, index = get_folds("synthetic", root), {i: n for n, i in enumerate(data.ids)}
    agree = []
    for k, ids in enumerate(folds, start=1):
        mean, _ = normalization_stats(data.images[[index[i] for fold in folds if fold is not ids for i in fold]])
        for slice_id in ids:
            saved = np.asarray(Image.open(tmp_path / "maps" / f"CrossVal{k}" / f"{slice_id}.png")) > 0
            exact = data.images[index[slice_id]].astype(np.float32) / 255 > np.float32(mean)
            agree.append(float((saved == exact).mean()))
    return agree


@pytest.mark.slow
def test_evaluate_backend_scores_what_the_runtime_predicts(tmp_path, capsys):
    """A 1x1 conv whose foreground logit is the normalised grey predicts 'grey > fold mean' exactly: run through
    OpenVINO (batches of 3, 3, 2: three compiled shapes), its saved maps are exactly that, and the record says
    what ran."""
    pytest.importorskip("openvino")
    agree = evaluate_grey_conv(tmp_path, "deploy-test-grey", "--batch-size", "3", "--backend", "openvino")
    capsys.readouterr()
    assert agree == [1.0] * len(agree)
    record = json.loads((tmp_path / "results" / "eval" / "synthetic" / "deploy-test-grey-openvino-fp32.json").read_text())
    deployment = record["source"]["deployment"]
    assert (record["source"]["backend"], record["source"]["precision"]) == ("openvino", "fp32")
    assert deployment["execution_precision"] == "fp32" and deployment["device"] == "CPU"
    assert [(f["fold"], f["exporter"]) for f in deployment["folds"]] == [(k, "torchscript") for k in range(1, 6)]


@pytest.mark.slow
@pytest.mark.shared_data
def test_onnxruntime_fp32_reproduces_the_released_maps_of_ct100_fold_1(shared_data, release_dir, tmp_path, one_thread):
    """The released fold-1 weights exported and run by ONNX Runtime give the released maps (DSC within 0.1)."""
    from benchmark.datasets import get_folds, load_dataset, normalization_stats
    from benchmark.deploy.evaluate import FoldDeployer, deployment_target
    from benchmark.evaluation import metrics
    from benchmark.evaluation.evaluate import load_weights, predict, read_fold_maps

    folds = get_folds("CT100", shared_data)
    train = [i for fold in folds[1:] for i in fold]
    data = load_dataset("CT100", shared_data, ids=list(folds[0]) + train, size=512)
    test_images, masks = data.images[:len(folds[0])], data.masks[:len(folds[0])]
    mean, std = normalization_stats(data.images[len(folds[0]):])
    weights = release_dir / "Pretrained" / "COVID-19-CT100" / "MiniSeg_CrossVal1.pth"
    model = load_weights(create_model("miniseg"), weights, CPU, "miniseg")
    deployer = FoldDeployer("miniseg", deployment_target("onnxruntime", CPU, "fp32"), tmp_path, 1, "torchscript")
    pred = predict(deployer(model.eval(), 1, test_images.shape[1:3]), test_images, mean, std, CPU, 10, torch.float32)
    released = read_fold_maps(release_dir / "SegMaps" / "COVID-19-CT100", 1, folds, (512, 512))
    assert (pred == released).mean() >= 0.9999
    ours = metrics.fold_summary(metrics.slice_metrics(pred, masks, list(folds[0])))["paper"]["dsc"]
    theirs = metrics.fold_summary(metrics.slice_metrics(released, masks, list(folds[0])))["paper"]["dsc"]
    assert abs(ours - theirs) <= 0.1
    assert deployer.source()["deployment"]["execution_precision"] == "fp32"


# --- the report's deployment table ------------------------------------------------------------------

def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _eval_record(label: str, dsc: float, precision: str, backend: str | None) -> dict:
    source = {"kind": "weights", "path": "w{fold}.pth", "model": "miniseg", "precision": precision}
    if backend:
        source.update(backend=backend, deployment={"device": "CPU", "precision": precision})
    return {"schema": "miniseg-bench/eval/1", "dataset": "CT100", "label": label, "source": source, "policy": "paper",
            "folds": [{"fold": k, "dsc": dsc, "n_slices": 20} for k in range(1, 6)], "mean": {"dsc": dsc}, "std": {},
            "strict": {"folds": []}}


def test_report_deployment_table_has_speedups_agreement_and_dsc_change(tmp_path):
    from benchmark.reporting import write_report

    results = tmp_path / "results"
    timing = {"mode": "eager", "method": "events", "batch_size": 1, "status": "ok", "latency_ms_median": 100.0,
              "latency_ms_iqr": 2.0, "throughput_img_s": 10.0}
    backend = {"backend": "openvino", "device": "CPU", "precision": "bf16", "execution_precision": "bf16",
               "threads": 1, "method": "events", "batch_size": 1, "status": "ok", "latency_ms_median": 40.0,
               "latency_ms_iqr": 1.0, "agreement": {"max_abs_diff": 3e-3, "max_abs_reference": 15.0,
                                                 "argmax_agreement": 0.9998}}
    skipped = {**backend, "backend": "onnxruntime", "device": "CUDAExecutionProvider", "precision": "fp32",
               "status": "skipped", "error": "skipped: no CUDA", "latency_ms_median": None, "agreement": None}
    _write(results / "profile" / "cpu-x-1t" / "miniseg.json", {
        "schema": "miniseg-bench/profile/2", "model": "miniseg",
        "environment": {"device_name": "X CPU", "torch_threads": 1},
        "timings": [timing], "backends": [backend, skipped]})
    _write(results / "eval" / "CT100" / "miniseg-release-weights.json", _eval_record("r", 75.91, "float64", None))
    _write(results / "eval" / "CT100" / "miniseg-openvino-bf16.json", _eval_record("ov", 75.89, "bf16", "openvino"))
    write_report(results, tmp_path / "reports")
    md = (tmp_path / "reports" / "tables" / "deployment.md").read_text()
    # 100 ms eager / 40 ms = 2.50x; 3e-3 / 15 = 2e-4; 75.89 - 75.91 (the float64 PyTorch evaluation of the same
    # weights) = -0.02
    assert ("| miniseg | openvino | CPU | bf16 | bf16 | 1 | 1 | 40.00 ± 1.00 | 2.50x | 2.0e-04 | 99.980 | 75.89 "
            "| -0.02 |") in md
    assert "| miniseg | torch | PyTorch | eager | fp32 | 1 | 1 | 100.00 ± 2.00 | 1.00x | — | — | 75.91 | +0.00 |" in md
    assert "onnxruntime CUDAExecutionProvider fp32 bs1: skipped: no CUDA" in md
    assert 'id="deployment"' in (tmp_path / "reports" / "index.html").read_text()


def test_no_deployment_records_no_deployment_table(tmp_path):
    """Without backend profiles or runtime evaluations the report's other tables stay exactly as they were."""
    from types import SimpleNamespace

    from benchmark.reporting.deployment import deployment_files, load_deployment

    results = tmp_path / "results"
    _write(results / "eval" / "CT100" / "miniseg-release-weights.json", _eval_record("r", 75.91, "float64", None))
    _write(results / "profile" / "cpu-x-1t" / "miniseg.json", {"schema": "miniseg-bench/profile/1", "model": "miniseg",
                                                                 "timings": []})
    deployment = load_deployment(results)
    assert deployment.empty and [e.label for e in deployment.evals] == ["r"]
    assert deployment_files(SimpleNamespace(deployment=deployment)) == []
