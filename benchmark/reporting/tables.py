"""The report's tables, built from the results: Tables 4 and 5 (ours beside the paper's), strict-policy and
per-fold tables, each a `TableFile` of `Table`s (formatting.py) that render.py writes as Markdown, CSV, LaTeX.

Output is deterministic: rows in a fixed order, floats with a fixed number of decimals,
no timestamps, so committed reports can be compared byte for byte.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from ..datasets.folds import N_FOLDS
from ..evaluation import LOWER_IS_BETTER, PAPER_METRICS
from .._format import paper_unit_params, params_text
from .deployment import deployment_files
from .formatting import (
    MISSING, Cell, Table, TableFile, fmt, fmt_ci, fmt_diff, fmt_gmacs, fmt_params, fmt_pm, fmt_rate, metric_label,
    significance_text,
)
from .load import Entry, Profile, Results
from .paper import PAPER_DATASETS, paper_accuracy, paper_efficiency

STRICT_ORDER = ("miou", "sen", "spc", "dsc", "hd", "hd95", "iou", "precision", "dsc_pooled")


# --- statistics ----------------------------------------------------------------------------

def fold_values(entry: Entry, policy: str, metric: str) -> list[float]:
    """The metric's value on every fold that has it, fold order."""
    values = []
    for fold in entry.folds:
        value = getattr(fold, policy).get(metric)
        if value is not None:
            values.append(value)
    return values


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1) over folds; std None for fewer than 2 folds."""
    if not values:
        return None, None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def best_rows(texts: Sequence[str], values: Sequence[float | None], lower_is_better: bool) -> set[int]:
    """Indices of the rows holding the best value (ties by displayed text all marked; none with < 2 values)."""
    present = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(present) < 2:
        return set()
    best_value = min(present)[0] if lower_is_better else max(present)[0]
    best_text = texts[[i for v, i in present if v == best_value][0]]
    return {i for v, i in present if texts[i] == best_text}


def bold_best(rows: list[list[Cell]], column: int, values: Sequence[float | None], lower_is_better: bool) -> None:
    """Mark the best cells of one column in place."""
    texts = [row[column].text for row in rows]
    for i in best_rows(texts, values, lower_is_better):
        rows[i][column] = Cell(rows[i][column].text, bold=True)


def folds_text(entry: Entry | None) -> str:
    return MISSING if entry is None else f"{len(entry.folds)}/{N_FOLDS}"


def datasets_in(results: Results) -> list[str]:
    """The paper's four datasets, then any other dataset with results (sorted)."""
    extra = sorted({e.dataset for e in results.entries} - set(PAPER_DATASETS))
    return list(PAPER_DATASETS) + extra


# --- Table 5: accuracy ---------------------------------------------------------------------

def accuracy_pairs(dataset: str, entries: Iterable[Entry]) -> list[tuple[str | None, Entry | None]]:
    """(paper method, our entry) rows: the paper's rows in its order, ours beside their row, then ours without one."""
    paper = paper_accuracy().get(dataset, {})
    ours = [e for e in entries if e.dataset == dataset]
    pairs: list[tuple[str | None, Entry | None]] = []
    for method in paper:
        matched: list[Entry | None] = [e for e in ours if e.paper_name == method]
        pairs += [(method, e) for e in matched or [None]]
    pairs.extend((e.paper_name, e) for e in ours if e.paper_name not in paper)
    return pairs


def accuracy_table(dataset: str, results: Results) -> tuple[Table, list[dict[str, Any]]]:
    """Table 5 on one dataset: ours (mean ± std over folds, paper policy), the paper's value, the difference."""
    paper = paper_accuracy().get(dataset, {})
    pairs = accuracy_pairs(dataset, results.entries)
    headers = ["Method (paper)", "Ours", "Source", "Folds"]
    for m in PAPER_METRICS:
        headers += [metric_label(m), f"{metric_label(m)} paper", f"{metric_label(m)} Δ"]
    headers.append("DSC vs reference (Holm)")
    stats_here = results.significance.get(dataset)
    rows, records, ours_means, paper_values = [], [], {m: [] for m in PAPER_METRICS}, {m: [] for m in PAPER_METRICS}
    for method, entry in pairs:
        intervals = stats_here.intervals.get(entry.label, {}) if stats_here and entry else {}
        row = [Cell(method or MISSING), Cell(entry.label if entry else MISSING),
               Cell(entry.detail if entry else MISSING), Cell(folds_text(entry))]
        record: dict[str, Any] = {
            "dataset": dataset, "method": method, "entry": entry.label if entry else None,
            "kind": entry.kind if entry else None, "model": entry.model if entry else None,
            "n_folds": len(entry.folds) if entry else None,
        }
        for m in PAPER_METRICS:
            mean, std = mean_std(fold_values(entry, "paper", m)) if entry else (None, None)
            ref = paper.get(method, {}).get(m) if method else None
            diff = mean - ref if mean is not None and ref is not None else None
            ci = intervals.get(m)
            row += [Cell(fmt_ci(mean, ci) if ci else fmt_pm(mean, std)), Cell(fmt(ref)), Cell(fmt_diff(diff))]
            record.update({f"{m}_mean": mean, f"{m}_std": std, f"{m}_paper": ref, f"{m}_diff": diff,
                           f"{m}_ci_low": ci[0] if ci else None, f"{m}_ci_high": ci[1] if ci else None})
            ours_means[m].append(mean)
            paper_values[m].append(ref)
        versus = stats_here.versus_reference(entry.label) if stats_here and entry else None
        row.append(Cell(significance_text(versus)))
        record.update({"reference": stats_here.comparison.result.get("reference") if stats_here else None,
                       "dsc_p_holm": (versus or {}).get("p_holm"), "dsc_significant": (versus or {}).get("significant")})
        rows.append(row)
        records.append(record)
    for i, m in enumerate(PAPER_METRICS):
        bold_best(rows, 4 + 3 * i, ours_means[m], m in LOWER_IS_BETTER)
        bold_best(rows, 5 + 3 * i, paper_values[m], m in LOWER_IS_BETTER)
    notes = _failed_notes(results.entries, dataset)
    if not paper:
        notes.insert(0, f"The paper has no results on {dataset}.")
    notes += _significance_notes(stats_here)
    title = f"Table 5, {dataset}: paper policy, mean [95% CI] over folds"
    ours = [entry is not None for _, entry in pairs]
    table = Table(dataset, title, headers, [False] * 4 + [True] * 15 + [False], rows, notes, ours)
    return (table if _builtin_dataset(dataset) else without_paper_columns(table)), records


def _builtin_dataset(dataset_key: str) -> bool:
    """True for the built-in datasets (their Table 5 blocks keep the paper's columns, even empty)."""
    from ..datasets.specs import builtin_name
    from ..records import parse_results_key

    return builtin_name(parse_results_key(dataset_key)[0]) is not None


def without_paper_columns(table: Table) -> Table:
    """The table without its paper-value and difference columns (a dataset of your own: the paper has none)."""
    keep = [j for j, h in enumerate(table.headers) if not h.endswith((" paper", " Δ"))]
    return Table(table.key, table.title, [table.headers[j] for j in keep], [table.numeric[j] for j in keep],
                 [[row[j] for j in keep] for row in table.rows], table.notes, table.ours)


def _significance_notes(stats_here: Any) -> list[str]:
    """What the significance column compared, and who was left out of the paired tests."""
    if stats_here is None:
        return []
    result = stats_here.comparison.result
    notes = []
    if result.get("reference") and len(result["models"]) > 1:
        notes.append(f"DSC vs reference: Wilcoxon signed-rank on the per-slice DSC paired with "
                     f"{result['reference']}, Holm-corrected over the {len(result['models']) - 1} other complete "
                     f"entries (alpha {result['alpha']}); `run_benchmark.py compare --dataset {result['dataset']}` "
                     "prints the full comparison.")
    notes += [f"Not compared: {w}" for w in result.get("warnings", [])]
    if result.get("message"):
        notes.append(result["message"])
    return notes


def _failed_notes(entries: Iterable[Entry], dataset: str) -> list[str]:
    return [f"{e.label}: failed or unfinished {f}" for e in entries if e.dataset == dataset for f in e.failed]


ACCURACY_NOTES = [
    "Ours: mean over the folds found (Folds = found/5), paper policy (DSC, SEN, SPC, mIoU in %, HD in "
    "pixels), with its 95% bootstrap CI in brackets where per-slice results exist (2,000 seeded resamples of "
    "the patients, or of the slices where ids carry no patient, within each fold), else ± the sample "
    "standard deviation over folds. Paper: the AAAI 2021 paper's Table 5. Δ = ours − paper.",
    "DSC vs reference: the entry's per-slice DSC against the reference's (miniseg, else a MiniSeg row), "
    "Wilcoxon signed-rank, Holm-corrected across the entries; better/worse = significant at 0.05, "
    "n.s. = not significant, — = not compared (no per-slice results, or an incomplete entry).",
    "Bold: the best of our rows and the best paper row per column (HD: lowest), where a column has "
    "two values or more. — : no result.",
    "Source of a trained row: trained (preset, …). paper = each row as its authors trained it (the script "
    "named, e.g. train_bl.py; MiniSeg: the release's train.py); uniform = MiniSeg's recipe for every model, "
    "not the paper's protocol; fast / smoke = shortened paper; key=value = set with --set; * = a deviation "
    "of the row's recipe. index.html lists every row's recipe in full.",
]


def accuracy_file(results: Results) -> TableFile:
    tables, records = [], []
    for dataset in datasets_in(results):
        table, rows = accuracy_table(dataset, results)
        tables.append(table)
        records += rows
    columns = ["dataset", "method", "entry", "kind", "model", "n_folds"]
    columns += [f"{m}_{s}" for m in PAPER_METRICS for s in ("mean", "std", "paper", "diff")]
    columns += [f"{m}_{s}" for m in PAPER_METRICS for s in ("ci_low", "ci_high")]
    columns += ["reference", "dsc_p_holm", "dsc_significant"]
    return TableFile("table5_accuracy", "Table 5: accuracy (paper policy) beside the paper", tables, columns,
                     records, ACCURACY_NOTES)


def miniseg_file(results: Results) -> TableFile:
    """The MiniSeg rows of Table 5 on every dataset, compact: ours (mean ± std) and the paper's value per metric."""
    rows, records = [], []
    for dataset in datasets_in(results):
        paper = paper_accuracy().get(dataset, {}).get("MiniSeg", {})
        entries = [e for e in results.entries if e.dataset == dataset and e.paper_name == "MiniSeg"]
        for entry in entries or [None]:
            row = [Cell(dataset), Cell(entry.label if entry else MISSING), Cell(folds_text(entry))]
            record: dict[str, Any] = {"dataset": dataset, "entry": entry.label if entry else None,
                                      "n_folds": len(entry.folds) if entry else None}
            for m in PAPER_METRICS:
                mean, std = mean_std(fold_values(entry, "paper", m)) if entry else (None, None)
                row.append(Cell(f"{fmt_pm(mean, std)} ({fmt(paper.get(m))})"))
                record.update({f"{m}_mean": mean, f"{m}_std": std, f"{m}_paper": paper.get(m)})
            if entry is not None or paper:
                rows.append(row)
                records.append(record)
    headers = ["Dataset", "Ours", "Folds"] + [f"{metric_label(m)} (paper)" for m in PAPER_METRICS]
    table = Table("miniseg", "MiniSeg: ours (paper)", headers, [False, False, False] + [True] * 5, rows,
                  ours=[r[1].text != MISSING for r in rows])
    columns = ["dataset", "entry", "n_folds"] + [f"{m}_{s}" for m in PAPER_METRICS for s in ("mean", "std", "paper")]
    notes = ["MiniSeg's rows of Table 5: ours as mean ± std over folds (paper policy), the paper's value in "
             "brackets. DSC, SEN, SPC, mIoU in %, HD in pixels."]
    return TableFile("table5_miniseg", "Table 5, MiniSeg rows", [table], columns, records, notes)


# --- strict policy and per-fold tables --------------------------------------------------------

def metric_keys(entries: Iterable[Entry], policy: str) -> list[str]:
    """The metrics present under a policy: known ones in a fixed order, then others sorted."""
    found = {k for e in entries for f in e.folds for k in getattr(f, policy)}
    return [k for k in STRICT_ORDER if k in found] + sorted(found - set(STRICT_ORDER))


def strict_file(results: Results) -> TableFile:
    """Our rows under the strict policy (NaN-aware, HD95), mean ± std over folds."""
    tables, records = [], []
    all_keys = metric_keys(results.entries, "strict")
    for dataset in sorted({e.dataset for e in results.entries}, key=datasets_in(results).index):
        entries = [e for e in results.entries if e.dataset == dataset]
        keys = metric_keys(entries, "strict")
        rows = []
        means: dict[str, list[float | None]] = {k: [] for k in keys}
        for entry in entries:
            row = [Cell(entry.label), Cell(entry.detail), Cell(folds_text(entry))]
            record: dict[str, Any] = {"dataset": dataset, "entry": entry.label, "kind": entry.kind,
                                      "model": entry.model, "n_folds": len(entry.folds)}
            for k in keys:
                mean, std = mean_std(fold_values(entry, "strict", k))
                row.append(Cell(fmt_pm(mean, std)))
                record.update({f"{k}_mean": mean, f"{k}_std": std})
                means[k].append(mean)
            rows.append(row)
            records.append(record)
        for i, k in enumerate(keys):
            if k in STRICT_ORDER:
                bold_best(rows, 3 + i, means[k], k in LOWER_IS_BETTER)
        headers = ["Ours", "Source", "Folds"] + [metric_label(k) for k in keys]
        tables.append(Table(dataset, f"Strict policy, {dataset}: mean ± std over folds", headers,
                            [False] * 3 + [True] * len(keys), rows))
    columns = ["dataset", "entry", "kind", "model", "n_folds"] + [f"{k}_{s}" for k in all_keys for s in ("mean", "std")]
    notes = ["Strict policy: undefined values (empty prediction or ground truth) are left out instead of "
             "counted as 0; HD95 beside the full HD. Ratios in %, distances in pixels."]
    if not tables:
        notes.append("No results yet.")
    return TableFile("table5_strict", "Strict policy (ours only)", tables, columns, records, notes)


def per_fold_file(results: Results) -> TableFile:
    """Every fold of every row, under both policies (fold k = CrossVal{k+1})."""
    tables, records = [], []
    found = set(metric_keys(results.entries, "paper")) | set(metric_keys(results.entries, "strict"))
    keys = [k for k in STRICT_ORDER if k in found] + sorted(found - set(STRICT_ORDER))
    for dataset in sorted({e.dataset for e in results.entries}, key=datasets_in(results).index):
        rows = []
        for entry in (e for e in results.entries if e.dataset == dataset):
            for policy in ("paper", "strict"):
                for fold in entry.folds:
                    values = getattr(fold, policy)
                    if not values:
                        continue
                    row = [Cell(entry.label), Cell(policy), Cell(str(fold.fold)),
                           Cell(MISSING if fold.n_slices is None else str(fold.n_slices))]
                    row += [Cell(fmt(values.get(k))) for k in keys]
                    rows.append(row)
                    records.append({"dataset": dataset, "entry": entry.label, "kind": entry.kind,
                                    "model": entry.model, "policy": policy, "fold": fold.fold,
                                    "n_slices": fold.n_slices, **{k: values.get(k) for k in keys}})
        headers = ["Ours", "Policy", "Fold", "Slices"] + [metric_label(k) for k in keys]
        tables.append(Table(dataset, f"Per fold, {dataset}", headers, [False, False, True, True] + [True] * len(keys),
                            rows))
    columns = ["dataset", "entry", "kind", "model", "policy", "fold", "n_slices"] + keys
    notes = ["Fold k is the paper's CrossVal{k+1} (results/runs/.../fold<k>). Ratios in %, distances in pixels."]
    if not tables:
        notes.append("No results yet.")
    return TableFile("per_fold", "Per-fold results", tables, columns, records, notes)


# --- Table 4: efficiency -----------------------------------------------------------------------

#: ModelInfo.family of the lightweight nets published after the paper (their own section of Table 4).
SINCE_PAPER_FAMILY = "post2021"


def _side_suffix(side: int | None) -> str:
    """' (N²)' for a count made at another input side than the paper's 512."""
    return f" ({side}²)" if side and side != 512 else ""


def _gmacs_text(profile: Profile | None, input_side: int | None) -> str:
    if profile is None or profile.gmacs is None:
        return MISSING
    return fmt_gmacs(profile.gmacs) + _side_suffix(input_side)


def _counted(method: str | None, prof: Profile | None) -> tuple[str | None, int | None, float | None]:
    """(part counted, our params, our gflops_paper) compared with a Table 4 row: the backbone alone for the
    rows Table 4 printed that way, else the whole training model."""
    from ..profiling.paper_rows import backbone_only_rows

    if method in backbone_only_rows():
        if prof is None or prof.params_backbone is None:
            return "backbone", None, None
        return "backbone", prof.params_backbone, prof.gflops_paper_backbone
    return "network", prof.params if prof else None, prof.gflops_paper if prof else None


def _agree(ours: str | None, paper_text: str | None, comparable: bool = True) -> str:
    """'yes' / 'no' where both figures exist (and were counted at 512), else the missing mark."""
    if ours is None or paper_text is None or not comparable:
        return MISSING
    return "yes" if ours == paper_text else "no"


def _paper_rows(results: Results) -> tuple[list[tuple[Any, str | None]], list[str]]:
    """(Table 4 row or None, our model) pairs in the paper's order, then our other models; and the models of
    the families published since the paper (kept for their own table)."""
    trained = {e.model for e in results.entries if e.kind == "run" and e.model}
    models = sorted({p.model for p in results.profiles} | trained)
    paper_by_name = {}
    for p in results.profiles:
        paper_by_name.setdefault(p.model, p.paper_name)
    for e in results.entries:
        if e.model:
            paper_by_name.setdefault(e.model, e.paper_name)
    pairs: list[tuple[Any, str | None]] = []
    for ref in paper_efficiency():
        matched: list[str | None] = [m for m in models if paper_by_name.get(m) == ref.method]
        pairs += [(ref, m) for m in matched or [None]]
    known = {ref.method for ref in paper_efficiency()}
    others = [m for m in models if paper_by_name.get(m) not in known]
    since = [m for m in others if _family(m) == SINCE_PAPER_FAMILY]
    pairs.extend((None, m) for m in others if m not in since)
    return pairs, since


def _family(model: str) -> str | None:
    """The registry's family of `model` (None for a name the registry does not know)."""
    from models import get_model_info

    try:
        return get_model_info(model).family
    except KeyError:
        return None


def _throughput_cells(model: str | None, results: Results, record: dict[str, Any]) -> list[Cell]:
    """img/s per measured device (batch shown where not 30); the values go into `record` too."""
    cells = []
    for device in results.devices:
        dev = next((p for p in results.profiles if p.model == model and p.device == device), None)
        rate, batch = (dev.throughput_img_s, dev.batch_size) if dev else (None, None)
        cells.append(Cell(fmt_rate(rate) + (f" (bs{batch})" if rate is not None and batch != 30 else "")))
        record.update({f"img_s_{device}": rate, f"batch_size_{device}": batch})
    return cells


def _efficiency_row(ref: Any, model: str | None, results: Results) -> tuple[list[Cell], dict[str, Any]]:
    """One Table 4 line: the paper's figures, ours in the paper's unit and convention, fvcore, throughput."""
    prof = results.profile_of(model)
    side = prof.input_side if prof else None
    counted, params, gflops = _counted(ref.method if ref else None, prof)
    ours_params = paper_unit_params(params) if params is not None else None
    paper_params = params_text(ref.params) if ref else None
    gflops_text = f"{gflops:.2f}" if gflops is not None else None
    paper_gflops = f"{ref.gmacs:.2f}" if ref else None
    at_512 = not side or side == 512
    row = [Cell(ref.method if ref else MISSING), Cell(model or MISSING), Cell((ref.backbone if ref else None) or MISSING),
           Cell(counted if model else MISSING),
           Cell(paper_params or MISSING), Cell(ours_params or MISSING), Cell(_agree(ours_params, paper_params)),
           Cell(paper_gflops or MISSING), Cell((gflops_text + _side_suffix(side)) if gflops_text else MISSING),
           Cell(_agree(gflops_text, paper_gflops, at_512)),
           Cell(_gmacs_text(prof, side)), Cell(fmt_rate(ref.fps if ref else None))]
    record: dict[str, Any] = {
        "method": ref.method if ref else None, "model": model, "backbone": ref.backbone if ref else None,
        "counted": counted if model else None,
        "paper_params": ref.params if ref else None, "paper_params_printed": paper_params,
        "params": prof.params if prof else None, "params_inference": prof.params_inference if prof else None,
        "params_counted": params, "params_paper_unit": ours_params, "params_agree": _agree(ours_params, paper_params),
        "paper_gflops": ref.gmacs if ref else None, "gflops_paper": gflops,
        "gflops_agree": _agree(gflops_text, paper_gflops, at_512), "gmacs_fvcore": prof.gmacs if prof else None,
        "input_size": side, "paper_fps": ref.fps if ref else None,
    }
    row += _throughput_cells(model, results, record)
    return row, record


EFFICIENCY_NOTES = [
    "Params: the paper's #Param as printed, ours in the paper's unit (the release's counter printed thousands; "
    "the paper gives MiniSeg in K, models under 1M params as params/1e6 M and larger ones as params/1,024,000 M); "
    "agree = the same printed string.",
    "GFLOPs: the paper's figure and ours by the release's own counter (gflops_paper: conv multiply-accumulates "
    "+1 per output for a bias, one op per BatchNorm/ReLU input and per pooling-window element, Linear weights; "
    "PReLU, upsampling and functional ops not counted, a module held by two parents counted twice) on the "
    "training model with its auxiliary heads, at 1x3x512x512; agree = equal at two decimals.",
    "GMACs fvcore: fvcore's multiply-accumulates of our whole network's eval forward, a separate and more "
    "complete count; not the paper's convention.",
    "Counted: 'backbone' where Table 4 counted the backbone alone (MobileNet, MobileNetv2, ShuffleNet, "
    "ShuffleNetv2); our params and GFLOPs there are the backbone's, fvcore's GMACs the whole network's.",
    "FPS: the paper's, on a TITAN RTX at batch 30; ours img/s eager fp32 at batch 30 unless another batch is "
    "shown (bsN). (N²): counted at another input side. — : not measured.",
]


def efficiency_file(results: Results) -> TableFile:
    """Table 4: the paper's params, GFLOPs and FPS beside ours in the paper's units and counting convention,
    fvcore's GMACs and the throughput per measured device; models published since the paper in their own table."""
    devices = results.devices
    pairs, since = _paper_rows(results)
    headers = ["Method (paper)", "Ours", "Backbone", "Counted", "Params paper", "Params ours", "Params agree",
               "GFLOPs paper", "GFLOPs ours", "GFLOPs agree", "GMACs fvcore", "FPS paper"]
    headers += [f"img/s {d}" for d in devices]
    rows, records = [], []
    for ref, model in pairs:
        row, record = _efficiency_row(ref, model, results)
        rows.append(row)
        records.append(record)
    columns = ["method", "model", "backbone", "counted", "paper_params", "paper_params_printed", "params",
               "params_inference", "params_counted", "params_paper_unit", "params_agree", "paper_gflops",
               "gflops_paper", "gflops_agree", "gmacs_fvcore", "input_size", "paper_fps"]
    columns += [f"{k}_{d}" for d in devices for k in ("img_s", "batch_size")]
    notes = list(EFFICIENCY_NOTES)
    if devices:
        notes.append("Devices: " + "; ".join(f"{d} = {_device_name(d, results)}" for d in devices) + ".")
    numeric = [False] * 4 + [True, True, False, True, True, False, True, True] + [True] * len(devices)
    tables = [Table("efficiency", "Table 4: efficiency beside the paper", headers, numeric, rows,
                    ours=[m is not None for _, m in pairs])]
    if since:
        table, since_records = since_paper_table(since, results)
        tables.append(table)
        records += since_records
        columns += ["reported_params", "reported_gmacs", "reported_input"]
    return TableFile("table4_efficiency", "Table 4: efficiency", tables, columns, records, notes)


def since_paper_table(models: Sequence[str], results: Results) -> tuple[Table, list[dict[str, Any]]]:
    """Lightweight nets published since the paper: our counts in Table 4's conventions beside their own papers'."""
    from models import get_model_info

    headers = ["Model", "Params ours", "GFLOPs ours", "GMACs fvcore", "Params reported", "GMACs reported",
               "Reported at"] + [f"img/s {d}" for d in results.devices]
    rows, records = [], []
    for model in models:
        info, prof = get_model_info(model), results.profile_of(model)
        side = prof.input_side if prof else None
        params, gflops = (prof.params, prof.gflops_paper) if prof else (None, None)
        record: dict[str, Any] = {
            "method": None, "model": model, "counted": "network", "params": params,
            "params_paper_unit": paper_unit_params(params) if params is not None else None, "gflops_paper": gflops,
            "gmacs_fvcore": prof.gmacs if prof else None, "input_size": side,
            "reported_params": info.reported_params, "reported_gmacs": info.reported_gmacs,
            "reported_input": info.reported_input,
        }
        row = [Cell(model), Cell(record["params_paper_unit"] or MISSING),
               Cell(f"{gflops:.2f}{_side_suffix(side)}" if gflops is not None else MISSING),
               Cell(_gmacs_text(prof, side)), Cell(fmt_params(info.reported_params)),
               Cell(fmt_gmacs(info.reported_gmacs)), Cell(info.reported_input or MISSING)]
        row += _throughput_cells(model, results, record)
        rows.append(row)
        records.append(record)
    notes = ["Published after the paper. Ours: params in the paper's unit, GFLOPs by the release's counter and "
             "fvcore's GMACs, all at 512x512 for 2 classes; reported: the figures of each model's own paper, at "
             "its own input size and class count."]
    numeric = [False, True, True, True, True, True, False] + [True] * len(results.devices)
    return Table("since_paper", "Since the paper: lightweight nets published after 2021", headers, numeric, rows,
                 notes, ours=[True] * len(rows)), records


def _device_name(device: str, results: Results) -> str:
    names = sorted({p.device_name for p in results.profiles if p.device == device and p.device_name})
    return ", ".join(names) or device


def all_table_files(results: Results) -> list[TableFile]:
    return [efficiency_file(results), miniseg_file(results), accuracy_file(results), strict_file(results),
            per_fold_file(results), *deployment_files(results)]
