"""Tables 4 and 5 (ours beside the paper's), strict-policy and per-fold tables; Markdown, CSV, LaTeX.

Output is deterministic: rows in a fixed order, floats with a fixed number of decimals,
no timestamps, so committed reports can be compared byte for byte.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .load import PAPER_METRICS, Entry, Profile, Results
from .paper import PAPER_DATASETS, paper_accuracy, paper_efficiency

MISSING = "—"
METRIC_LABEL = {
    "miou": "mIoU", "sen": "SEN", "spc": "SPC", "dsc": "DSC", "hd": "HD", "hd95": "HD95",
    "iou": "IoU", "precision": "Precision", "dsc_pooled": "DSC pooled",
}
STRICT_ORDER = ("miou", "sen", "spc", "dsc", "hd", "hd95", "iou", "precision", "dsc_pooled")
LOWER_IS_BETTER = frozenset({"hd", "hd95"})
N_FOLDS = 5


@dataclass(frozen=True)
class Cell:
    """A displayed cell: its text and whether it is marked best (bold)."""

    text: str
    bold: bool = False


@dataclass
class Table:
    """One displayed table (e.g. Table 5 on one dataset)."""

    key: str
    title: str
    headers: list[str]
    numeric: list[bool]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)
    ours: list[bool] = field(default_factory=list)  # rows holding a result of ours (highlighted in HTML)


@dataclass
class TableFile:
    """Tables written together as <stem>.md/.tex, with one long-format <stem>.csv of the raw values."""

    stem: str
    title: str
    tables: list[Table]
    csv_columns: list[str]
    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


# --- number formatting -------------------------------------------------------------------

def fmt(value: float | None, digits: int = 2) -> str:
    """Fixed decimals, or the missing mark."""
    return MISSING if value is None else f"{value:.{digits}f}"


def fmt_ci(mean: float | None, interval: tuple[float, float] | None) -> str:
    """'75.91 [73.44, 78.22]': the mean and its 95% CI; the missing mark without a mean."""
    if mean is None:
        return MISSING
    if interval is None or any(v is None or math.isnan(v) for v in interval):
        return fmt(mean)
    return f"{mean:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def significance_text(versus: dict[str, Any] | None) -> str:
    """The significance cell: 'reference', 'better (p=…)', 'worse (p=…)', 'n.s. (p=…)' after Holm; — untested."""
    if versus is None:
        return MISSING
    if versus.get("reference"):
        return "reference"
    p = versus.get("p_holm")
    p_text = MISSING if p is None else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")
    word = versus.get("direction") if versus.get("significant") else "n.s."
    return f"{word or 'n.s.'} (p={p_text})"


def fmt_pm(mean: float | None, std: float | None) -> str:
    """'75.91 ± 1.23'; the std is left out where only one fold exists."""
    if mean is None:
        return MISSING
    return fmt(mean) if std is None else f"{mean:.2f} ± {std:.2f}"


def fmt_diff(value: float | None) -> str:
    """Signed difference with two decimals ('+0.00', never '-0.00')."""
    if value is None:
        return MISSING
    text = f"{value:+.2f}"
    return "+0.00" if text == "-0.00" else text


def fmt_params(count: int | None) -> str:
    """82912 -> '82.91K', 8430000 -> '8.43M' (as the paper writes them)."""
    if count is None:
        return MISSING
    if count >= 1_000_000:
        return f"{count / 1e6:.2f}M"
    return f"{count / 1e3:.2f}K"


def fmt_gmacs(value: float | None) -> str:
    """Three decimals below 1 GMAC (MiniSeg's 0.512), two above."""
    if value is None:
        return MISSING
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def fmt_rate(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.1f}"


def metric_label(key: str) -> str:
    return METRIC_LABEL.get(key, key)


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
    return Table(dataset, title, headers, [False] * 4 + [True] * 15 + [False], rows, notes, ours), records


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

def _gmacs_text(profile: Profile | None, input_side: int | None) -> str:
    if profile is None or profile.gmacs is None:
        return MISSING
    suffix = f" ({input_side}²)" if input_side and input_side != 512 else ""
    return fmt_gmacs(profile.gmacs) + suffix


def efficiency_file(results: Results) -> TableFile:
    """Table 4: params, GMACs and throughput per measured device beside the paper's params, GFLOPs, FPS."""
    devices = results.devices
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
    pairs.extend((None, m) for m in models if paper_by_name.get(m) not in known)
    headers = ["Method (paper)", "Ours", "Backbone", "Params paper", "Params", "GMACs paper", "GMACs", "FPS paper"]
    headers += [f"img/s {d}" for d in devices]
    rows, records = [], []
    for ref, model in pairs:
        prof = results.profile_of(model)
        side = prof.input_side if prof else None
        row = [Cell(ref.method if ref else MISSING), Cell(model or MISSING),
               Cell((ref.backbone if ref else None) or MISSING),
               Cell(fmt_params(ref.params if ref else None)), Cell(fmt_params(prof.params if prof else None)),
               Cell(fmt_gmacs(ref.gmacs) if ref else MISSING), Cell(_gmacs_text(prof, side)),
               Cell(fmt_rate(ref.fps if ref else None))]
        record: dict[str, Any] = {
            "method": ref.method if ref else None, "model": model, "backbone": ref.backbone if ref else None,
            "paper_params": ref.params if ref else None, "params": prof.params if prof else None,
            "params_inference": prof.params_inference if prof else None,
            "paper_gmacs": ref.gmacs if ref else None, "gmacs": prof.gmacs if prof else None,
            "input_size": side, "paper_fps": ref.fps if ref else None,
        }
        for device in devices:
            dev = next((p for p in results.profiles if p.model == model and p.device == device), None)
            rate, batch = (dev.throughput_img_s, dev.batch_size) if dev else (None, None)
            row.append(Cell(fmt_rate(rate) + (f" (bs{batch})" if rate is not None and batch != 30 else "")))
            record.update({f"img_s_{device}": rate, f"batch_size_{device}": batch})
        rows.append(row)
        records.append(record)
    columns = ["method", "model", "backbone", "paper_params", "params", "params_inference", "paper_gmacs", "gmacs",
               "input_size", "paper_fps"] + [f"{k}_{d}" for d in devices for k in ("img_s", "batch_size")]
    notes = [
        "Paper: #Param of the training model, GFLOPs counted as multiply-accumulates (= GMACs) at 1x3x512x512, "
        "FPS on a TITAN RTX at batch 30. Ours: the same counts (fvcore) at 512x512 unless the input side is "
        "shown (N²); img/s eager fp32 at batch 30 unless another batch is shown (bsN). — : not measured.",
    ]
    if devices:
        notes.append("Devices: " + "; ".join(f"{d} = {_device_name(d, results)}" for d in devices) + ".")
    table = Table("efficiency", "Table 4: efficiency beside the paper", headers,
                  [False, False, False] + [True] * (5 + len(devices)), rows, ours=[m is not None for _, m in pairs])
    return TableFile("table4_efficiency", "Table 4: efficiency", [table], columns, records, notes)


def _device_name(device: str, results: Results) -> str:
    names = sorted({p.device_name for p in results.profiles if p.device == device and p.device_name})
    return ", ".join(names) or device


def all_table_files(results: Results) -> list[TableFile]:
    return [efficiency_file(results), miniseg_file(results), accuracy_file(results), strict_file(results),
            per_fold_file(results)]


# --- renderers ---------------------------------------------------------------------------------

def _md_cell(cell: Cell) -> str:
    text = cell.text.replace("|", "\\|")
    return f"**{text}**" if cell.bold else text


def table_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in table.headers) + " |",
             "|" + "|".join("---:" if n else "---" for n in table.numeric) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_markdown(tf: TableFile) -> str:
    parts = [f"# {tf.title}", "", "<!-- generated by `run_benchmark.py report` from results/; do not edit -->", ""]
    parts += [f"{note}\n" for note in tf.notes]
    for table in tf.tables:
        parts += [f"## {table.title}", "", table_markdown(table) if table.rows else "No results.", ""]
        parts += [f"- {note}" for note in table.notes] + ([""] if table.notes else [])
    return "\n".join(parts).rstrip() + "\n"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
LATEX_UNICODE = {"±": r"$\pm$", "—": "--", "Δ": r"$\Delta$", "²": r"$^2$", "−": "$-$"}


def latex_escape(text: str) -> str:
    out = "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)
    for char, repl in LATEX_UNICODE.items():
        out = out.replace(char, repl)
    return out


def table_latex(table: Table, label: str) -> str:
    """One table environment (booktabs rules; wide tables scaled to the text width with graphicx)."""
    spec = "".join("r" if n else "l" for n in table.numeric)
    body = [" & ".join(latex_escape(h) for h in table.headers) + r" \\", r"\midrule"]
    for row in table.rows:
        cells = [rf"\textbf{{{latex_escape(c.text)}}}" if c.bold else latex_escape(c.text) for c in row]
        body.append(" & ".join(cells) + r" \\")
    return "\n".join([
        r"\begin{table}[ht]", r"\centering", rf"\caption{{{latex_escape(table.title)}}}", rf"\label{{{label}}}",
        r"\resizebox{\textwidth}{!}{%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule", *body, r"\bottomrule",
        r"\end{tabular}}", r"\end{table}",
    ])


def to_latex(tf: TableFile) -> str:
    parts = [f"% {tf.title}", "% generated by `run_benchmark.py report` from results/; do not edit",
             "% needs \\usepackage{booktabs,graphicx}", ""]
    for table in tf.tables:
        if table.rows:
            parts += [table_latex(table, f"tab:{tf.stem}:{table.key}"), ""]
    return "\n".join(parts).rstrip() + "\n"


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def to_csv(tf: TableFile) -> str:
    """Raw values, long format, four decimals; an empty field is a missing value."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(tf.csv_columns)
    for record in tf.records:
        writer.writerow([_csv_value(record.get(c)) for c in tf.csv_columns])
    return buf.getvalue()


RENDERERS: dict[str, Callable[[TableFile], str]] = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
