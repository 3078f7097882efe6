"""pytest-benchmark suite options: which models, input side, batch and device (options or env vars).

  pytest benchmarks --benchmark-autosave                       # all models, 128 px, batch 1
  pytest benchmarks --bench-models 'miniseg*' --bench-size 512 --benchmark-compare
  MINISEG_BENCH_MODELS='smp-*' MINISEG_BENCH_DEVICE=cuda pytest benchmarks
"""
from __future__ import annotations

import os

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("miniseg-bench", "MiniSeg-Bench forward benchmarks")
    group.addoption("--bench-models", default=os.environ.get("MINISEG_BENCH_MODELS", "*"),
                    help="fnmatch pattern(s) of registered models, comma-separated "
                    "(env MINISEG_BENCH_MODELS; default: all)")
    group.addoption("--bench-size", type=int, default=int(os.environ.get("MINISEG_BENCH_SIZE", "128")),
                    help="input side in pixels, rounded up to what a model accepts "
                    "(env MINISEG_BENCH_SIZE; default: 128)")
    group.addoption("--bench-batch", type=int, default=int(os.environ.get("MINISEG_BENCH_BATCH", "1")),
                    help="batch size (env MINISEG_BENCH_BATCH; default: 1)")
    group.addoption("--bench-device", default=os.environ.get("MINISEG_BENCH_DEVICE"),
                    help="cpu, cuda or cuda:N (env MINISEG_BENCH_DEVICE; default: cuda when available)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One benchmark per registered model matching --bench-models."""
    if "model_name" in metafunc.fixturenames:
        from models import list_models

        metafunc.parametrize("model_name", list_models(metafunc.config.getoption("--bench-models")))


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Save the device, torch/CUDA versions and TF32 flags with every benchmark run (for --benchmark-compare)."""
    from benchmark.env import environment, resolve_device

    machine_info["miniseg_bench"] = environment(resolve_device(config.getoption("--bench-device")))


@pytest.fixture(scope="session")
def bench_device(pytestconfig: pytest.Config) -> torch.device:
    from benchmark.env import resolve_device

    return resolve_device(pytestconfig.getoption("--bench-device"))


@pytest.fixture(scope="session")
def bench_size(pytestconfig: pytest.Config) -> int:
    return pytestconfig.getoption("--bench-size")


@pytest.fixture(scope="session")
def bench_batch(pytestconfig: pytest.Config) -> int:
    return pytestconfig.getoption("--bench-batch")
