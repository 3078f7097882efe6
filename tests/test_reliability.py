"""Reliability beyond the bad-input matrix (issue 24): a disk that fills mid-grid, non-finite numbers while
training, the output contract's own checks, and low-resolution logits that a plugin declares."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.cli import main
from benchmark.contract import contract_problems, logits_problem, train_output_problems
from benchmark.datasets import clear_cache, dataset_dir, load_dataset
from benchmark.errors import ContractViolation, NonFinite, StorageFailure
from benchmark.evaluation.evaluate import predict
from benchmark.storage import format_bytes, storage_guard
from benchmark.protocol import get_protocol
from benchmark.training.runner import JobLock, plan_jobs, run_job
from benchmark.training.train import TrainOptions
from models import _registry, create_model, register_model

SUFFIX = uuid.uuid4().hex[:8]
TINY, EVAL_NAN, TRAIN_NAN, NAN_INIT, LOW_RES = (
    f"test-rel-{kind}-{SUFFIX}" for kind in ("tiny", "eval-nan", "train-nan", "nan-init", "low-res"))
CPU = TrainOptions(device="cpu", progress=False)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


class Scaled(nn.Module):
    """A 1x1 conv whose logits are multiplied by NaN in eval mode (`when` "eval") or in train mode ("train")."""

    def __init__(self, num_classes: int, in_channels: int, when: str) -> None:
        super().__init__()
        self.head, self.when = nn.Conv2d(in_channels, num_classes, 1), when

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(x)
        return out * float("nan") if self.training == (self.when == "train") else out


@pytest.fixture(scope="module")
def models():
    """Register the test-only models for this module, and unregister them afterwards."""
    register_model(TINY, family="test")(lambda num_classes=2, in_channels=3: nn.Conv2d(in_channels, num_classes, 1))
    register_model(EVAL_NAN, family="test")(lambda num_classes=2, in_channels=3: Scaled(num_classes, in_channels,
                                                                                          "eval"))
    register_model(TRAIN_NAN, family="test")(lambda num_classes=2, in_channels=3: Scaled(num_classes, in_channels,
                                                                                           "train"))

    def nan_init(num_classes: int = 2, in_channels: int = 3) -> nn.Module:
        conv = nn.Conv2d(in_channels, num_classes, 1)
        nn.init.constant_(conv.weight, float("nan"))
        return conv

    register_model(NAN_INIT, family="test")(nan_init)
    register_model(LOW_RES, family="test", low_res_logits=True)(
        lambda num_classes=2, in_channels=3: nn.Conv2d(in_channels, num_classes, 1, stride=2))
    yield
    for name in (TINY, EVAL_NAN, TRAIN_NAN, NAN_INIT, LOW_RES):
        _registry._REGISTRY.pop(name, None)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


def _train_argv(data_root: Path, results: Path) -> list[str]:
    return ["train", "--models", TINY, "--datasets", "synthetic", "--folds", "0-1", "--protocol", "smoke",
            "--set", "epochs=2", "--set", "eval_every=0", "--device", "cpu", "--data-root", str(data_root),
            "--results", str(results), "--no-progress"]


def test_a_full_disk_stops_the_grid_keeps_the_last_checkpoint_and_the_rerun_resumes(models, data_root, tmp_path,
                                                                                    monkeypatch, capsys):
    results = tmp_path / "results"
    real_save, saves = torch.save, []

    def save(obj, handle, *args, **kwargs):
        saves.append(handle)
        if len(saves) == 2:  # fold 0's second epoch: the disk is full halfway through the checkpoint
            handle.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    assert main(_train_argv(data_root, results)) == 1
    err = capsys.readouterr().err
    fold0, fold1 = (results / f"runs/synthetic/{TINY}/fold{k}" for k in (0, 1))
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {fold0}: no space left on device; "), err
    assert " free of " in errors[0] and "rerun the same command" in errors[0] and "Traceback" not in err
    assert len(saves) == 2 and not (fold1 / "last.pt").exists(), "the grid stopped: fold 1 did not train"
    assert torch.load(fold0 / "last.pt", weights_only=True)["epoch"] == 1, "the last complete checkpoint is kept"
    assert json.loads((fold0 / "last.json").read_text())["epoch"] == 1
    assert not (fold0 / "record.json").exists() and not (fold0 / ".lock").exists()
    assert not [p for p in results.rglob("*") if p.name.endswith(".tmp")], "no temporary file is left"

    monkeypatch.setattr(torch, "save", real_save)  # space freed
    assert main(_train_argv(data_root, results)) == 0
    records = [json.loads((fold / "record.json").read_text()) for fold in (fold0, fold1)]
    assert [r["status"] for r in records] == ["done", "done"]
    assert [r["resumed_from_epoch"] for r in records] == [1, None]


def test_a_lock_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(json, "dump", full)
    lock = JobLock(tmp_path / "job" / ".lock")
    with pytest.raises(StorageFailure, match=re.escape(f"{tmp_path / 'job'}: no space left on device")):
        lock.acquire()
    assert not (tmp_path / "job" / ".lock").exists() and not lock.held


def test_only_errors_of_a_full_or_read_only_disk_become_storage_failures(tmp_path):
    with pytest.raises(FileNotFoundError), storage_guard(tmp_path):
        open(tmp_path / "missing" / "file.json")
    folder = tmp_path / "not" / "yet"
    with pytest.raises(StorageFailure) as caught, storage_guard(folder):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(folder / "x.json"))
    text = str(caught.value)
    assert text.startswith(f"{folder}: disk quota exceeded (writing x.json); ") and " free of " in text
    assert [format_bytes(n) for n in (0, 999, 1000, 3_200_000, 41 * 10**9)] == ["0 B", "999 B", "1.0 kB", "3.2 MB",
                                                                                 "41.0 GB"]


@pytest.mark.parametrize("model, error", [
    (EVAL_NAN, "NonFinite: {model}: non-finite logits (16,384 NaN of 16,384 values) for 8 of 8 slice(s) of a "
               "batch; first non-finite tensor: the output of the model's own forward (Scaled)"),
    (TRAIN_NAN, "diverged: training loss is nan in epoch 1 (diverged); first non-finite tensor: 'head.weight' holds "
                "6 NaN of 6 values"),
    (NAN_INIT, "NonFinite: {model} as built: non-finite weights: 'weight' holds 6 NaN of 6 values"),
], ids=["eval logits", "train logits", "built weights"])
def test_non_finite_numbers_fail_the_job_and_are_never_scored(models, data_root, tmp_path, model, error):
    (job,) = plan_jobs([model], ["synthetic"], [0], get_protocol("smoke", ["epochs=1"]), CPU, data_root, tmp_path)
    outcome = run_job(job)
    record = json.loads((job.run_dir / "record.json").read_text())
    assert outcome.status == record["status"] == "failed" and record["final"] is None
    assert record["error"].startswith(error.format(model=model)), record["error"]
    assert not (job.run_dir / "per_slice.csv").exists()


def test_a_checkpoint_holding_nan_is_named_and_training_starts_again(models, data_root, tmp_path, capsys):
    (job,) = plan_jobs([TINY], ["synthetic"], [1], get_protocol("smoke", ["epochs=1", "eval_every=0"]), CPU,
                       data_root, tmp_path)
    assert run_job(job).status == "done"
    reference = json.loads((job.run_dir / "record.json").read_text())
    state = torch.load(job.run_dir / "last.pt", weights_only=True)
    state["model"]["bias"][0] = float("nan")
    torch.save(state, job.run_dir / "last.pt")
    (job.run_dir / "record.json").unlink()
    capsys.readouterr()
    assert run_job(job).status == "done"
    assert (f"warning: {job.run_dir / 'last.pt'}: damaged checkpoint (non-finite: 'model.bias' holds 1 NaN of 2 "
            "values); training from scratch") in capsys.readouterr().err
    record = json.loads((job.run_dir / "record.json").read_text())
    assert record["resumed_from_epoch"] is None and record["final"] == reference["final"]


def test_the_contract_check_names_what_is_off():
    shape = (2, 3, 64, 64)
    assert logits_problem(torch.empty(2, 2, 64, 64), shape, 2, False) is None
    assert logits_problem((torch.empty(2, 2, 64, 64),), shape, 2, False) == "eval logits are a tuple, not a tensor"
    assert logits_problem(torch.empty(2, 64, 64), shape, 2, False).startswith("eval logits are (2, 64, 64) for an")
    assert logits_problem(torch.empty(2, 2, 16, 16), shape, 2, True) is None
    assert "declares low_res_logits=True" in logits_problem(torch.empty(2, 2, 16, 16), shape, 2, False)
    assert logits_problem(torch.empty(2, 2, 128, 128), shape, 2, True).endswith("(logits at the input's size)")
    assert logits_problem(torch.empty(2, 3, 64, 64), shape, None, False) is None  # at run time any count from 2
    aux = (torch.empty(2, 2, 64, 64), torch.empty(2, 2, 8, 8))  # auxiliary outputs may be smaller
    assert train_output_problems(aux, shape, 2, (1.0, 0.4), False) == []
    assert train_output_problems(aux, shape, 2, (1.0,), False) == [
        "train mode returns 2 output(s) but its aux_weights (1.0,) expect 1 (main, then one per auxiliary head)"]
    assert train_output_problems(aux[::-1], shape, 2, (1.0, 0.4), False)[0].startswith(
        "train-mode main logits are (2, 2, 8, 8)")


def test_contract_problems_report_a_model_that_cannot_run_the_input(models):
    name = f"test-rel-crash-{SUFFIX}"

    class Crash(nn.Module):
        def forward(self, x):
            raise RuntimeError("needs 256x256 inputs")

    register_model(name, family="test")(lambda num_classes=2, in_channels=3: Crash())
    try:
        (problem,) = contract_problems(name)
    finally:
        _registry._REGISTRY.pop(name, None)
    assert problem == (f"{name}: fails on a (2, 3, 64, 64) input (RuntimeError: needs 256x256 inputs); its "
                       "min_input_size and input_multiple say which inputs it takes")


@pytest.mark.slow
def test_declared_low_resolution_logits_are_upsampled_and_recorded(models, data_root, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    assert contract_problems(LOW_RES) == []
    assert predict(create_model(LOW_RES), images, 0.5, 0.25, "cpu").shape == (3, 32, 32)
    with pytest.raises(ContractViolation, match=re.escape("Conv2d: eval logits are (3, 2, 16, 16) for an input of "
                                                          "(3, 3, 32, 32)")):
        predict(nn.Conv2d(3, 2, 1, stride=2), images, 0.5, 0.25, "cpu")  # not registered: held to the contract

    (job,) = plan_jobs([LOW_RES], ["synthetic"], [0], get_protocol("smoke", ["epochs=1"]), CPU, data_root, tmp_path)
    assert run_job(job).status == "done"
    record = json.loads((job.run_dir / "record.json").read_text())
    assert record["model_info"]["low_res_logits"] is True and record["final"]["paper"]["n_slices"] == 8
    background = {"weight": torch.zeros(2, 3, 1, 1), "bias": torch.tensor([1.0, 0.0])}  # cheap to score
    for k in range(1, 6):
        torch.save(background, tmp_path / f"w{k}.pt")
    argv = ["evaluate", "--dataset", "synthetic", "--data-root", str(data_root), "--model", LOW_RES, "--weights",
            str(tmp_path / "w{fold}.pt"), "--results", str(tmp_path / "r"), "--precision", "float32", "--json"]
    assert main(argv) == 0
    source = json.loads((tmp_path / "r/eval/synthetic" / f"{LOW_RES}.json").read_text())["source"]
    assert source["low_res_logits"] is True


@pytest.mark.parametrize("wrapped", [False, True], ids=["OSError", "wrapped by the exporter"])
def test_a_full_disk_stops_an_export_instead_of_failing_the_model(tmp_path, monkeypatch, wrapped):
    pytest.importorskip("onnx")
    from benchmark.deploy import export as export_module

    def disk_full(net, sample, path, exporter, opset):
        Path(path).write_bytes(b"half a graph")
        err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        if wrapped:
            raise RuntimeError("the exporter could not save the graph") from err
        raise err

    monkeypatch.setattr(export_module, "_export_once", disk_full)
    out = tmp_path / "exports"
    with pytest.raises(StorageFailure, match=re.escape(f"{out}: no space left on device (writing tiny.onnx); ")):
        export_module.export_onnx(nn.Conv2d(3, 2, 1), "tiny", out / "tiny.onnx", 16, "torchscript")
    assert list(out.iterdir()) == [], "no temporary folder or half-written graph is left"


class FixedLogits:
    """Stands in for a runtime session: the same logits (float32, NCHW) whatever the input."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.logits[: len(batch)]


def test_a_model_run_by_a_runtime_is_checked_under_its_own_name(models):
    from benchmark.deploy.evaluate import DeployedModel

    images, half = np.zeros((2, 32, 32), np.uint8), np.zeros((2, 2, 16, 16), np.float32)
    assert predict(DeployedModel(FixedLogits(half), LOW_RES), images, 0.5, 0.25, "cpu").shape == (2, 32, 32)
    with pytest.raises(ContractViolation, match=re.escape(f"{TINY}: eval logits are (2, 2, 16, 16) for an input of")):
        predict(DeployedModel(FixedLogits(half), TINY), images, 0.5, 0.25, "cpu")
    nan = np.full((2, 2, 32, 32), np.nan, np.float32)
    with pytest.raises(NonFinite, match=re.escape(f"{TINY}: non-finite logits (4,096 NaN of 4,096 values) for 2 of 2 slice(s)")):
        predict(DeployedModel(FixedLogits(nan), TINY), images, 0.5, 0.25, "cpu")


def test_ground_truth_alone_reads_the_images_headers_where_they_exist(data_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(dataset_dir("synthetic", data_root), root / "synthetic")
    clear_cache()
    first = sorted((root / "synthetic/tr_im").glob("*.png"))[0]
    first.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=re.escape(f"{first}: unreadable PNG")):
        load_dataset("synthetic", root, masks_only=True)
    shutil.rmtree(root / "synthetic/tr_im")  # a masks-only layout (P1110 from its masks alone)
    assert load_dataset("synthetic", root, masks_only=True, size=512).masks.shape == (40, 512, 512)


@pytest.mark.parametrize("code, hint", [(errno.ENOSPC, "free space there"),
                                        (errno.EROFS, "remount it writable or pass another --data-root")])
def test_a_full_data_root_stops_prepare_with_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, code, hint):
    """prepare writes into a temporary folder of the data root; a full or read-only disk there is one line with the
    free space and the option to change, and the temporary folder is gone."""
    from test_bad_inputs import fail_slice_writes
    from test_own_data import write_png_source

    source, root = write_png_source(tmp_path / "source"), tmp_path / "data"
    root.mkdir()
    saved = fail_slice_writes(monkeypatch, root, code)
    argv = ["prepare", "--dataset", "Hospital", "--source", str(source), "--data-root", str(root)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(f"error: {root}: {os.strerror(code).lower()} (writing ") and " free of " in errors[0]
    assert hint in errors[0]
    assert saved and list(root.iterdir()) == []  # the partly written temporary folder is removed


def test_a_storage_error_on_a_file_outside_the_guarded_folder_is_not_the_folders(tmp_path):
    """An input that cannot be read (permission denied elsewhere) is not a full or read-only results disk."""
    elsewhere = tmp_path / "source" / "image.png"
    with pytest.raises(PermissionError) as caught, storage_guard(tmp_path / "results"):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(elsewhere))
    assert caught.value.filename == str(elsewhere)  # the input's own error, unchanged
    with pytest.raises(StorageFailure, match="pass another --results"), storage_guard(tmp_path / "results"):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "results" / "x.json"))
