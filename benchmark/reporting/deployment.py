"""The deployment table: model x backend x precision, latency, speed-up over fp32 eager PyTorch, agreement, DSC.

Rows come from profile records with backend entries (`profile --backends`, schema 2): each torch mode
and each runtime target timed with the `events` method, per batch size. The speed-up divides the same
run's fp32 eager PyTorch time by the row's (for `miniseg`, the released network, this is the speed-up
over the release's eager forward). DSC comes from `evaluate --backend` records (paper policy, mean of
the fold means) and is set against fp32 PyTorch's evaluation of the same weights (float32 where one was
run, else float64). Only written when some record has a deployment: the other tables do not change.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..deploy.summary import BASELINE_MODE, per_call_ms, speedup_vs_torch_eager
from ..records import EVAL_DIR, EVAL_SCHEMA, PROFILE_DIR, PROFILE_SCHEMA, dataset_key
from .formatting import MISSING, Cell, Table, TableFile, fmt, fmt_diff, fmt_pm
from .load import _records, number

TORCH = "torch"
METHOD = "events"  # the profiler's default timing; the release's loop (`paper`) is Table 4's business
TORCH_REFERENCE_PRECISIONS = ("float32", "float64")  # the fp32 reference for the DSC change, in order of preference
AUTOCAST = ("bf16", "fp16")  # the profiler's autocast modes; every other torch mode computes in fp32


@dataclass(frozen=True)
class DeployedEval:
    """One `evaluate --model` record, by what ran it: dataset, model, backend, precision, DSC."""

    dataset: str
    model: str
    backend: str
    precision: str
    device: str | None
    weights: str | None
    label: str
    dsc: float | None


@dataclass(frozen=True)
class Deployment:
    """What the deployment table reads: profile records with backends (per device folder) and evaluations."""

    profiles: tuple[tuple[str, dict[str, Any]], ...]  # (device folder, record)
    evals: tuple[DeployedEval, ...]

    @property
    def empty(self) -> bool:
        return not self.profiles and not any(e.backend != TORCH for e in self.evals)


def _deployed_eval(path: Path, rec: dict[str, Any]) -> DeployedEval | None:
    """The record as a DeployedEval when a model ran (weights), else None (maps)."""
    source = rec.get("source") if isinstance(rec.get("source"), dict) else {}
    if source.get("kind") != "weights" or not isinstance(source.get("model"), str):
        return None
    deployment = source.get("deployment") if isinstance(source.get("deployment"), dict) else {}
    mean = rec.get("mean") if isinstance(rec.get("mean"), dict) else {}
    return DeployedEval(
        dataset=dataset_key(rec.get("dataset"), path.parent.name, rec.get("split")), model=source["model"],
        backend=str(source.get("backend") or TORCH), precision=str(source.get("precision") or "float64"),
        device=deployment.get("device"), weights=source.get("path"), label=str(rec.get("label") or path.stem),
        dsc=number(mean.get("dsc")),
    )


def load_deployment(results: str | Path) -> Deployment:
    """Profile records with backend entries, and every evaluation of a model, under `results`."""
    results = Path(results)
    profiles = tuple((path.parent.name, rec) for path, rec in
                     _records(sorted((results / PROFILE_DIR).glob("*/*.json")), PROFILE_SCHEMA)
                     if isinstance(rec.get("backends"), list) and rec["backends"])
    evals = (_deployed_eval(path, rec) for path, rec in
             _records(sorted((results / EVAL_DIR).glob("*/*.json")), EVAL_SCHEMA))
    return Deployment(profiles, tuple(sorted((e for e in evals if e), key=lambda e: (e.dataset, e.label))))


def _torch_reference(evals: tuple[DeployedEval, ...], dataset: str, model: str,
                     weights: str | None) -> DeployedEval | None:
    """fp32 PyTorch's evaluation of `model` on `dataset` (the same weights where one exists)."""
    mine = [e for e in evals if (e.dataset, e.model, e.backend) == (dataset, model, TORCH) and e.dsc is not None]
    same = [e for e in mine if weights is None or e.weights == weights] or mine
    for precision in TORCH_REFERENCE_PRECISIONS:
        found = [e for e in same if e.precision == precision]
        if found:
            return found[0]
    return None


def _accuracy(evals: tuple[DeployedEval, ...], dataset: str, model: str, backend: str,
              precision: str) -> tuple[DeployedEval | None, float | None]:
    """(the row's evaluation, its DSC change from fp32 PyTorch) on `dataset`; a torch row is the reference."""
    if backend == TORCH:
        ref = _torch_reference(evals, dataset, model, None) if precision == BASELINE_MODE else None
        return ref, (0.0 if ref else None)
    found = [e for e in evals if (e.dataset, e.model, e.backend, e.precision) == (dataset, model, backend, precision)]
    if not found or found[0].dsc is None:
        return (found[0] if found else None), None
    ref = _torch_reference(evals, dataset, model, found[0].weights)
    return found[0], (found[0].dsc - ref.dsc if ref and ref.dsc is not None else None)


def _timed_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's torch modes and runtime targets timed with `events`, as flat rows (skips and failures too)."""
    rows = []
    for timing in record.get("timings") or []:
        if isinstance(timing, dict) and timing.get("method") == METHOD:
            mode = str(timing.get("mode", BASELINE_MODE))
            rows.append({"backend": TORCH, "target": "PyTorch", "precision": mode,
                         "executed": next((p for p in AUTOCAST if p in mode.split("+")), "fp32"), "entry": timing})
    for entry in record.get("backends") or []:
        if isinstance(entry, dict) and entry.get("method") == METHOD:
            rows.append({"backend": entry.get("backend"), "target": entry.get("device"),
                         "precision": entry.get("precision"), "executed": entry.get("execution_precision"),
                         "entry": entry})
    return rows


def relative_difference(max_abs_diff: float | None, max_abs_reference: float | None) -> float | None:
    """max |logit difference| over the reference's max |logit| (over 1 where the logits are smaller than 1), so a
    randomly initialised network whose logits reach 1e9 is judged on its own scale; None where unknown."""
    if max_abs_diff is None:
        return None
    return max_abs_diff / max(1.0, max_abs_reference or 1.0)


def _row(record: dict[str, Any], timed: dict[str, Any], datasets: list[str],
         evals: tuple[DeployedEval, ...]) -> tuple[list[Cell], dict[str, Any]]:
    """The displayed cells and the CSV record of one timed row."""
    entry, model = timed["entry"], str(record.get("model"))
    match = entry.get("agreement") if isinstance(entry.get("agreement"), dict) else {}
    latency = per_call_ms(entry) if entry.get("status") == "ok" else None
    speedup = speedup_vs_torch_eager(record, entry)
    threads = entry.get("threads") or (record.get("environment") or {}).get("torch_threads")
    diff, agree = number(match.get("max_abs_diff")), number(match.get("argmax_agreement"))
    relative = relative_difference(diff, number(match.get("max_abs_reference")))
    cells = [model, timed["backend"], timed["target"], timed["precision"], timed["executed"] or MISSING,
             str(threads) if threads else MISSING, str(entry.get("batch_size") or MISSING),
             fmt_pm(latency, number(entry.get("latency_ms_iqr"))) if latency else MISSING,
             f"{speedup:.2f}x" if speedup else MISSING, MISSING if relative is None else f"{relative:.1e}",
             MISSING if agree is None else f"{100 * agree:.3f}"]
    csv = {"model": model, "backend": timed["backend"], "target": timed["target"], "precision": timed["precision"],
           "execution_precision": timed["executed"], "threads": threads, "batch_size": entry.get("batch_size"),
           "latency_ms_median": latency, "latency_ms_iqr": number(entry.get("latency_ms_iqr")),
           "speedup_vs_torch_eager": speedup, "max_abs_diff": None if diff is None else f"{diff:.3e}",
           "max_abs_diff_relative": None if relative is None else f"{relative:.3e}",
           "argmax_agreement": agree,
           "status": entry.get("status"), "error": entry.get("error")}
    for dataset in datasets:
        found, change = _accuracy(evals, dataset, model, timed["backend"], timed["precision"])
        cells += [fmt(found.dsc) if found else MISSING, fmt_diff(change)]
        csv.update({f"dsc_{dataset}": found.dsc if found else None, f"dsc_change_{dataset}": change,
                    f"eval_label_{dataset}": found.label if found else None})
    return [Cell(c) for c in cells], csv


def _device_table(device: str, records: list[dict[str, Any]], datasets: list[str],
                  evals: tuple[DeployedEval, ...]) -> tuple[Table, list[dict[str, Any]]]:
    """One device folder's rows: every model, its torch modes then its runtime targets."""
    headers = ["Model", "Backend", "Device", "Precision", "Executed", "Threads", "Batch",
               "Latency, ms (median ± IQR)", "Speed-up vs PyTorch eager", "max |Δ| / max |logit|", "Argmax agree (%)"]
    for dataset in datasets:
        headers += [f"DSC {dataset}", f"ΔDSC {dataset}"]
    rows, csv_rows, notes = [], [], []
    for record in sorted(records, key=lambda r: str(r.get("model"))):
        for timed in _timed_rows(record):
            cells, csv = _row(record, timed, datasets, evals)
            if timed["entry"].get("status") != "ok":
                notes.append(f"{csv['model']} {csv['backend']} {csv['target']} {csv['precision']} "
                             f"bs{csv['batch_size']}: {timed['entry'].get('error') or timed['entry'].get('status')}")
            rows.append(cells)
            csv_rows.append({"device": device, **csv})
    name = next((r.get("environment", {}).get("device_name") for r in records if r.get("environment")), None)
    numeric = [False] * 5 + [True] * (len(headers) - 5)
    title = f"Deployment on {name or device} ({device})"
    return Table(f"deployment_{device}", title, headers, numeric, rows, notes, ours=[True] * len(rows)), csv_rows


def _unprofiled_table(deployment: Deployment, datasets: list[str]) -> tuple[Table | None, list[dict[str, Any]]]:
    """Runtime evaluations of models with no backend entries in any profile record (accuracy only)."""
    profiled = {(str(r.get("model")), e.get("backend"), e.get("precision"))
                for _, r in deployment.profiles for e in r.get("backends") or [] if isinstance(e, dict)}
    keys = sorted({(e.model, e.backend, e.precision, e.device or MISSING) for e in deployment.evals
                   if e.backend != TORCH and (e.model, e.backend, e.precision) not in profiled})
    if not keys:
        return None, []
    headers = ["Model", "Backend", "Device", "Precision"] + [h for d in datasets for h in (f"DSC {d}", f"ΔDSC {d}")]
    rows, records = [], []
    for model, backend, precision, device in keys:
        cells, csv = [model, backend, device, precision], {"device": None, "model": model, "backend": backend,
                                                            "target": device, "precision": precision}
        for dataset in datasets:
            found, change = _accuracy(deployment.evals, dataset, model, backend, precision)
            cells += [fmt(found.dsc) if found else MISSING, fmt_diff(change)]
            csv.update({f"dsc_{dataset}": found.dsc if found else None, f"dsc_change_{dataset}": change,
                        f"eval_label_{dataset}": found.label if found else None})
        rows.append([Cell(c) for c in cells])
        records.append(csv)
    numeric = [False] * 4 + [True] * (len(headers) - 4)
    return Table("deployment_unprofiled", "Deployment accuracy of models not profiled on a backend", headers, numeric,
                 rows, ours=[True] * len(rows)), records


NOTES = [
    "Latency: per forward of the batch, median ± IQR of the timed calls after warm-up (profile --backends, method "
    "events); Threads: the runtime's (torch's for PyTorch rows). Speed-up: the same run's fp32 eager PyTorch time "
    "divided by the row's; for miniseg, the released network, this is the speed-up over the release's eager forward.",
    "Precision: asked for (a PyTorch mode, or the runtime's fp32/bf16/fp16/int8); Executed: what the runtime reports "
    "it ran (OpenVINO's inference precision read back from the compiled model; int8 where the runtime's own graph "
    "runs integer kernels).",
    "int8: the exported graph quantised statically (QDQ: convolutions and matrix products int8 with per-channel "
    "weights, the layers between them fp32), activation ranges calibrated on training slices only: CT100 fold 1's "
    "for the latency row (its agreement slice is a fold-1 test slice), each fold's own for the DSC.",
    "max |Δ| / max |logit|, Argmax agree: the exported graph on this backend against fp32 eager PyTorch on one CT "
    "slice (the record's agreement_input): the largest logit difference over the reference's largest |logit| (over "
    "1 where that is below 1; the absolute difference is in the CSV), and the share of pixels whose class agrees.",
    "DSC: evaluate --backend on the dataset (paper policy, mean of the fold means, %); ΔDSC: minus fp32 PyTorch's "
    "DSC of the same weights (float32, else float64 evaluation). — : not measured.",
]


def deployment_files(results: Any) -> list[TableFile]:
    """The deployment table file, or nothing when no record has a deployment."""
    deployment: Deployment | None = getattr(results, "deployment", None)
    if deployment is None or deployment.empty:
        return []
    datasets = sorted({e.dataset for e in deployment.evals if e.backend != TORCH})
    devices = sorted({device for device, _ in deployment.profiles})
    tables, records = [], []
    for device in devices:
        table, rows = _device_table(device, [r for d, r in deployment.profiles if d == device], datasets,
                                    deployment.evals)
        tables.append(table)
        records += rows
    unprofiled, rows = _unprofiled_table(deployment, datasets)
    if unprofiled is not None:
        tables.append(unprofiled)
        records += rows
    columns = ["device", "model", "backend", "target", "precision", "execution_precision", "threads", "batch_size",
               "latency_ms_median", "latency_ms_iqr", "speedup_vs_torch_eager", "max_abs_diff", "max_abs_diff_relative",
               "argmax_agreement",
               "status", "error"]
    columns += [f"{k}_{d}" for d in datasets for k in ("dsc", "dsc_change", "eval_label")]
    return [TableFile("deployment", "Deployment: backends and precisions", tables, columns, records, list(NOTES))]
