"""Latency and throughput of a forward: timers, the two timing loops, statistics, OOM fallback.

Methods:
- `events`: warm-up calls, then `repeats` timed calls, each timed alone (CUDA events on a GPU,
  perf_counter on a CPU) and synchronised; the figure is the median, the spread the IQR.
- `paper`: the MiniSeg release's loop: 100 calls, each between two synchronisations and
  wall-clock reads, the first 11 dropped; the figure is the mean, as the release reports it.
"""
from __future__ import annotations

import gc
import os
import resource
import sys
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .modes import Mode, inference_context, prepare_forward

METHODS = ("events", "paper")
PAPER_ITERATIONS = 100
PAPER_DROPPED = 11
SKIPPED_NEEDS_CUDA = "skipped: needs CUDA"
#: Figures of an entry that measured nothing (skipped or failed): every entry has every key.
NO_FIGURES = {"latency_ms_median": None, "latency_ms_iqr": None, "throughput_img_s": None, "peak_memory_mib": None}


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on CPU, where calls are synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call_ms(forward: Callable[[], Any], device: torch.device) -> float:
    """Milliseconds of one call: CUDA events on a GPU, perf_counter on a CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        forward()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    begin = time.perf_counter()
    forward()
    return (time.perf_counter() - begin) * 1e3


def events_loop(forward: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """`warmup` untimed calls, then `repeats` calls timed one by one."""
    for _ in range(warmup):
        forward()
    synchronize(device)
    return [time_call_ms(forward, device) for _ in range(repeats)]


def paper_loop(forward: Callable[[], Any], device: torch.device) -> list[float]:
    """The release's loop: sync, wall clock, call, sync, wall clock; 100 times, first 11 dropped."""
    samples = []
    for i in range(PAPER_ITERATIONS):
        synchronize(device)
        begin = time.perf_counter()
        forward()
        synchronize(device)
        if i >= PAPER_DROPPED:
            samples.append((time.perf_counter() - begin) * 1e3)
    return samples


def summarise(samples_ms: list[float], batch_size: int, method: str) -> dict[str, Any]:
    """Median, IQR and mean of per-call times; throughput from the method's statistic."""
    q25, median, q75 = np.percentile(samples_ms, [25, 50, 75])
    mean = float(np.mean(samples_ms))
    per_call_ms = mean if method == "paper" else float(median)
    return {
        "statistic": "mean" if method == "paper" else "median",
        "latency_ms_median": float(median),
        "latency_ms_iqr": float(q75 - q25),
        "latency_ms_mean": mean,
        "throughput_img_s": batch_size * 1e3 / per_call_ms,
        "repeats": len(samples_ms),
        "latency_ms_samples": [float(s) for s in samples_ms],
    }


def reset_peak_memory(device: torch.device) -> None:
    """Start a fresh peak-memory window (GPU only: a process's peak RSS cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[float | None, str | None]:
    """(MiB, kind): the GPU's max allocated since the reset, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_memory_allocated"
    if sys.platform.startswith("win"):
        return None, None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process_peak_rss"


def load_average() -> float | None:
    """The 1-minute system load average (Unix): CPU timings under a busy machine's load are not comparable."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or a RuntimeError saying an allocation failed (CPU)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_memory() -> None:
    """Return cached blocks after a failure so a smaller retry can use them."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def error_text(error: BaseException) -> str:
    """One line naming the exception type and its message (first 300 characters)."""
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"[:300]


def with_oom_fallback(run: Callable[[int], dict[str, Any]], batch_size: int) -> dict[str, Any]:
    """`run(batch)`, halving the batch on out-of-memory; never raises for a failing measurement.

    The result holds `batch_size` (the one that ran), `oom_fallback_from` (the one asked for,
    or None), `status` ('ok' or 'failed') and `error` (None, or the failure as text).
    """
    requested = batch_size
    while True:
        out_of_memory = False
        try:
            result = run(batch_size)
            status, error = "ok", None
        except Exception as err:  # noqa: BLE001 - every failure is recorded, the run goes on
            out_of_memory = is_out_of_memory(err)
            result, status, error = {}, "failed", error_text(err)
        if out_of_memory:
            free_memory()
            if batch_size > 1:
                batch_size //= 2
                continue
            error = f"out of memory even at batch 1 (asked for {requested}): {error}"
        fallback = requested if batch_size != requested else None
        return {**result, "batch_size": batch_size, "oom_fallback_from": fallback, "status": status, "error": error}


def measure(
    model: nn.Module, mode: Mode, batch_size: int, size: int, device: torch.device,
    method: str, warmup: int, repeats: int,
) -> dict[str, Any]:
    """Time `mode`'s forward of `model` on a random batch (raises on failure, OOM included)."""
    inputs = torch.randn(batch_size, 3, size, size, device=device)
    reset_peak_memory(device)
    with inference_context(mode, device):
        begin = time.perf_counter()
        forward = prepare_forward(model, mode, inputs)
        figures = run_method(forward, device, batch_size, method, warmup, repeats)
        total_s = time.perf_counter() - begin
    return {**figures, "total_s": total_s, **resources(device)}


def run_method(
    forward: Callable[[], Any], device: torch.device, batch_size: int, method: str, warmup: int, repeats: int
) -> dict[str, Any]:
    """Time `forward` with `method`'s loop; its figures, warm-up count and timer (shared by every backend)."""
    samples = paper_loop(forward, device) if method == "paper" else events_loop(forward, device, warmup, repeats)
    return {
        **summarise(samples, batch_size, method),
        "warmup": PAPER_DROPPED if method == "paper" else warmup,
        "timer": "cuda_events" if device.type == "cuda" and method == "events" else "perf_counter",
    }


def resources(device: torch.device) -> dict[str, Any]:
    """Peak memory (and what kind) and the load average, recorded beside every timing."""
    memory_mib, memory_kind = peak_memory(device)
    return {"peak_memory_mib": memory_mib, "peak_memory_kind": memory_kind, "load_avg_1m": load_average()}


def time_mode(
    model: nn.Module,
    mode: Mode,
    batch_size: int,
    *,
    size: int,
    device: torch.device,
    method: str = "events",
    warmup: int = 10,
    repeats: int = 50,
) -> dict[str, Any]:
    """One timing entry of the profile record; failures and skips are entries too."""
    if method not in METHODS:
        raise ValueError(f"unknown timing method {method!r}; known: {', '.join(METHODS)}")
    entry: dict[str, Any] = {"mode": mode.name, "method": method, "batch_size": batch_size, **NO_FIGURES}
    if mode.needs_cuda and device.type != "cuda":
        return {**entry, "oom_fallback_from": None, "status": "skipped", "error": SKIPPED_NEEDS_CUDA}
    result = with_oom_fallback(lambda bs: measure(model, mode, bs, size, device, method, warmup, repeats), batch_size)
    free_memory()  # the mode's model copy, compiled code or graph pool go before the next entry
    return {**entry, **result}
