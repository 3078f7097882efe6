"""Executors: the pool and Ray give the local executor's records; killed workers are retried, then recorded."""
from __future__ import annotations

import os
import signal
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
import torch

from benchmark.cli import main as cli_main
from benchmark.training.executors import LocalExecutor, get_executor
from benchmark.io import read_json
from benchmark.protocol import get_protocol
from benchmark.recipes import resolve
from benchmark.records import PER_SLICE_NAME, RECORD_NAME, validate_run_record
from benchmark.training.runner import JobLock, plan_jobs, run_grid, run_job
from benchmark.training.train import TrainOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS, FOLDS = ("miniseg", "enet"), (0, 1)
# The smoke protocol with one pass per epoch (half the work); two epochs, so a job can die mid-way.
PROTOCOL = get_protocol("smoke", ["passes=((1.0, 16),)"])
TINY = f"test-exec-tiny-{uuid.uuid4().hex[:8]}"
TINY_PLUGIN = f'''
from torch import nn
from models import register_model


@register_model("{TINY}", family="test")
def tiny(num_classes=2, in_channels=3):
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, num_classes, 1))
'''
CPU = TrainOptions(device="cpu", progress=False)
# What must not depend on the executor (timings, environment and dates may).
COMPARED = ("status", "model", "dataset", "fold", "seed", "protocol", "data", "history", "final", "error",
            "iterations", "per_slice_csv")


# --- job functions the workers run (module-level: pickled by reference) ----------------------

def dying_once(job):
    """`run_job`, but a job's first attempt kills its worker (SIGKILL) right after its first epoch's checkpoint."""
    marker = Path(job.results) / f"killed-{job.model}-fold{job.fold}"
    if marker.exists():
        return run_job(job)

    def die(lock: JobLock) -> None:
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)

    with mock.patch.object(JobLock, "heartbeat", die):
        return run_job(job)


def always_dying(job):
    """A worker that dies at once, on every attempt (each attempt leaves a line in `attempts`)."""
    with open(Path(job.results) / "attempts", "a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    os._exit(3)


def worker_pinning(job: int) -> tuple[int, str | None, int]:
    """The job, with the GPU pin and torch threads of the worker that ran it."""
    return job, os.environ.get("CUDA_VISIBLE_DEVICES"), torch.get_num_threads()


# --- helpers and fixtures -------------------------------------------------------------------

@contextmanager
def torch_threads(n: int):
    """One torch thread as in every worker here: CPU results can depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def grid(data_root: Path, results: Path, models=MODELS, folds=FOLDS):
    return plan_jobs(list(models), ["synthetic"], list(folds), PROTOCOL, CPU, data_root, results)


def comparable(job) -> dict:
    """The executor-independent part of a job's record, with its per-slice CSV."""
    record = read_json(job.run_dir / RECORD_NAME)
    assert validate_run_record(record) == [], job.label
    return {key: record[key] for key in COMPARED} | {"csv": (job.run_dir / PER_SLICE_NAME).read_text()}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def local_records(data_root, tmp_path_factory) -> dict[str, dict]:
    """The reference: the grid run by the local executor, job label -> comparable record."""
    jobs = grid(data_root, tmp_path_factory.mktemp("local"))
    with torch_threads(1):
        outcomes = run_grid(jobs, LocalExecutor(), progress=False)
    assert [o.status for o in outcomes] == ["done"] * len(jobs)
    return {job.label: comparable(job) for job in jobs}


def assert_same_as_local(jobs, outcomes, local_records) -> None:
    assert sorted(o.job.label for o in outcomes) == sorted(job.label for job in jobs)
    assert {o.status for o in outcomes} == {"done"}
    for job in jobs:
        record = comparable(job)
        assert len(record["history"]) == PROTOCOL.epochs
        assert record == local_records[job.label], job.label


def assert_killed_then_resumed(job, results: Path) -> None:
    """The job's first worker died after epoch 1 (its marker exists); the retry resumed from that checkpoint."""
    assert (results / f"killed-{job.model}-fold{job.fold}").exists()
    assert read_json(job.run_dir / RECORD_NAME)["resumed_from_epoch"] == 1


def assert_recorded_as_lost(job, outcomes, attempts: int) -> None:
    """The job's outcome and record say it failed because its worker died `attempts` times."""
    (outcome,) = outcomes
    assert outcome.status == "failed" and "worker lost" in outcome.detail
    assert len((Path(job.results) / "attempts").read_text().split()) == attempts
    record = read_json(job.run_dir / RECORD_NAME)
    assert validate_run_record(record) == []
    assert record["status"] == "failed" and f"{attempts} attempt(s)" in record["error"]
    assert record["protocol"] == resolve(PROTOCOL, job.model)[0].to_dict()  # the model's recipe applied


# --- pool -----------------------------------------------------------------------------------

def test_pool_gives_the_local_records_and_skips_them_afterwards(data_root, tmp_path, local_records):
    jobs = grid(data_root, tmp_path)
    with get_executor("pool", workers=2, cpus_per_job=1) as executor:
        outcomes = run_grid(jobs, executor, progress=False)
    assert_same_as_local(jobs, outcomes, local_records)
    # Results are on disk in the common layout: the local executor finds everything done.
    again = run_grid(jobs, LocalExecutor(), progress=False)
    assert [o.status for o in again] == ["skipped"] * len(jobs)


def test_pool_retries_a_killed_worker_and_resumes_the_job(data_root, tmp_path, local_records):
    jobs = grid(data_root, tmp_path, models=["enet"], folds=[0])
    with get_executor("pool", workers=1, cpus_per_job=1, retries=1) as executor:
        outcomes = list(executor.map(jobs, dying_once))
    assert_killed_then_resumed(jobs[0], tmp_path)
    assert_same_as_local(jobs, outcomes, local_records)


def test_pool_records_a_job_whose_worker_always_dies(data_root, tmp_path):
    jobs = grid(data_root, tmp_path, models=["enet"], folds=[1])
    with get_executor("pool", workers=1, retries=1) as executor:
        outcomes = list(executor.map(jobs, always_dying))
    assert_recorded_as_lost(jobs[0], outcomes, attempts=2)


def test_pool_pins_one_gpu_and_its_cpu_share_per_worker():
    with get_executor("pool", workers=2, cpus_per_job=1, gpus=["3", "5"]) as executor:
        results = sorted(executor.map([0, 1, 2, 3], worker_pinning))
    assert [r[0] for r in results] == [0, 1, 2, 3]
    assert {r[1] for r in results} == {"3", "5"} and {r[2] for r in results} == {1}


@pytest.fixture
def tiny_plugin(tmp_path):
    """A model file for --plugin; its model is unregistered from this process afterwards."""
    from models import _registry

    path = tmp_path / "tiny_model.py"
    path.write_text(TINY_PLUGIN)
    yield path
    _registry._REGISTRY.pop(TINY, None)


def test_cli_pool_trains_a_plugin_model_in_its_workers(data_root, tmp_path, tiny_plugin):
    results = tmp_path / "results"
    argv = ["train", "--plugin", str(tiny_plugin), "--models", TINY, "--datasets", "synthetic", "--folds", "2",
            "--protocol", "smoke", "--set", "epochs=1", "--data-root", str(data_root), "--results", str(results),
            "--device", "cpu", "--no-progress", "--executor", "pool", "--workers", "1", "--cpus-per-job", "1",
            "--retries", "0"]
    assert cli_main(argv) == 0
    record = read_json(results / "runs" / "synthetic" / TINY / "fold2" / RECORD_NAME)
    assert record["status"] == "done" and record["options"]["device"] == "cpu"
    assert record["environment"]["torch_threads"] == 1  # the worker's share: --cpus-per-job 1


def test_pool_rejects_bad_options():
    with pytest.raises(ValueError, match="--workers"):
        get_executor("pool", workers=0)
    with pytest.raises(ValueError, match="--retries"):
        get_executor("pool", retries=-1)


# --- ray ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance (2 CPUs) for this module's Ray tests; its workers import this file."""
    try:
        import ray
    except ImportError as err:
        pytest.skip(f"ray cannot be imported ({err}); pip install '.[ray]' to test the Ray executor")
    path = os.pathsep.join([str(REPO_ROOT), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 1024**2, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_records(ray_local, data_root, tmp_path, local_records):
    jobs = grid(data_root, tmp_path)
    with get_executor("ray", cpus_per_job=1) as executor:
        assert executor.gpus_per_job == 0  # no GPU in this Ray instance
        outcomes = run_grid(jobs, executor, progress=False)
    assert ray_local.is_initialized()  # the executor leaves a Ray it did not start running
    assert_same_as_local(jobs, outcomes, local_records)


def test_ray_retries_a_killed_worker_and_resumes_the_job(ray_local, data_root, tmp_path, local_records):
    jobs = grid(data_root, tmp_path, models=["enet"], folds=[0])
    with get_executor("ray", retries=1) as executor:
        outcomes = list(executor.map(jobs, dying_once))
    assert_killed_then_resumed(jobs[0], tmp_path)
    assert_same_as_local(jobs, outcomes, local_records)


def test_ray_records_a_job_whose_worker_always_dies(ray_local, data_root, tmp_path):
    jobs = grid(data_root, tmp_path, models=["enet"], folds=[1])
    with get_executor("ray", retries=1) as executor:
        outcomes = list(executor.map(jobs, always_dying))
    assert_recorded_as_lost(jobs[0], outcomes, attempts=2)


def test_ray_refuses_gpus_per_job_without_gpus(ray_local):
    with pytest.raises(ValueError, match="--gpus-per-job 0.25: the Ray cluster has no GPU"):
        get_executor("ray", gpus_per_job=0.25)
    assert ray_local.is_initialized()


def test_cli_passes_each_executor_its_options():
    from benchmark.cli import build_parser
    from benchmark.commands.train import _executor_options

    def options(*extra: str) -> dict:
        args = build_parser().parse_args(["train", "--models", "enet", "--datasets", "synthetic", *extra])
        return _executor_options(args)

    assert options() == {}
    assert options("--executor", "pool", "--workers", "3", "--retries", "0") == {"workers": 3, "retries": 0}
    assert options("--executor", "ray", "--ray-address", "auto", "--gpus-per-job", "0.25", "--cpus-per-job", "2",
                   "--plugin", "my_models") == {"address": "auto", "gpus_per_job": 0.25, "cpus_per_job": 2.0,
                                                "plugins": ["my_models"]}


def test_ray_missing_says_how_to_install_it(monkeypatch, data_root, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install '\.\[ray\]'"):
        get_executor("ray")
    argv = ["train", "--models", "enet", "--datasets", "synthetic", "--folds", "0", "--protocol", "smoke",
            "--data-root", str(data_root), "--results", str(tmp_path), "--executor", "ray"]
    assert cli_main(argv) == 1
    assert "pip install '.[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_cli_rejects_an_option_of_another_executor(data_root, tmp_path, capsys):
    argv = ["train", "--models", "enet", "--datasets", "synthetic", "--folds", "0", "--protocol", "smoke",
            "--data-root", str(data_root), "--results", str(tmp_path), "--executor", "local", "--workers", "2"]
    assert cli_main(argv) == 1
    assert "--workers does not apply to --executor local" in capsys.readouterr().err
