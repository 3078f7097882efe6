"""The grid runner: planning, locks, skipping, failures, Ctrl-C, and a killed run resuming exactly."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from benchmark.cli import main as cli_main
from benchmark.protocol import get_protocol
from benchmark.recipes import resolve
from benchmark.records import read_run_record
from benchmark.training.runner import (
    JobLock, expand_models, job_state, parse_folds, plan_jobs, run_grid, run_job,
)
from benchmark.training.train import Trainer, TrainOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
SUFFIX = uuid.uuid4().hex[:8]
TINY, BROKEN = f"test-tiny-{SUFFIX}", f"test-broken-{SUFFIX}"

# A plugin file: the runner's subprocess loads it with --plugin; this module loads it too.
TINY_MODELS = f'''
import torch.nn.functional as F
from torch import nn
from models import register_model


class Tiny(nn.Module):
    """conv-BN-ReLU-dropout, a main head and one auxiliary head at half resolution."""

    def __init__(self, num_classes, in_channels, heads):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.Dropout2d(0.2))
        self.head, self.aux = nn.Conv2d(4, num_classes, 1), nn.Conv2d(4, num_classes, 1)
        self.heads = heads

    def forward(self, x):
        features = self.body(x)
        main = self.head(features)
        if not self.training:
            return main
        return (main, self.aux(F.avg_pool2d(features, 2)))[: self.heads]


@register_model("{TINY}", family="test", aux_weights=(1.0, 0.4))
def tiny(num_classes=2, in_channels=3):
    return Tiny(num_classes, in_channels, heads=2)


@register_model("{BROKEN}", family="test", aux_weights=(1.0, 0.4))
def broken(num_classes=2, in_channels=3):
    return Tiny(num_classes, in_channels, heads=1)
'''


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """Register the test-only models for this module, and unregister them afterwards."""
    from models import _registry, load_plugin

    path = tmp_path_factory.mktemp("plugin") / "tiny_models.py"
    path.write_text(TINY_MODELS)
    load_plugin(str(path))
    yield path
    for name in (TINY, BROKEN):
        _registry._REGISTRY.pop(name, None)
    for key in [k for k in sys.modules if k.startswith("miniseg_plugin_tiny_models_")]:
        del sys.modules[key]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


CPU = TrainOptions(device="cpu", progress=False)


def test_parse_folds():
    assert parse_folds("0-4") == (0, 1, 2, 3, 4)
    assert parse_folds("3,0-1,1") == (0, 1, 3)
    for bad in ("5", "2-1", "a", "0-"):
        with pytest.raises(ValueError, match="--folds"):
            parse_folds(bad)


def test_expand_models_patterns_and_unknown_names(plugin):
    assert expand_models(f"test-*-{SUFFIX},miniseg") == [BROKEN, TINY, "miniseg"]
    with pytest.raises(KeyError, match="minseg"):
        expand_models("minseg")
    with pytest.raises(KeyError, match="matches no registered model"):
        expand_models("zz-*")


def test_lock_is_exclusive_and_released_only_by_its_owner(tmp_path):
    path = tmp_path / ".lock"
    first, second = JobLock(path), JobLock(path)
    assert first.acquire() and not second.acquire()
    holder = json.loads(path.read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["time"]
    second.release()
    assert path.exists()
    first.release()
    assert not path.exists() and second.acquire()


def test_stale_locks_are_taken_over(tmp_path):
    path = tmp_path / ".lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "time": "x"}))
    assert JobLock(path).acquire(), "a lock of a dead process on this host is stale"
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "time": "x"}))
    assert not JobLock(path).acquire(), "a fresh lock of another host is respected"
    old = time.time() - 16 * 60
    os.utime(path, (old, old))
    assert JobLock(path).acquire(), "a lock untouched for longer than the timeout is stale"


def test_heartbeat_keeps_a_held_lock_fresh_and_stops_on_release(tmp_path):
    """A holder beats on its own, however long an epoch takes; once released nothing touches the path."""
    path = tmp_path / ".lock"
    lock = JobLock(path, stale_after_s=0.5, heartbeat_s=0.05)
    assert lock.acquire()
    old = time.time() - 3600
    os.utime(path, (old, old))
    deadline = time.time() + 5
    while path.stat().st_mtime < time.time() - 60 and time.time() < deadline:
        time.sleep(0.02)
    assert path.stat().st_mtime > time.time() - 60, "the heartbeat thread did not touch the lock"
    lock.release()
    assert not path.exists() and lock._beater is None


def test_smoke_grid_writes_valid_records_skips_done_and_records_failures(plugin, data_root, tmp_path, capsys):
    protocol = get_protocol("smoke", ["epochs=1"])
    jobs = plan_jobs(["miniseg", TINY], ["synthetic"], [0, 1], protocol, CPU, data_root, tmp_path)
    jobs += plan_jobs([BROKEN], ["synthetic"], [0], protocol, CPU, data_root, tmp_path)
    outcomes = run_grid(jobs, progress=False)
    assert [o.status for o in outcomes] == ["done"] * 4 + ["failed"]
    assert "returned 1 output(s) in train mode" in outcomes[-1].detail
    for job in jobs[:4]:
        record = read_run_record(job.run_dir / "record.json")  # validates the schema
        assert (record.status, record.model, record.dataset, record.fold) == ("done", job.model, "synthetic", job.fold)
        effective = resolve(protocol, job.model)[0]  # the preset with the model's recipe applied
        assert record.protocol == json.loads(json.dumps(effective.to_dict())) and record.seed == 0
        assert record.iterations == protocol.total_iterations(32) == 8 and record.data["n_test"] == 8
        assert record.model_info["name"] == job.model and record.environment["device"] == "cpu"
        assert [h["epoch"] for h in record.history] == [1] and record.history[0]["test"]["paper"]["n_slices"] == 8
        assert set(record.final) >= {"paper", "strict"} and record.timings["train_img_s"] > 0
        assert len((job.run_dir / record.per_slice_csv).read_text().splitlines()) == 9
        assert torch.load(job.run_dir / "last.pt", weights_only=True)["epoch"] == 1
        assert not (job.run_dir / ".lock").exists()
    failed = read_run_record(jobs[-1].run_dir / "record.json")
    assert failed.status == "failed" and failed.final is None

    mtime = (jobs[0].run_dir / "record.json").stat().st_mtime_ns
    assert [o.status for o in run_grid(jobs[:4], progress=False)] == ["skipped"] * 4
    assert (jobs[0].run_dir / "record.json").stat().st_mtime_ns == mtime

    argv = ["train", "--plugin", str(plugin), "--models", f"miniseg,{BROKEN}", "--datasets", "synthetic",
            "--folds", "0-1", "--protocol", "smoke", "--set", "epochs=1", "--data-root", str(data_root),
            "--results", str(tmp_path), "--dry-run", "--json"]
    capsys.readouterr()
    assert cli_main(argv) == 1, "the pre-run contract check names the broken model (the plan is still printed)"
    printed = capsys.readouterr()
    assert f"error: {BROKEN}: train mode returns 1 output(s) but its aux_weights (1.0, 0.4) expect 2" in printed.err
    rows = json.loads(printed.out)
    assert [(r["model"], r["fold"], r["status"]) for r in rows] == [
        ("miniseg", 0, "done"), ("miniseg", 1, "done"), (BROKEN, 0, "failed"), (BROKEN, 1, "todo")]
    assert cli_main(argv[:-4] + ["--set", "epochs=2", "--results", str(tmp_path), "--dry-run", "--json"]) == 1
    assert {r["status"] for r in json.loads(capsys.readouterr().out)} == {"todo"}, "another protocol is not done"


def test_ctrl_c_leaves_a_resumable_state_and_no_lock(plugin, data_root, tmp_path, monkeypatch):
    protocol = get_protocol("smoke", ["epochs=3"])
    (job,) = plan_jobs([TINY], ["synthetic"], [2], protocol, CPU, data_root, tmp_path / "a")
    (reference,) = plan_jobs([TINY], ["synthetic"], [2], protocol, CPU, data_root, tmp_path / "b")
    run_job(reference)
    expected = json.loads((reference.run_dir / "record.json").read_text())  # NaN read back as null
    train_epoch = Trainer.train_epoch

    def interrupted(self, on_step=None):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return train_epoch(self, on_step)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_job(job)
    assert not (job.run_dir / ".lock").exists() and not (job.run_dir / "record.json").exists()
    assert (job_state(job).status, job_state(job).detail) == ("partial", "epoch 1/3")
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    assert run_job(job).status == "done"
    record = json.loads((job.run_dir / "record.json").read_text())
    assert record["resumed_from_epoch"] == 1 and expected["resumed_from_epoch"] is None
    assert record["history"] == expected["history"] and record["final"] == expected["final"]


@pytest.mark.slow
def test_killed_subprocess_resumes_to_the_record_of_an_uninterrupted_run(plugin, data_root, tmp_path):
    """SIGKILL after the first epoch checkpoint: the lock is left behind (stale), the rerun resumes."""
    overrides = ["epochs=12", "eval_every=0"]
    (reference,) = plan_jobs([TINY], ["synthetic"], [3], get_protocol("smoke", overrides), CPU, data_root,
                             tmp_path / "reference")
    run_job(reference)
    expected = json.loads((reference.run_dir / "record.json").read_text())  # NaN read back as null
    command = [sys.executable, "run_benchmark.py", "train", "--plugin", str(plugin), "--models", TINY,
               "--datasets", "synthetic", "--folds", "3", "--protocol", "smoke", "--device", "cpu",
               "--data-root", str(data_root), "--results", str(tmp_path / "killed"), "--no-progress"]
    command += [arg for o in overrides for arg in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run_folder = reference.run_dir.relative_to(tmp_path / "reference")
    info = tmp_path / "killed" / run_folder / "last.json"
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not info.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert info.exists(), process.stderr.read().decode()
    killed_at = json.loads(info.read_text())["epoch"]
    assert not (info.parent / "record.json").exists() and (info.parent / ".lock").exists()

    rerun = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    record = json.loads((info.parent / "record.json").read_text())
    assert record["status"] == "done" and record["resumed_from_epoch"] == killed_at < 12
    assert record["history"] == expected["history"] and record["final"] == expected["final"]
    assert record["iterations"] == expected["iterations"] == 12 * 8
    assert not (info.parent / ".lock").exists()


def test_threads_option_sets_and_records_torch_threads(data_root, tmp_path, capsys):
    argv = ["train", "--models", "miniseg", "--datasets", "synthetic", "--folds", "0", "--protocol", "smoke",
            "--set", "epochs=1", "--data-root", str(data_root), "--results", str(tmp_path), "--no-progress"]
    assert cli_main(argv + ["--threads", "0"]) == 1
    assert "--threads must be at least 1" in capsys.readouterr().err
    torch.set_num_threads(2)
    assert cli_main(argv + ["--threads", "1"]) == 0
    record = json.loads((tmp_path / "runs/synthetic/miniseg/fold0/record.json").read_text())
    assert record["environment"]["torch_threads"] == 1 and torch.get_num_threads() == 1
