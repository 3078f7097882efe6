"""How the report displays things: numbers as text (fixed decimals, the missing mark) and tables as cells.

Every table builder (tables.py) fills `Table`s of `Cell`s with these formatters; the renderers (render.py,
html.py) only lay them out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .._format import params_text

MISSING = "—"
METRIC_LABEL = {
    "miou": "mIoU", "sen": "SEN", "spc": "SPC", "dsc": "DSC", "hd": "HD", "hd95": "HD95",
    "iou": "IoU", "precision": "Precision", "dsc_pooled": "DSC pooled",
}


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


# --- numbers as text ---------------------------------------------------------------------------

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
    """82912 -> '82.91K', 878000 -> '878.00K', 8430000 -> '8.43M' (thousands up to a million)."""
    return MISSING if count is None else params_text(count, k_below=1_000_000)


def fmt_gmacs(value: float | None) -> str:
    """Three decimals below 1 GMAC (MiniSeg's 0.512), two above."""
    if value is None:
        return MISSING
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def fmt_rate(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.1f}"


def metric_label(key: str) -> str:
    return METRIC_LABEL.get(key, key)
