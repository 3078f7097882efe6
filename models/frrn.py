"""FRRN A (Pohlen, Hermans, Mathias & Leibe, CVPR 2017), written from the paper.

Two streams: a residual stream at full resolution (32 channels) that carries precise
boundaries, and a pooling stream that goes down and up like an encoder-decoder for
recognition. Each full-resolution residual unit (FRRU) max-pools the residual stream to
the pooling stream's scale, concatenates, applies two 3x3 conv-BN-ReLU (the new pooling
stream), and adds a 1x1 projection of that, upsampled, back onto the residual stream.

FRRN A (the paper's Table 1): 5x5 conv 48, 3 RU48; split (1x1 conv to the 32-channel
residual stream); 3 FRRU96 (/2), 4 FRRU192 (/4), 2 FRRU384 (/8), 2 FRRU384 (/16);
2 FRRU192 (/8), 2 FRRU192 (/4), 2 FRRU96 (/2); merge by concatenation (1x1 conv to 48),
3 RU48, 1x1 classifier. Pooling-stream upsampling is bilinear.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import ConvBNAct, upsample_to
from .registry import register_model

RESIDUAL_CHANNELS = 32
STEM_CHANNELS = 48
# (number of FRRUs, channels) per pooling level; the level's scale is 2 ** (position + 1)
ENCODER = ((3, 96), (4, 192), (2, 384), (2, 384))
DECODER = ((2, 192), (2, 192), (2, 96))


class ResidualUnit(nn.Module):
    """RU: two 3x3 convs with BN, ReLU between, identity shortcut (channels kept)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(channels, channels), ConvBNAct(channels, channels, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class FRRU(nn.Module):
    """Full-resolution residual unit: (pooling z, residual y) -> (z', y + up(1x1(z')))."""

    def __init__(self, in_channels: int, out_channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.convs = nn.Sequential(
            ConvBNAct(in_channels + RESIDUAL_CHANNELS, out_channels), ConvBNAct(out_channels, out_channels)
        )
        self.to_residual = nn.Conv2d(out_channels, RESIDUAL_CHANNELS, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled_y = F.max_pool2d(y, self.scale)
        z = self.convs(torch.cat([z, pooled_y], dim=1))
        return z, y + F.interpolate(self.to_residual(z), scale_factor=self.scale, mode="nearest")


class FRRN(nn.Module):
    """FRRN A: residual stream at full resolution, pooling stream down to /16 and back to /2."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNAct(in_channels, STEM_CHANNELS, kernel_size=5), *(ResidualUnit(STEM_CHANNELS) for _ in range(3))
        )
        self.split = nn.Conv2d(STEM_CHANNELS, RESIDUAL_CHANNELS, 1)
        depth = len(ENCODER)
        scales = [2 ** (i + 1) for i in range(depth)] + [2 ** (depth - i - 1) for i in range(len(DECODER))]
        self.levels = nn.ModuleList()
        previous = STEM_CHANNELS
        for (n_units, channels), scale in zip(ENCODER + DECODER, scales):
            units = [FRRU(previous, channels, scale)] + [FRRU(channels, channels, scale) for _ in range(n_units - 1)]
            self.levels.append(nn.ModuleList(units))
            previous = channels
        self.merge = ConvBNAct(previous + RESIDUAL_CHANNELS, STEM_CHANNELS, kernel_size=1)
        self.tail = nn.Sequential(*(ResidualUnit(STEM_CHANNELS) for _ in range(3)))
        self.classifier = nn.Conv2d(STEM_CHANNELS, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.stem(x)
        y = self.split(z)
        for level, units in enumerate(self.levels):
            going_down = level < len(ENCODER)
            z = F.max_pool2d(z, 2) if going_down else F.interpolate(z, scale_factor=2.0, mode="bilinear")
            for unit in units:
                z, y = unit(z, y)
        z = self.merge(torch.cat([upsample_to(z, y.shape[-2:]), y], dim=1))
        return self.classifier(self.tail(z))


@register_model(
    "frrn",
    family="frrn",
    paper_name="FRRN",
    reference="Pohlen et al., Full-Resolution Residual Networks for Semantic Segmentation in Street Scenes, CVPR 2017",
    notes="FRRN A (the 4-level variant; Table 4's 17.3M matches it)",
    input_multiple=16,
)
def frrn(num_classes: int = 2, in_channels: int = 3) -> FRRN:
    """FRRN A with its two streams."""
    return FRRN(num_classes, in_channels)
