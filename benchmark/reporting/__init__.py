"""Reports regenerated from results/: tables (Markdown, CSV, LaTeX), figures (PNG) and index.html.

`write_report(results_dir, out_dir)` is the one entry point; `run_benchmark.py report` calls it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_write_json, atomic_write_text
from .figures import all_figures, save_png
from .html import page
from .load import Results, load_results
from .render import RENDERERS
from .tables import all_table_files

__all__ = ["Report", "write_report", "load_results"]

OWNED_DIRS = {"tables": {".md", ".csv", ".tex"}, "figures": {".png"}, "stats": {".json"}}


@dataclass(frozen=True)
class Report:
    """What one report run wrote."""

    out_dir: Path
    index: Path
    files: tuple[Path, ...]
    results: Results


def _remove_stale(out_dir: Path, written: set[Path]) -> None:
    """Delete files a previous report wrote that this one did not (only in tables/ and figures/)."""
    for sub, suffixes in OWNED_DIRS.items():
        for path in sorted((out_dir / sub).glob("*")):
            if path.is_file() and path.suffix in suffixes and path not in written:
                path.unlink()


def write_report(results_dir: str | Path, out_dir: str | Path, data_root: str | Path | None = None) -> Report:
    """Read every record under `results_dir` and (re)write tables/, figures/ and index.html in `out_dir`
    (`data_root`: where datasets of your own are, for their patients in the statistics)."""
    from .deployment import load_deployment
    from .significance import all_stats

    results = load_results(results_dir)
    keys = sorted({e.dataset for e in results.entries})
    results = dataclasses.replace(results, significance=all_stats(results_dir, keys, data_root),
                                  deployment=load_deployment(results_dir))
    out_dir = Path(out_dir)
    written: list[Path] = []
    for key, stats_here in sorted(results.significance.items()):  # what `compare --json` prints, per dataset
        written.append(atomic_write_json(out_dir / "stats" / f"compare_{key}.json", stats_here.comparison.result))
    table_files = all_table_files(results)
    for tf in table_files:
        for ext, render in RENDERERS.items():
            written.append(atomic_write_text(out_dir / "tables" / f"{tf.stem}.{ext}", render(tf)))
    figures = all_figures(results)
    for spec in figures:
        written.append(save_png(spec.figure, out_dir / "figures" / f"{spec.name}.png"))
    index = atomic_write_text(out_dir / "index.html", page(results, table_files, figures))
    written.append(index)
    _remove_stale(out_dir, set(written))
    return Report(out_dir, index, tuple(sorted(written)), results)
