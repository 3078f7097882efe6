"""LEDNet (Wang et al., "LEDNet: A Lightweight Encoder-Decoder Network for Real-Time Semantic
Segmentation", ICIP 2019 / arXiv 1905.02423), written from the paper.

Encoder: downsampling units (3x3 stride-2 conv beside a max-pool) and split-shuffle-non-
bottleneck (SS-nbt) units: the input is split into two channel halves, each goes through
factorised 3x1/1x3 convs (the second pair dilated; the two halves in opposite orders),
the halves are concatenated, added to the input, and channel-shuffled (2 groups). Stages:
down 3->32, 3 SS-nbt; down 32->64, 2 SS-nbt; down 64->128, 8 SS-nbt with dilations
1, 2, 5, 9, 2, 5, 9, 17. Decoder: the attention pyramid network (APN): a 3x3, 5x5, 7x7
stride-2 conv pyramid over the 1/8 features, each level mapped to the classes by a conv of
its kernel size and fused top-down (upsample + add) into an attention map that multiplies
a 1x1 conv of the features; a global-average-pool branch is added; bilinear upsampling x8.
The pyramid convs keep 128 channels: with them the model has 2.29M params, close to the
table's 2.26M (LEDNet's own paper reports 0.94M in all; our encoder alone has 0.91M).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .edanet import DownsamplingBlock
from .layers import ConvBNAct, channel_shuffle, upsample_to
from .registry import register_model

STAGE3_DILATIONS = (1, 2, 5, 9, 2, 5, 9, 17)


def _line_conv(channels: int, vertical: bool, dilation: int) -> nn.Conv2d:
    """A 3x1 (vertical) or 1x3 conv with the dilation along its long side; size-preserving."""
    if vertical:
        return nn.Conv2d(channels, channels, (3, 1), padding=(dilation, 0), dilation=(dilation, 1))
    return nn.Conv2d(channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation))


def _factorised(channels: int, dilation: int, vertical_first: bool) -> nn.Sequential:
    """Two factorised 3x3 convs (ReLU between the halves, BN after each), the second dilated; no final ReLU."""
    order = (vertical_first, not vertical_first)
    return nn.Sequential(
        _line_conv(channels, order[0], 1), nn.ReLU(inplace=True), _line_conv(channels, order[1], 1),
        nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        _line_conv(channels, order[0], dilation), nn.ReLU(inplace=True), _line_conv(channels, order[1], dilation),
        nn.BatchNorm2d(channels),
    )  # fmt: skip


class SSnbt(nn.Module):
    """Split-shuffle-non-bottleneck: split in halves -> two factorised branches -> concat + input -> ReLU -> shuffle."""

    def __init__(self, channels: int, dilation: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        half = channels // 2
        self.left = _factorised(half, dilation, vertical_first=True)
        self.right = _factorised(half, dilation, vertical_first=False)
        self.dropout = nn.Dropout2d(dropout)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = x.chunk(2, dim=1)
        y = self.dropout(torch.cat([self.left(left), self.right(right)], 1))
        return channel_shuffle(self.act(y + x), 2)


class AttentionPyramid(nn.Module):
    """LEDNet's APN decoder: 3x3/5x5/7x7 stride-2 pyramid attention times a 1x1 conv, plus global context."""

    def __init__(self, in_ch: int, num_classes: int) -> None:
        super().__init__()
        self.down = nn.ModuleList(ConvBNAct(in_ch, in_ch, k, 2) for k in (3, 5, 7))
        self.to_classes = nn.ModuleList(ConvBNAct(in_ch, num_classes, k) for k in (3, 5, 7))
        self.mid = ConvBNAct(in_ch, num_classes, 1)
        self.glob = ConvBNAct(in_ch, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels, y = [], x
        for down, head in zip(self.down, self.to_classes):
            y = down(y)
            levels.append(head(y))
        attention = levels[-1]
        for level in reversed(levels[:-1]):
            attention = upsample_to(attention, level.shape[-2:]) + level
        attention = upsample_to(attention, x.shape[-2:])
        glob = self.glob(F.adaptive_avg_pool2d(x, 1)).expand(-1, -1, *x.shape[-2:])
        return self.mid(x) * attention + glob


class LEDNet(nn.Module):
    """LEDNet: SS-nbt encoder at 1/8 and the attention pyramid decoder."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            DownsamplingBlock(in_channels, 32),
            *(SSnbt(32, 1, 0.03) for _ in range(3)),
            DownsamplingBlock(32, 64),
            *(SSnbt(64, 1, 0.03) for _ in range(2)),
            DownsamplingBlock(64, 128),
            *(SSnbt(128, d, 0.3) for d in STAGE3_DILATIONS),
        )
        self.decoder = AttentionPyramid(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.decoder(self.encoder(x)), x.shape[-2:])


@register_model(
    "lednet",
    family="lednet",
    paper_name="LEDNet",
    reference="Wang et al., LEDNet: A Lightweight Encoder-Decoder Network for Real-Time Semantic Segmentation, ICIP 2019",
    notes="written from the paper; APN pyramid convs at 128 channels (2.29M params, near the table's 2.26M; "
    "LEDNet's own paper reports 0.94M, our encoder alone has 0.91M)",
    input_multiple=8,
    min_input_size=64,
)
def lednet(num_classes: int = 2, in_channels: int = 3) -> LEDNet:
    """LEDNet."""
    return LEDNet(num_classes, in_channels)
