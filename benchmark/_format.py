"""Plain-text table printing for the CLI."""
from __future__ import annotations

from typing import Any, Sequence


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Left-aligned text, numbers right-aligned, one header line and a rule."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    print(format_table(rows, columns))


#: Models printed in thousands in the paper's Table 4 (MiniSeg's 82.91K is its only row under 335K params).
PAPER_K_BELOW = 100_000


def params_text(count: float, k_below: float = PAPER_K_BELOW) -> str:
    """A parameter count as a paper prints it: thousands ('K') below `k_below`, else millions ('M'), 2 decimals.

    The default is the MiniSeg paper's Table 4 (82910 -> '82.91K', 363197 -> '0.36M'; its CSV stores each
    printed figure times its unit); `k_below=1_000_000` keeps thousands up to a million ('878.00K').
    """
    return f"{count / 1e3:.2f}K" if count < k_below else f"{count / 1e6:.2f}M"


def paper_unit_params(count: int) -> str:
    """A parameter count as the paper's Table 4 prints it (the release's counter, then the authors' units).

    The counter prints thousands (n / 1e3, 'K'); under 100K the paper keeps them (MiniSeg: 82.91K);
    under 1M it prints n / 1e6 (ENet: 363,197 -> 0.36M); from 1M on it divides the thousands by 1024
    (U-Net: 8,637,378 -> 8.43M).
    """
    return params_text(count) if count < 1_000_000 else f"{count / 1_024_000:.2f}M"
