"""LEDNet (Wang et al., "LEDNet: A Lightweight Encoder-Decoder Network for Real-Time Semantic
Segmentation", ICIP 2019 / arXiv 1905.02423) as the MiniSeg release builds it
(`full_code/models/Baselines/Others/LEDNet.py`).

Encoder: down-sampling units (two 3x3 stride-2 convs, padding 2, each followed by one shared
2x2 stride-1 max-pool, concatenated; no BN or activation) and split-shuffle-non-bottleneck
(SS-nbt) units: the input is split into two channel halves, each goes through factorised
3x1/1x3 convs (ReLU between, BN + ReLU after each pair, the second pair dilated; the two halves
in opposite orders), the halves are concatenated, added to the input, ReLU, channel-shuffled
(2 groups). Stages: down 3->32, 3 SS-nbt; down 32->64, 2 SS-nbt; down 64->128, 8 SS-nbt with
dilations 1, 2, 5, 9, 2, 5, 9, 17. Decoder (attention pyramid network, APN): 3x3, 5x5, 7x7
stride-2 conv-BN-ReLU pyramid (128 channels) over the 1/8 features; each level mapped to the
classes by a 1x1 conv-BN-ReLU and fused top-down (upsample + add, align_corners=True) into a
map that multiplies a 1x1 conv-BN-ReLU of the features; a global-average-pool branch is added;
bilinear upsampling to the input size (align_corners=True). All convs bias-free. LEDNet's own
paper reports 0.94M params; the release's APN with 128-channel pyramid convs makes 2.31M.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBNAct, channel_shuffle
from ._registry import register_model

STAGE3_DILATIONS = (1, 2, 5, 9, 2, 5, 9, 17)
PYRAMID_KERNELS = (3, 5, 7)


def _resize_aligned(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True (LEDNet's upsampling)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class Downsampling(nn.Module):
    """Two 3x3 stride-2 convs (padding 2) to half the output channels each, one shared 2x2 stride-1 max-pool, concat."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch // 2, 3, 2, 2, bias=False)
        self.conv2 = nn.Conv2d(in_ch, out_ch // 2, 3, 2, 2, bias=False)
        self.pool = nn.MaxPool2d(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pool(self.conv1(x)), self.pool(self.conv2(x))], 1)


def _line_conv(channels: int, vertical: bool, dilation: int) -> nn.Conv2d:
    """A bias-free 3x1 (vertical) or 1x3 conv with the dilation along its long side; size-preserving."""
    if vertical:
        return nn.Conv2d(channels, channels, (3, 1), padding=(dilation, 0), dilation=(dilation, 1), bias=False)
    return nn.Conv2d(channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation), bias=False)


def _factorised(channels: int, dilation: int, vertical_first: bool) -> nn.Sequential:
    """Two factorised 3x3 convs (ReLU between the halves, BN + ReLU after each), the second dilated."""
    first, second = vertical_first, not vertical_first
    return nn.Sequential(
        _line_conv(channels, first, 1), nn.ReLU(inplace=True), _line_conv(channels, second, 1),
        nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        _line_conv(channels, first, dilation), nn.ReLU(inplace=True), _line_conv(channels, second, dilation),
        nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
    )  # fmt: skip


class SSnbt(nn.Module):
    """Split-shuffle-non-bottleneck: split in halves -> two factorised branches -> concat + input -> ReLU -> shuffle."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        half = channels // 2
        self.left = _factorised(half, dilation, vertical_first=True)
        self.right = _factorised(half, dilation, vertical_first=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = x.chunk(2, dim=1)
        y = torch.cat([self.left(left), self.right(right)], 1)
        return channel_shuffle(self.act(y + x), 2)


class AttentionPyramid(nn.Module):
    """LEDNet's APN decoder: 3x3/5x5/7x7 stride-2 pyramid attention times a 1x1 conv, plus global context."""

    def __init__(self, in_ch: int, num_classes: int) -> None:
        super().__init__()
        self.down = nn.ModuleList(ConvBNAct(in_ch, in_ch, k, 2) for k in PYRAMID_KERNELS)
        self.to_classes = nn.ModuleList(ConvBNAct(in_ch, num_classes, 1) for _ in PYRAMID_KERNELS)
        self.mid = ConvBNAct(in_ch, num_classes, 1)
        self.glob = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNAct(in_ch, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels, y = [], x
        for down in self.down:
            y = down(y)
            levels.append(y)
        attention = self.to_classes[-1](levels[-1])
        for head, level in zip(reversed(self.to_classes[:-1]), reversed(levels[:-1])):
            attention = head(level) + _resize_aligned(attention, level.shape[-2:])
        attention = _resize_aligned(attention, x.shape[-2:])
        return self.glob(x) + self.mid(x) * attention


class LEDNet(nn.Module):
    """LEDNet: SS-nbt encoder at 1/8 and the attention pyramid decoder."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            Downsampling(in_channels, 32),
            *(SSnbt(32) for _ in range(3)),
            Downsampling(32, 64),
            *(SSnbt(64) for _ in range(2)),
            Downsampling(64, 128),
            *(SSnbt(128, d) for d in STAGE3_DILATIONS),
        )
        self.decoder = AttentionPyramid(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _resize_aligned(self.decoder(self.encoder(x)), x.shape[-2:])


@register_model(
    "lednet",
    family="lednet",
    paper_name="LEDNet",
    reference="Wang et al., LEDNet: A Lightweight Encoder-Decoder Network for Real-Time Semantic Segmentation, ICIP 2019",
    notes="the release's Others/LEDNet.py (2,313,972 params at 2 classes): APN pyramid convs at 128 channels and "
    "1x1 class projections; no dropout in the SS-nbt units. LEDNet's own paper reports 0.94M params",
    input_multiple=8,
    min_input_size=64,
)
def lednet(num_classes: int = 2, in_channels: int = 3) -> LEDNet:
    """LEDNet, the release's build."""
    return LEDNet(num_classes, in_channels)
