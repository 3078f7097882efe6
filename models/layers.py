"""Building blocks shared by several model files (no block is written twice)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def upsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to `size` (H, W) with align_corners=False; a no-op when already there."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvBNAct(nn.Sequential):
    """k x k conv (bias-free) -> BN -> activation; padding keeps the size at stride 1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6) else act())
        super().__init__(*layers)


class SegmentationHead(nn.Sequential):
    """Dropout (optional) then a 1x1 classifier conv with bias."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [nn.Dropout2d(dropout)] if dropout > 0 else []
        layers.append(nn.Conv2d(in_channels, num_classes, 1))
        super().__init__(*layers)


class ResizeOutputs(nn.Module):
    """Adapts a model to the output contract: logits at input size; aux only in train mode.

    `extract(raw)` turns the wrapped model's raw output into `(main, *aux)`.
    """

    def __init__(self, model: nn.Module, extract=None, keep_aux: bool = True) -> None:
        super().__init__()
        self.model = model
        self._extract = extract
        self.keep_aux = keep_aux

    def forward(self, x: torch.Tensor):
        raw = self.model(x)
        outs = self._extract(raw) if self._extract is not None else raw
        if not isinstance(outs, (tuple, list)):
            outs = (outs,)
        size = x.shape[-2:]
        if not (self.training and self.keep_aux):
            return upsample_to(outs[0], size)
        return tuple(upsample_to(o, size) for o in outs)
