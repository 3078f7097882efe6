"""The results layer: record schemas, the results folder's layout, reading records, dataset keys, paper labels.

Evaluation, training, profiling and reporting all read and write results through this module (it sits below
them), so a schema string, a folder name or a dataset key is defined once.

Results folder: `runs/<dataset key>/<model>/fold<k>/` (a training job), `eval/<dataset key>/<label>.json`
and `<label>.csv` (an evaluation), `profile/<device slug>/<model>.json` (a profile). The dataset key is the
dataset's name, with `-grouped` for the patient-grouped split (`P20-grouped`).

Layout of a run folder (names below): `record.json` (the run schema), `per_slice.csv` (one row
per test slice, both policies), `last.pt` (the checkpoint of the last finished epoch, the
final model once the job is done), `last.json` (a small summary of that checkpoint, so
`--dry-run` need not load it) and `.lock` while a runner works on the job.

Run schema 2 over 1: `protocol` holds the model's effective recipe (`normalization`,
`pretrained`, `loss`, `aux_weights`, `bn_init`, `recipes`), `protocol_exception` is None or
{recipe, row, script, changes, deviations, text} (benchmark.recipes), and `data` says
`score_size_px` (test metrics are computed on the ground truth's grid) and the input normalisation.
Schema-1 records still read (their metrics were computed at the training size).
"""
from __future__ import annotations

import json
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .datasets import DATASET_NAMES, get_spec
from .datasets.folds import DEFAULT_SPLIT, SPLITS, check_split
from .io import read_json

# --- schemas ------------------------------------------------------------------------------------

RUN_SCHEMA = "miniseg-bench/run/2"
READABLE_RUN_SCHEMAS = ("miniseg-bench/run/1", RUN_SCHEMA)
EVAL_SCHEMA = "miniseg-bench/eval/1"
#: profile 2 adds `export`, `agreement_input` and `backends` (ONNX Runtime / OpenVINO entries, benchmark.deploy)
#: where `profile --backends` asked for them (and `quantization`, how int8 targets' graph was quantised and
#: calibrated); a schema-1 record reads as one without backends.
PROFILE_SCHEMA = "miniseg-bench/profile/2"


def schema_family(schema: str) -> str:
    """The part of a schema every version shares: 'miniseg-bench/run/2' -> 'miniseg-bench/run/'."""
    return schema.rsplit("/", 1)[0] + "/"


# --- the results folder -------------------------------------------------------------------------

RUNS_DIR = "runs"
EVAL_DIR = "eval"
PROFILE_DIR = "profile"
RUN_STATUSES = ("done", "failed")
RECORD_NAME = "record.json"
PER_SLICE_NAME = "per_slice.csv"
CHECKPOINT_NAME = "last.pt"
CHECKPOINT_INFO_NAME = "last.json"
LOCK_NAME = ".lock"
FOLD_DIR_RE = re.compile(r"^fold(\d+)$")


def results_key(dataset: str, split: str = DEFAULT_SPLIT) -> str:
    """The results folder name of a dataset under a split: 'P20' (paper), 'P20-grouped'."""
    return dataset if check_split(split) == DEFAULT_SPLIT else f"{dataset}-{split}"


def parse_results_key(key: str) -> tuple[str, str]:
    """Inverse of `results_key`: 'P20-grouped' -> ('P20', 'grouped'); any other key -> (key, 'paper')."""
    for split in SPLITS[1:]:
        if key.endswith(f"-{split}"):
            return key[: -len(split) - 1], split
    return key, DEFAULT_SPLIT


def fold_dir_name(fold: int) -> str:
    """A run's fold folder: 'fold0' for test fold 0."""
    return f"fold{fold}"


def run_dir(results: str | Path, dataset: str, model: str, fold: int, split: str = DEFAULT_SPLIT) -> Path:
    """`<results>/runs/<dataset key>/<model>/fold<k>`."""
    return Path(results) / RUNS_DIR / results_key(dataset, split) / model / fold_dir_name(fold)


def eval_dir(results: str | Path, dataset: str, split: str = DEFAULT_SPLIT) -> Path:
    """`<results>/eval/<dataset key>`: where evaluations of a dataset under a split are written."""
    return Path(results) / EVAL_DIR / results_key(dataset, split)


def eval_csv_name(label: str) -> str:
    """The per-slice CSV beside an evaluation's `<label>.json`."""
    return f"{label}.csv"


def profile_dir(results: str | Path, device_slug: str) -> Path:
    """`<results>/profile/<device slug>`."""
    return Path(results) / PROFILE_DIR / device_slug


# --- reading records ----------------------------------------------------------------------------

def read_record(path: Path, schema: str) -> dict:
    """A record of `schema`'s kind (any version) as a dict; a file that is not valid JSON, not an object or
    of another kind is a ValueError naming it. A record without a schema is read as that kind."""
    try:
        data = read_json(path)
    except OSError as err:
        raise ValueError(f"{path}: unreadable ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    family = schema_family(schema)
    found = data.get("schema")
    if found is not None and not str(found).startswith(family):
        raise ValueError(f"{path}: schema {found!r} is not {family}* (a file of another kind?)")
    return data


# --- run records --------------------------------------------------------------------------------

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


def json_normalised(value: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists), for comparing with a stored one."""
    return json.loads(json.dumps(value))


def same_protocol(stored: dict[str, Any] | None, protocol: dict[str, Any]) -> bool:
    """Whether a stored protocol dict equals `protocol` (the one a job would train with now)."""
    return stored is not None and json_normalised(stored) == json_normalised(protocol)


# --- dataset names and paper rows -------------------------------------------------------------

def canonical_dataset(name: str) -> str:
    """'COVID-19-CT100', 'ct100' -> 'CT100' (the datasets layer's names); unknown names are kept as given."""
    try:
        return get_spec(name).name
    except KeyError:
        return name.strip()


def dataset_key(recorded: Any, folder: str, split: Any = None) -> str:
    """A record's dataset as results are grouped: canonical name, '-grouped' for the grouped split ('P20-grouped').

    `recorded` is the record's own `dataset` (else the folder's name counts), `split` its own `split`."""
    folder_name, folder_split = parse_results_key(folder)
    name = canonical_dataset(str(recorded or folder_name))
    split = split if split in SPLITS else folder_split
    return results_key(name, split) if name in DATASET_NAMES else name


def model_paper_name(model: str | None, recorded: Any = None) -> str | None:
    """The paper's row for a registry model: the registry's answer, else what the record says."""
    if model:
        try:
            from models import get_model_info

            return get_model_info(model).paper_name
        except KeyError:
            pass
    return recorded if isinstance(recorded, str) and recorded else None


def paper_label_for(label: str) -> str | None:
    """The paper's row an evaluation label starts with ('MiniSeg (released maps)' -> 'MiniSeg'), else None."""
    from .paper import paper_rows

    matches = [m for m in paper_rows() if label.lower().startswith(m.lower())]
    return max(matches, key=len) if matches else None
