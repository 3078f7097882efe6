"""The backend entries of a profile record: export once, then time each runtime target like the torch modes.

Same discipline as `profiling.timing`: a first untimed call (it compiles or allocates for the batch
size: `first_call_s`), `warmup` untimed calls, `repeats` calls each timed alone (`events`: median and
IQR) or the release's loop (`paper`), out-of-memory halving, the threads and the load average recorded.
Runtimes return host arrays, so each call is complete when it returns (perf_counter timer). Every entry
also holds the agreement of the target's logits with eager fp32 PyTorch on one slice (`agreement.py`),
the runtime's version and the precision it executed in. int8 targets run the exported graph quantised
once per model (`quantize.py`, calibrated on training slices that do not include the agreement slice).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..profiling.timing import NO_FIGURES, error_text, free_memory, resources, run_method, with_oom_fallback
from .agreement import agreement, eager_logits, reference_slice
from .backends import Session, Target, adapter
from .export import ExportResult, export_onnx, export_path
from .quantize import QuantizeResult, int8_path, profile_calibration, quantize_int8

CPU = torch.device("cpu")
INPUT_SEED = 0


def measure_session(session: Session, batch_size: int, side: int, method: str, warmup: int, repeats: int) -> dict:
    """Time `session` on a random (batch, 3, side, side) batch; raises on failure (out of memory included)."""
    batch = np.random.default_rng(INPUT_SEED).standard_normal((batch_size, 3, side, side), dtype=np.float32)
    begin = time.perf_counter()
    session.run(batch)  # compiles or allocates for this batch size: not part of the figures
    first_call_s = time.perf_counter() - begin
    figures = run_method(lambda: session.run(batch), CPU, batch_size, method, warmup, repeats)
    return {**figures, "first_call_s": round(first_call_s, 4), "total_s": time.perf_counter() - begin,
            **resources(CPU)}


def _entry(target: Target, method: str, batch_size: int) -> dict[str, Any]:
    """The keys every backend entry has, before anything is measured."""
    return {"backend": target.backend, "device": target.device, "precision": target.precision,
            "execution_precision": None, "runtime_version": None, "threads": None, "method": method,
            "batch_size": batch_size, **NO_FIGURES, "agreement": None}


def open_target(export: ExportResult, target: Target, threads: int, inputs: np.ndarray,
                reference: np.ndarray) -> tuple[Session | None, dict[str, Any]]:
    """Open the exported graph on `target` and compare it with eager; (None, why) when it cannot run."""
    if target.skip:
        return None, {"status": "skipped", "error": target.skip}
    if not export.ok:
        return None, {"status": "failed", "error": f"not exported: {export.error}"}
    try:
        session = adapter(target.backend).open(export.path, target, threads)
        match = agreement(reference, session.run(inputs))
        info = {"execution_precision": session.execution_precision(), "runtime_version": session.runtime_version,
                "threads": session.threads, "agreement": match, "notes": session.notes, **session.details()}
    except Exception as err:  # noqa: BLE001 - a runtime that cannot load or run the graph is this entry's failure
        return None, {"status": "failed", "error": error_text(err)}
    return session, info


def target_entries(
    export: ExportResult, target: Target, side: int, inputs: np.ndarray, reference: np.ndarray, *,
    batch_sizes: Sequence[int], methods: Sequence[str], warmup: int, repeats: int, threads: int,
) -> list[dict[str, Any]]:
    """One entry per (method, batch size) of one target: skipped, failed, or measured with its agreement."""
    session, info = open_target(export, target, threads, inputs, reference)
    entries = []
    for method in methods:
        for batch_size in batch_sizes:
            entry = {**_entry(target, method, batch_size), **info}
            if session is not None:
                run = lambda bs: measure_session(session, bs, side, method, warmup, repeats)  # noqa: E731
                entry.update(with_oom_fallback(run, batch_size))
            else:
                entry.setdefault("oom_fallback_from", None)
            entries.append(entry)
    del session
    free_memory()
    return entries


def int8_graph(export: ExportResult, side: int, data_root: str | Path | None) -> tuple[ExportResult, QuantizeResult]:
    """The exported graph quantised to int8 (calibrated as `quantize.profile_calibration` says), as the ExportResult
    the int8 targets open; not ok, with the reason, when the export or the quantisation failed."""
    if not export.ok:
        return export, QuantizeResult(None, "", 0, 0.0, f"not exported: {export.error}")
    quantized = quantize_int8(export.path, int8_path(export.path), profile_calibration(side, data_root))
    attempts = [*export.attempts, {"exporter": "int8 quantisation", "error": quantized.error}]
    return replace(export, path=quantized.path, attempts=attempts), quantized


def profile_backends(
    model: nn.Module, name: str, side: int, targets: Sequence[Target], *, batch_sizes: Sequence[int],
    methods: Sequence[str], warmup: int, repeats: int, threads: int, export_dir: str | Path, exporter: str = "auto",
    data_root: str | Path | None = None, on_entry: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The record's `export`, `agreement_input`, `backends` (and `quantization`, for int8 targets) fields for
    `model` profiled at side x side."""
    inputs, source = reference_slice(side, data_root)
    reference = eager_logits(model, inputs)
    export = export_onnx(model, name, export_path(export_dir, name, side), side, exporter)
    graphs, fields = {"fp32": export}, {}
    if any(t.precision == "int8" and not t.skip for t in targets):
        graphs["int8"], quantized = int8_graph(export, side, data_root)
        fields["quantization"] = quantized.to_dict()
    entries = []
    for target in targets:
        graph = graphs.get(target.precision, export)
        for entry in target_entries(graph, target, side, inputs, reference, batch_sizes=batch_sizes,
                                    methods=methods, warmup=warmup, repeats=repeats, threads=threads):
            entries.append(entry)
            if on_entry:
                on_entry(entry)
    return {"export": export.to_dict(), "agreement_input": source, "backends": entries, **fields}
