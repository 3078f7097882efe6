"""Our counts of a model the way the paper's Table 4 counted its row: which part, which unit, which convention.

For four rows (MobileNet, MobileNetv2, ShuffleNet, ShuffleNetv2) Table 4 printed the backbone's
figures alone (`table4_authors_builds.csv`, `as_built` "... backbone only"); our models of those rows
expose that backbone as a `backbone` attribute of their network, and it is counted instead.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from torch import nn

from .._format import paper_unit_params
from .paper_flops import count_paper_flops
from .params import count_params

BACKBONE_NOTE = "Table 4 counted the backbone alone"
NO_BACKBONE = "backbone count n/a: the model exposes no `backbone` module"


@lru_cache(maxsize=None)
def backbone_only_rows() -> frozenset[str]:
    """Table 4 rows whose printed params and GFLOPs are those of the backbone alone (from the authors' builds)."""
    from ..paper import authors_builds

    builds = authors_builds()
    return frozenset(builds.loc[builds["as_built"].str.contains("backbone only", case=False), "method"])


def find_backbone(model: nn.Module) -> nn.Module | None:
    """The `backbone` module of `model` or, for a wrapper, of the first inner module that has one."""
    for module in model.modules():
        candidate = getattr(module, "backbone", None)
        if isinstance(candidate, nn.Module):
            return candidate
    return None


def counted_part(model: nn.Module, paper_name: str | None) -> tuple[nn.Module | None, str]:
    """(the part Table 4 counted for this row, "network" or "backbone"); (None, reason) if it cannot be found."""
    if paper_name not in backbone_only_rows():
        return model, "network"
    backbone = find_backbone(model)
    return (backbone, "backbone") if backbone is not None else (None, NO_BACKBONE)


def paper_counts(model: nn.Module, paper_name: str | None, input_size: int = 512) -> dict[str, Any]:
    """params, params in the paper's unit and gflops_paper of the part Table 4 counted for `paper_name`.

    `counted` says which part ("network", "backbone") or why none could be counted.
    """
    part, counted = counted_part(model, paper_name)
    if part is None:
        return {"counted": counted, "params": None, "params_paper_unit": None, "gflops_paper": None}
    params = count_params(part)
    return {
        "counted": counted,
        "params": params,
        "params_paper_unit": paper_unit_params(params),
        "gflops_paper": count_paper_flops(part, input_size).gflops,
    }
