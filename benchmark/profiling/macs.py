"""Multiply-accumulate counts: fvcore (the paper's convention) cross-checked by torch's FlopCounterMode."""
from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class MacCount:
    """MACs of one forward; `flop_counter_gmacs` is torch's count (FLOPs / 2), None if it failed."""

    gmacs: float
    unsupported_ops: dict[str, int] = field(default_factory=dict)
    flop_counter_gmacs: float | None = None

    @property
    def gflops(self) -> float:
        """FLOPs counting one multiply-accumulate as two operations."""
        return 2 * self.gmacs


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the block and restore its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _quiet_fvcore() -> Iterator[None]:
    """Silence fvcore's logger and the tracer's Python warnings (deprecations, TracerWarning)."""
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def fvcore_macs(model: nn.Module, inputs: torch.Tensor) -> tuple[int, dict[str, int]]:
    """fvcore's total (one count per multiply-accumulate) and the ops it could not count."""
    with _quiet_fvcore(), eval_mode(model), torch.no_grad():
        from fvcore.nn import FlopCountAnalysis  # importing it warns about torch.jit.script

        analysis = FlopCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        total = analysis.total()
        unsupported = dict(sorted(analysis.unsupported_ops().items()))
    return int(total), unsupported


def flop_counter_macs(model: nn.Module, inputs: torch.Tensor) -> int:
    """torch.utils.flop_counter's FLOPs of one forward, halved to MACs (it counts 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    with eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(inputs)
    return counter.get_total_flops() // 2


def count_macs(
    model: nn.Module, input_shape: Sequence[int] = (1, 3, 512, 512), device: str | torch.device = "cpu"
) -> MacCount:
    """MACs of one eval-mode forward on `input_shape` (fvcore), with torch's count beside it."""
    inputs = torch.randn(*input_shape, device=device)
    total, unsupported = fvcore_macs(model, inputs)
    try:
        cross_check: float | None = flop_counter_macs(model, inputs) / 1e9
    except Exception:  # noqa: BLE001 - the cross-check is optional; fvcore's count stands alone
        cross_check = None
    return MacCount(gmacs=total / 1e9, unsupported_ops=unsupported, flop_counter_gmacs=cross_check)
