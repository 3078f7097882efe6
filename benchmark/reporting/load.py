"""Read the result records (runs, eval, profile) of a results folder into small typed rows.

Missing keys are tolerated everywhere (a value that is not there stays None and is shown
as missing, never as zero); a file that is not valid JSON or carries another schema is named
on stderr and left out, so one damaged file never stops a report.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..records import (
    EVAL_DIR, EVAL_SCHEMA, FOLD_DIR_RE, PROFILE_DIR, PROFILE_SCHEMA, RECORD_NAME, RUN_SCHEMA, RUNS_DIR, dataset_key,
    model_paper_name, paper_label_for, read_record,
)


@dataclass(frozen=True)
class FoldResult:
    """One test fold's metrics (fold is 0-based: fold k = CrossVal{k+1})."""

    fold: int
    paper: dict[str, float]
    strict: dict[str, float]
    n_slices: int | None = None


@dataclass(frozen=True)
class Entry:
    """Our result for one row of Table 5: a trained model or an evaluated source on one dataset."""

    dataset: str
    label: str
    kind: str  # "run", "maps" or "weights"
    model: str | None
    paper_name: str | None
    detail: str
    folds: tuple[FoldResult, ...]
    histories: dict[int, list[dict]] = field(default_factory=dict)
    failed: tuple[str, ...] = ()
    recipe_notes: tuple[str, ...] = ()  # runs: the preset, recipe and deviations in full (index.html)

    @property
    def sort_key(self) -> tuple[str, str, str]:
        return (self.dataset, self.kind, self.label)


@dataclass(frozen=True)
class Profile:
    """One model profiled on one device: size, cost and the throughput we compare with the paper's FPS."""

    device: str
    device_name: str | None
    model: str
    paper_name: str | None
    params: int | None
    params_inference: int | None
    gmacs: float | None
    input_side: int | None
    throughput_img_s: float | None
    batch_size: int | None
    latency_ms_bs1: float | None
    # The paper's Table 4 convention (the release's counter); for its backbone-only rows, the backbone's counts.
    gflops_paper: float | None = None
    paper_counted: str | None = None
    params_backbone: int | None = None
    gflops_paper_backbone: float | None = None


@dataclass(frozen=True)
class Results:
    """Everything the report reads from one results folder."""

    entries: tuple[Entry, ...]
    profiles: tuple[Profile, ...]
    n_run_records: int
    n_eval_records: int
    #: dataset key -> reporting.significance.DatasetStats, where per-slice results exist (filled by write_report)
    significance: dict[str, Any] = field(default_factory=dict, compare=False)
    #: reporting.deployment.Deployment: backend profiles and evaluations (filled by write_report)
    deployment: Any = field(default=None, compare=False)

    @property
    def devices(self) -> list[str]:
        return sorted({p.device for p in self.profiles})

    def profile_of(self, model: str | None) -> Profile | None:
        """The model's profile on the first device by name (params and MACs do not depend on the device)."""
        mine = sorted((p for p in self.profiles if model and p.model == model), key=lambda p: p.device)
        return mine[0] if mine else None

    def profile_for(self, entry: Entry) -> Profile | None:
        """The profile of the entry's model; for maps (no model), of a profiled model of the same paper row."""
        if entry.model or not entry.paper_name:
            return self.profile_of(entry.model)
        same_row = sorted((p for p in self.profiles if p.paper_name == entry.paper_name),
                          key=lambda p: (p.model, p.device))
        return same_row[0] if same_row else None


def number(value: Any) -> float | None:
    """A finite float, or None for anything missing, non-numeric or NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metric_dict(raw: Any) -> dict[str, float]:
    """The numeric, finite metrics of a mapping (keys lowercased); counts (`n_*`) and `fold` are not metrics."""
    if not isinstance(raw, dict):
        return {}
    out = {}
    for key, value in raw.items():
        name, num = str(key).lower(), number(value)
        if num is not None and name != "fold" and not name.startswith("n_"):
            out[name] = num
    return out


def slice_count(*blocks: Any) -> int | None:
    """`n_slices` from the first metrics mapping that has it."""
    for block in blocks:
        if isinstance(block, dict) and number(block.get("n_slices")) is not None:
            return int(block["n_slices"])
    return None


def _records(paths: list[Path], schema: str) -> list[tuple[Path, dict]]:
    """The readable records among `paths`; each damaged or foreign one is named on stderr and left out."""
    from ..errors import warn_damaged

    out = []
    for path in paths:
        try:
            out.append((path, read_record(path, schema)))
        except ValueError as err:
            warn_damaged(path, str(err), "left out of the report (its job counts as not done)")
    return out


def _protocol_name(protocol: Any) -> str | None:
    """The preset's name plus the fields changed from it, e.g. 'fast, base_size=128'."""
    if isinstance(protocol, dict):
        for key in ("name", "preset"):
            if isinstance(protocol.get(key), str):
                differs = protocol.get("differs_from_preset")
                differs = differs if isinstance(differs, list) else []
                changed = [f"{k}={protocol.get(k)}" for k in differs if isinstance(k, str) and k in protocol]
                return ", ".join([protocol[key], *changed])
    return protocol if isinstance(protocol, str) else None


def recipe_marker(rec: dict) -> str | None:
    """The short label of a run's recipe for tables: the preset and --set changes, then the authors' script
    the row's recipe comes from ('paper, train_bl.py'), 'uniform recipe' for a model without a paper row under
    a paper-based preset, and '*' when the record lists a deviation of its own (full text: `recipe_note`)."""
    name = _protocol_name(rec.get("protocol"))
    exception = rec.get("protocol_exception")
    if name is None or not isinstance(exception, dict):
        return name
    protocol = rec["protocol"] if isinstance(rec.get("protocol"), dict) else {}
    preset, _, changed = name.partition(", ")
    parts = [preset]
    if exception.get("recipe") == "paper" and isinstance(exception.get("script"), str):
        parts.append(exception["script"].rsplit("/", 1)[-1])
    elif exception.get("recipe") == "uniform" and protocol.get("recipes", "paper") != "uniform":
        parts.append("uniform recipe")
    standing = [d for d in exception.get("deviations") or [] if isinstance(d, str) and "set with --set" not in d]
    return ", ".join(parts + ([changed] if changed else [])) + ("*" if standing else "")


def recipe_note(rec: dict) -> str | None:
    """A run's recipe in full: preset, where the recipe comes from, what deviates, how the test fold was scored."""
    protocol = rec.get("protocol") if isinstance(rec.get("protocol"), dict) else None
    if protocol is None or not isinstance(protocol.get("name"), str):
        return None
    exception = rec.get("protocol_exception")
    text = exception.get("text") if isinstance(exception, dict) else None
    recipe = text.rstrip(". ") if text else "the preset's base recipe (MiniSeg's, the release's train.py)"
    parts = [f"preset {protocol['name']}", recipe]
    differs = protocol.get("differs_from_preset")
    changed = [f"{k}={protocol.get(k)}" for k in differs if isinstance(k, str)] if isinstance(differs, list) else []
    if changed:
        parts.append("set with --set: " + ", ".join(changed))
    data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
    if "score_size_px" not in data and data.get("size_px"):
        parts.append(f"scored on {data['size_px']} px masks (an older record: not the ground truth's grid)")
    return "; ".join(parts)


def _history(raw: Any) -> list[dict]:
    """Per-epoch rows {epoch, train_loss, dsc}; missing values stay None."""
    rows = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or number(item.get("epoch")) is None:
            continue
        test = item.get("test") if isinstance(item.get("test"), dict) else {}
        paper = metric_dict(test.get("paper"))
        rows.append({"epoch": int(item["epoch"]), "train_loss": number(item.get("train_loss")),
                     "dsc": paper.get("dsc")})
    return sorted(rows, key=lambda r: r["epoch"])


@dataclass
class _RunGroup:
    """The fold records of one (dataset, model) while they are read."""

    folds: list[FoldResult] = field(default_factory=list)
    histories: dict[int, list[dict]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    protocols: set[str] = field(default_factory=set)
    notes: set[str] = field(default_factory=set)
    recorded_paper_name: str | None = None


def _add_run(group: _RunGroup, rec: dict, fold: int) -> None:
    """Fold one run record into its group: a finished fold, or a failure with its reason."""
    info = rec.get("model_info") if isinstance(rec.get("model_info"), dict) else {}
    group.recorded_paper_name = group.recorded_paper_name or info.get("paper_name")
    protocol = recipe_marker(rec)
    if protocol:
        group.protocols.add(protocol)
    note = recipe_note(rec)
    if note:
        group.notes.add(note)
    final = rec.get("final") if isinstance(rec.get("final"), dict) else {}
    paper, strict = metric_dict(final.get("paper")), metric_dict(final.get("strict"))
    if rec.get("status", "done") != "done" or not (paper or strict):
        group.failed.append(f"fold {fold}: {rec.get('error') or rec.get('status') or 'no final metrics'}")
        return
    group.folds.append(FoldResult(fold, paper, strict, slice_count(final.get("paper"), final.get("strict"))))
    group.histories[fold] = _history(rec.get("history"))


def load_runs(results: Path) -> tuple[list[Entry], int]:
    """Aggregate results/runs/<dataset>/<model>/fold<k>/record.json into one Entry per (dataset, model)."""
    groups: dict[tuple[str, str], _RunGroup] = {}
    paths = [p for p in sorted((results / RUNS_DIR).glob(f"*/*/fold*/{RECORD_NAME}")) if FOLD_DIR_RE.match(p.parent.name)]
    records = _records(paths, RUN_SCHEMA)
    for path, rec in records:
        dataset = dataset_key(rec.get("dataset"), path.parents[2].name, rec.get("split"))
        model = str(rec.get("model") or path.parents[1].name)
        fold = _int_or_none(rec.get("fold"))
        _add_run(groups.setdefault((dataset, model), _RunGroup()), rec,
                 fold if fold is not None else int(FOLD_DIR_RE.match(path.parent.name).group(1)))
    entries = []
    for (dataset, model), group in sorted(groups.items()):
        entries.append(Entry(
            dataset=dataset, label=model, kind="run", model=model,
            paper_name=model_paper_name(model, group.recorded_paper_name),
            detail=f"trained ({'; '.join(sorted(group.protocols)) or 'protocol unknown'})",
            folds=tuple(sorted(group.folds, key=lambda f: f.fold)), histories=group.histories,
            failed=tuple(sorted(group.failed)), recipe_notes=tuple(sorted(group.notes)),
        ))
    return entries, len(records)


def _eval_folds(block: Any) -> dict[int, dict]:
    """{0-based fold: row} from an eval record's `folds` list (numbered 1..5 there)."""
    out = {}
    for row in block if isinstance(block, list) else []:
        if isinstance(row, dict) and number(row.get("fold")) is not None:
            out[int(row["fold"]) - 1] = row
    return out


def load_evals(results: Path) -> tuple[list[Entry], int]:
    """One Entry per results/eval/<dataset>/<label>.json."""
    entries = []
    paths = sorted((results / EVAL_DIR).glob("*/*.json"))
    records = _records(paths, EVAL_SCHEMA)
    for path, rec in records:
        source = rec.get("source") if isinstance(rec.get("source"), dict) else {}
        model = source.get("model") if isinstance(source.get("model"), str) else None
        label = str(rec.get("label") or path.stem)
        strict_block = rec.get("strict") if isinstance(rec.get("strict"), dict) else {}
        if rec.get("policy", "paper") == "strict":
            paper_folds, strict_folds = {}, _eval_folds(rec.get("folds"))
        else:
            paper_folds, strict_folds = _eval_folds(rec.get("folds")), _eval_folds(strict_block.get("folds"))
        folds = []
        for k in sorted(set(paper_folds) | set(strict_folds)):
            paper, strict = paper_folds.get(k), strict_folds.get(k)
            folds.append(FoldResult(k, metric_dict(paper), metric_dict(strict), slice_count(paper, strict)))
        kind = str(source.get("kind") or "maps")
        entries.append(Entry(
            dataset=dataset_key(rec.get("dataset"), path.parent.name, rec.get("split")), label=label, kind=kind,
            model=model, paper_name=model_paper_name(model) or paper_label_for(label),
            detail=f"evaluated {kind}", folds=tuple(folds),
        ))
    return entries, len(records)


def _throughput(rec: dict) -> tuple[float | None, int | None]:
    """Eager throughput at batch 30 (the paper's), else at the largest eager batch measured."""
    flat = number(rec.get("throughput_img_s_bs30"))
    if flat is not None:
        return flat, 30
    candidates = []
    for t in rec.get("timings") if isinstance(rec.get("timings"), list) else []:
        if not isinstance(t, dict) or t.get("mode", "eager") != "eager":
            continue
        value, batch = number(t.get("throughput_img_s")), number(t.get("batch_size"))
        if value is not None and batch is not None:
            candidates.append((int(batch), str(t.get("method") or ""), value))
    if not candidates:
        return None, None
    batch, _, value = sorted(candidates, key=lambda c: (-c[0], c[1]))[0]
    return value, batch


def _input_side(size: Any) -> int | None:
    """H of a recorded [C, H, W] input size (the profiled side), else None."""
    if isinstance(size, list) and len(size) == 3:
        return _int_or_none(size[1])
    return None


def _int_or_none(value: Any) -> int | None:
    num = number(value)
    return int(num) if num is not None else None


def load_profiles(results: Path) -> list[Profile]:
    """One Profile per results/profile/<device-slug>/<model>.json."""
    profiles = []
    for path, rec in _records(sorted((results / PROFILE_DIR).glob("*/*.json")), PROFILE_SCHEMA):
        env = rec.get("environment") if isinstance(rec.get("environment"), dict) else {}
        model = str(rec.get("model") or path.stem)
        throughput, batch = _throughput(rec)
        profiles.append(Profile(
            device=path.parent.name, device_name=env.get("device_name"), model=model,
            paper_name=model_paper_name(model, rec.get("paper_name")),
            params=_int_or_none(rec.get("params")), params_inference=_int_or_none(rec.get("params_inference")),
            gmacs=number(rec.get("gmacs")), input_side=_input_side(rec.get("input_size")),
            throughput_img_s=throughput, batch_size=batch,
            latency_ms_bs1=number(rec.get("latency_ms_bs1")),
            gflops_paper=number(rec.get("gflops_paper")), paper_counted=rec.get("paper_counted"),
            params_backbone=_int_or_none(rec.get("params_backbone")),
            gflops_paper_backbone=number(rec.get("gflops_paper_backbone")),
        ))
    return profiles


def load_results(results: str | Path) -> Results:
    """Read every record under `results` (runs/, eval/, profile/); a missing folder is an error."""
    results = Path(results)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder not found: {results}")
    runs, n_runs = load_runs(results)
    evals, n_evals = load_evals(results)
    entries = sorted(runs + evals, key=lambda e: e.sort_key)
    return Results(tuple(entries), tuple(load_profiles(results)), n_runs, n_evals)
