"""FRRN A (Pohlen, Hermans, Mathias & Leibe, CVPR 2017) as the MiniSeg authors built it.

Two streams, named as the paper: the pooling stream y goes down and up like an
encoder-decoder for recognition; the residual stream z (32 channels) stays at full
resolution and carries precise boundaries. Each full-resolution residual unit (FRRU)
max-pools z to y's scale (3x3 window, stride = scale, padding 1), concatenates it to y,
applies two 3x3 conv-BN-ReLU (the new y), and adds a 1x1 projection of the new y (with
bias), bilinearly upsampled (align_corners=True), back onto z.

FRRN A (the paper's Table 1), laid out as `full_code/models/Baselines/FRRN.py`: 5x5 conv 48
(with bias) -> BN -> ReLU, 3 RU48; split (1x1 conv to z); between levels y is max-pooled
(3x3, stride 2, padding 1) on the way down and bilinearly upsampled x2 on the way up; 3 FRRU96
(/2), 4 FRRU192 (/4), 2 FRRU384 (/8), 2 FRRU384 (/16); 2 FRRU192 (/8), 2 FRRU192 (/4), 2 FRRU96
(/2); merge: concatenation then a 1x1 conv (with bias) to 48; 3 RU48; 1x1 classifier.
RUs are ResNet basic blocks (bias-free convs). 17,711,474 params at 2 classes (Table 4: 17.30M
= params / 1,024,000).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model

RESIDUAL_CHANNELS = 32
STEM_CHANNELS = 48
STEM_UNITS = 3
# (number of FRRUs, channels) per pooling level; the level's scale is 2 ** (position + 1) going down
ENCODER = ((3, 96), (4, 192), (2, 384), (2, 384))
DECODER = ((2, 192), (2, 192), (2, 96))


def upsample_aligned(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Bilinear resize with align_corners=True (the authors' nn.UpsamplingBilinear2d)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def conv3x3_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """Bias-free 3x3 conv -> BN."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels))


class ResidualUnit(nn.Module):
    """RU: conv-BN-ReLU, conv-BN, identity shortcut, ReLU (a ResNet basic block; channels kept)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3_bn(channels, channels)
        self.conv2 = conv3x3_bn(channels, channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.conv2(self.relu(self.conv1(x))))


class FRRU(nn.Module):
    """Full-resolution residual unit: (pooling y, residual z) -> (y', z + up(1x1(y')))."""

    def __init__(self, in_channels: int, out_channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.pool = nn.MaxPool2d(3, stride=scale, padding=1)
        self.conv1 = conv3x3_bn(in_channels + RESIDUAL_CHANNELS, out_channels)
        self.conv2 = conv3x3_bn(out_channels, out_channels)
        self.relu = nn.ReLU()
        self.to_residual = nn.Conv2d(out_channels, RESIDUAL_CHANNELS, 1)

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.cat([y, self.pool(z)], dim=1)
        y = self.relu(self.conv2(self.relu(self.conv1(y))))
        return y, z + upsample_aligned(self.to_residual(y), z.shape[-2:])


def level_scales() -> list[int]:
    """Scale of each pooling level: 2, 4, 8, 16 going down, then 8, 4, 2 going up."""
    down = [2 ** (i + 1) for i in range(len(ENCODER))]
    return down + [2 ** (len(ENCODER) - i - 1) for i in range(len(DECODER))]


class FRRN(nn.Module):
    """FRRN A: residual stream at full resolution, pooling stream down to /16 and back to /2."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, STEM_CHANNELS, 5, padding=2),
            nn.BatchNorm2d(STEM_CHANNELS),
            nn.ReLU(),
            *(ResidualUnit(STEM_CHANNELS) for _ in range(STEM_UNITS)),
        )
        self.split = nn.Conv2d(STEM_CHANNELS, RESIDUAL_CHANNELS, 1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.levels = nn.ModuleList()
        previous = STEM_CHANNELS
        for (n_units, channels), scale in zip(ENCODER + DECODER, level_scales()):
            units = [FRRU(previous, channels, scale)] + [FRRU(channels, channels, scale) for _ in range(n_units - 1)]
            self.levels.append(nn.ModuleList(units))
            previous = channels
        self.merge = nn.Conv2d(previous + RESIDUAL_CHANNELS, STEM_CHANNELS, 1)
        self.tail = nn.Sequential(*(ResidualUnit(STEM_CHANNELS) for _ in range(STEM_UNITS)))
        self.classifier = nn.Conv2d(STEM_CHANNELS, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        z = self.split(y)
        for level, units in enumerate(self.levels):
            if level < len(ENCODER):
                y = self.pool(y)
            else:
                y = upsample_aligned(y, [2 * s for s in y.shape[-2:]])
            for unit in units:
                y, z = unit(y, z)
        y = upsample_aligned(y, z.shape[-2:])
        return self.classifier(self.tail(self.merge(torch.cat([y, z], dim=1))))


@register_model(
    "frrn",
    family="frrn",
    paper_name="FRRN",
    reference="Pohlen et al., Full-Resolution Residual Networks for Semantic Segmentation in Street Scenes, CVPR 2017",
    notes="the authors' build: FRRN A (the 4-level variant); merge is a plain 1x1 conv (no BN/ReLU); residual "
    "stream pooled by 3x3 max-pools with stride = scale",
    input_multiple=16,
)
def frrn(num_classes: int = 2, in_channels: int = 3) -> FRRN:
    """FRRN A with its two streams (17,711,474 params at 2 classes)."""
    return FRRN(num_classes, in_channels)
