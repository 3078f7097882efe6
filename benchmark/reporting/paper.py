"""The paper's Tables 4 and 5 as typed rows for the report (read by benchmark.paper from the package data)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .. import paper
from ..evaluation import PAPER_METRICS
from .load import number

PAPER_DATASETS = paper.PAPER_DATASETS
CSV_METRIC = {"miou": "mIoU", "sen": "SEN", "spc": "SPC", "dsc": "DSC", "hd": "HD"}


@dataclass(frozen=True)
class PaperEfficiency:
    """A row of the paper's Table 4 (FLOPs there are MACs at 1x3x512x512; FPS on a TITAN RTX, batch 30)."""

    method: str
    backbone: str | None
    params: int
    gmacs: float
    fps: float


@lru_cache(maxsize=None)
def paper_efficiency() -> tuple[PaperEfficiency, ...]:
    """Table 4 in the paper's row order."""
    return tuple(
        PaperEfficiency(r.method, r.backbone if isinstance(r.backbone, str) and r.backbone else None,
                        int(r.params), float(r.gflops), float(r.fps))
        for r in paper.table4().itertuples(index=False)
    )


@lru_cache(maxsize=None)
def paper_accuracy() -> dict[str, dict[str, dict[str, float]]]:
    """Table 5 as {dataset: {method: {metric: value}}}, methods in the paper's order."""
    table: dict[str, dict[str, dict[str, float]]] = {d: {} for d in PAPER_DATASETS}
    for row in paper.table5().to_dict("records"):
        for dataset in PAPER_DATASETS:
            values = {m: number(row.get(f"{dataset}_{CSV_METRIC[m]}")) for m in PAPER_METRICS}
            table[dataset][row["method"]] = {k: v for k, v in values.items() if v is not None}
    return table


def paper_methods() -> list[str]:
    """The paper's method names, Table 4 order."""
    return paper.paper_rows()
