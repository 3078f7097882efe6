"""Our counts of a model the way the paper's Table 4 counted its row: which part, which unit, which convention.

For four rows (MobileNet, MobileNetv2, ShuffleNet, ShuffleNetv2) Table 4 printed the backbone's
figures alone (`table4_authors_builds.csv`, `as_built` "... backbone only"); our models of those rows
expose that backbone as a `backbone` attribute of their network, and it is counted instead.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch import nn

from .._format import paper_unit_params
from .macs import fvcore_counter
from .meta import meta_copy, model_device
from .paper_flops import count_paper_flops, counted_forward
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


def paper_counts(
    model: nn.Module, paper_name: str | None, input_size: int = 512, *, aux_heads: bool = False,
    with_fvcore: bool = False,
) -> dict[str, Any]:
    """params, params in the paper's unit and gflops_paper of the part Table 4 counted for `paper_name`.

    `counted` says which part ("network", "backbone") or why none could be counted; `aux_heads`
    (the model has auxiliary heads) counts the whole network's training graph, as the release did.
    `with_fvcore` adds fvcore's GMACs of the same graph (`fvcore_gmacs`: fvcore's rules, counted on meta
    tensors in the same forward).
    """
    part, counted = counted_part(model, paper_name)
    if part is None:
        return {"counted": counted, "params": None, "params_paper_unit": None, "gflops_paper": None,
                **({"fvcore_gmacs": None} if with_fvcore else {})}
    params = count_params(part)
    aux_heads = aux_heads and part is model
    out: dict[str, Any] = {"counted": counted, "params": params, "params_paper_unit": paper_unit_params(params)}
    if not with_fvcore:
        return {**out, "gflops_paper": count_paper_flops(part, input_size, aux_heads=aux_heads).gflops}
    net = part if model_device(part).type == "meta" else meta_copy(part)
    with fvcore_counter() as fvcore:
        paper, outputs = counted_forward(net, torch.empty(1, 3, input_size, input_size, device="meta"), aux_heads)
    return {**out, "gflops_paper": paper.gflops, "fvcore_gmacs": fvcore.live_total(outputs) / 1e9}
