"""Run records: the versioned JSON a training job leaves in `results/runs/<dataset>/<model>/fold<k>/`.

Layout of a run folder (names below): `record.json` (this schema), `per_slice.csv` (one row
per test slice, both policies), `last.pt` (the checkpoint of the last finished epoch, the
final model once the job is done), `last.json` (a small summary of that checkpoint, so
`--dry-run` need not load it) and `.lock` while a runner works on the job.

Schema 2 (this one) over 1: `protocol` holds the model's effective recipe (`normalization`,
`pretrained`, `loss`, `aux_weights`, `bn_init`, `recipes`), `protocol_exception` is None or
{recipe, row, script, changes, deviations, text} (benchmark.recipes), and `data` says
`score_size_px` (test metrics are computed on the ground truth's grid) and the input normalisation.
Schema-1 records still read (their metrics were computed at the training size).
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .io import read_json

RUN_SCHEMA = "miniseg-bench/run/2"
READABLE_RUN_SCHEMAS = ("miniseg-bench/run/1", RUN_SCHEMA)
RUN_STATUSES = ("done", "failed")
RECORD_NAME = "record.json"
PER_SLICE_NAME = "per_slice.csv"
CHECKPOINT_NAME = "last.pt"
CHECKPOINT_INFO_NAME = "last.json"
LOCK_NAME = ".lock"


@dataclass
class RunRecord:
    """One (model, dataset, fold) training run: what ran, how, how fast, and what it scored."""

    status: str
    model: str
    dataset: str
    fold: int
    seed: int
    protocol: dict[str, Any]
    protocol_exception: dict[str, Any] | None  # the model's recipe where it is not its preset's base one
    model_info: dict[str, Any]
    environment: dict[str, Any]
    options: dict[str, Any]
    data: dict[str, Any]
    timings: dict[str, float | None]
    history: list[dict[str, Any]]
    final: dict[str, dict[str, float]] | None
    error: str | None
    per_slice_csv: str | None
    iterations: int
    started_at: str
    finished_at: str
    resumed_from_epoch: int | None = None  # the epoch this session resumed from; None when trained from scratch
    schema: str = field(default=RUN_SCHEMA)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, `schema` first."""
        out = asdict(self)
        return {"schema": out.pop("schema"), **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "<record>") -> "RunRecord":
        """Parse a record dict; problems raise ValueError naming `source`."""
        problems = validate_run_record(data)
        if problems:
            raise ValueError(f"{source}: not a valid run record: " + "; ".join(problems))
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def validate_run_record(data: Any) -> list[str]:
    """Every way `data` departs from the run-record schema (empty when valid)."""
    if not isinstance(data, dict):
        return ["not a JSON object"]
    optional = {f.name for f in fields(RunRecord) if f.default is not MISSING}
    problems = [f"missing key {f.name!r}" for f in fields(RunRecord) if f.name not in data and f.name not in optional]
    if data.get("schema") not in READABLE_RUN_SCHEMAS:
        problems.append(f"schema is {data.get('schema')!r}, expected {RUN_SCHEMA!r}")
    if data.get("status") not in RUN_STATUSES:
        problems.append(f"status {data.get('status')!r} not in {RUN_STATUSES}")
    if data.get("status") == "done":
        final = data.get("final") or {}
        problems += [f"final lacks policy {p!r}" for p in ("paper", "strict") if p not in final]
    if data.get("status") == "failed" and not data.get("error"):
        problems.append("a failed record needs an error")
    for key in ("train_s", "eval_s", "train_img_s"):
        if key not in (data.get("timings") or {}):
            problems.append(f"timings lacks {key!r}")
    return problems


def read_run_record(path: str | Path) -> RunRecord:
    """Load and validate a record.json."""
    return RunRecord.from_dict(read_json(path), source=path)


def run_dir(results: str | Path, dataset: str, model: str, fold: int) -> Path:
    """`<results>/runs/<dataset>/<model>/fold<k>`."""
    return Path(results) / "runs" / dataset / model / f"fold{fold}"


def json_normalised(value: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists), for comparing with a stored one."""
    return json.loads(json.dumps(value))


def same_protocol(stored: dict[str, Any] | None, protocol: dict[str, Any]) -> bool:
    """Whether a stored protocol dict equals `protocol` (the one a job would train with now)."""
    return stored is not None and json_normalised(stored) == json_normalised(protocol)
