"""Figures derived from a profile record's backend entries (no runtime needed: the report reads these too)."""
from __future__ import annotations

from typing import Any

#: The baseline of every speed-up: the paper's forward, fp32 eager PyTorch, timed in the same run.
BASELINE_MODE = "eager"


def torch_eager_latency(record: dict[str, Any], batch_size: int, method: str = "events") -> float | None:
    """The record's fp32 eager PyTorch per-call time (ms) at `batch_size` with `method`, None if not measured."""
    for timing in record.get("timings") or []:
        if not isinstance(timing, dict) or timing.get("status") != "ok":
            continue
        if (timing.get("mode"), timing.get("method"), timing.get("batch_size")) == (BASELINE_MODE, method, batch_size):
            return per_call_ms(timing)
    return None


def per_call_ms(entry: dict[str, Any]) -> float | None:
    """An entry's per-call time: the mean for the release's loop (`paper`), else the median."""
    value = entry.get("latency_ms_mean" if entry.get("method") == "paper" else "latency_ms_median")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def speedup_vs_torch_eager(record: dict[str, Any], entry: dict[str, Any]) -> float | None:
    """How many times faster `entry` ran than fp32 eager PyTorch at the same batch size and method (same run)."""
    mine = per_call_ms(entry) if entry.get("status") == "ok" else None
    base = torch_eager_latency(record, entry.get("batch_size"), entry.get("method", "events"))
    return base / mine if mine and base else None
