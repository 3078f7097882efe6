"""EDANet (Lo et al., "Efficient Dense Modules of Asymmetric Convolution for Real-Time
Semantic Segmentation", ACM MM Asia 2019 / arXiv 1809.06323), written from the paper.

Downsampling block (from ENet's initial block): a 3x3 stride-2 conv beside a 2x2 max-pool
concatenated (when widening), else the conv alone, -> BN -> ReLU. EDA module: 1x1 conv to
k = 40 channels -> BN -> ReLU, asymmetric 3x1 + 1x3 conv -> BN -> ReLU, dilated 3x1 + 1x3
conv -> BN -> ReLU, dropout 0.02, and the 40 new channels concatenated to the input (dense
connection, growth rate 40). Blocks: down 3->15, down 15->60, 5 EDA modules (dilations
1,1,1,2,2) -> 260, down 260->130, 8 EDA modules (2,2,4,4,8,8,16,16) -> 450, 1x1 projection
to the classes at 1/8, bilinear upsampling x8.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import upsample_to
from .registry import register_model

GROWTH = 40
BLOCK1_DILATIONS = (1, 1, 1, 2, 2)
BLOCK2_DILATIONS = (2, 2, 4, 4, 8, 8, 16, 16)


class DownsamplingBlock(nn.Module):
    """3x3 stride-2 conv (+ 2x2 max-pool of the input, concatenated, when widening) -> BN -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2) if in_ch < out_ch else None
        self.conv = nn.Conv2d(in_ch, out_ch - in_ch if self.pool else out_ch, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool is not None:
            y = torch.cat([y, self.pool(x)], 1)
        return self.act(self.bn(y))


def _asymmetric(channels: int, dilation: int) -> list[nn.Module]:
    """3x1 then 1x3 conv with the given dilation, -> BN -> ReLU."""
    return [
        nn.Conv2d(channels, channels, (3, 1), padding=(dilation, 0), dilation=(dilation, 1)),
        nn.Conv2d(channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation)),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    ]


class EDAModule(nn.Module):
    """1x1 -> asymmetric 3x3 -> dilated asymmetric 3x3 -> dropout; output = concat(input, k new channels)."""

    def __init__(self, in_ch: int, dilation: int, growth: int = GROWTH, dropout: float = 0.02) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, growth, 1), nn.BatchNorm2d(growth), nn.ReLU(inplace=True),
            *_asymmetric(growth, 1), *_asymmetric(growth, dilation), nn.Dropout2d(dropout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


def _eda_block(in_ch: int, dilations: tuple[int, ...]) -> nn.Sequential:
    return nn.Sequential(*(EDAModule(in_ch + i * GROWTH, d) for i, d in enumerate(dilations)))


class EDANet(nn.Module):
    """EDANet: two downsamplings, EDA block 1 (5 modules), downsampling, EDA block 2 (8 modules), 1x1 projection."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        width1 = 60 + GROWTH * len(BLOCK1_DILATIONS)
        width2 = 130 + GROWTH * len(BLOCK2_DILATIONS)
        self.stem = nn.Sequential(DownsamplingBlock(in_channels, 15), DownsamplingBlock(15, 60))
        self.block1 = _eda_block(60, BLOCK1_DILATIONS)
        self.down = DownsamplingBlock(width1, 130)
        self.block2 = _eda_block(130, BLOCK2_DILATIONS)
        self.project = nn.Conv2d(width2, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block2(self.down(self.block1(self.stem(x))))
        return upsample_to(self.project(y), x.shape[-2:])


@register_model(
    "edanet",
    family="edanet",
    paper_name="EDANet",
    reference="Lo et al., Efficient Dense Modules of Asymmetric Convolution for Real-Time Semantic Segmentation, ACM MM Asia 2019",
    notes="written from the paper; growth rate 40, 5 + 8 EDA modules",
    input_multiple=8,
    min_input_size=32,
)
def edanet(num_classes: int = 2, in_channels: int = 3) -> EDANet:
    """EDANet."""
    return EDANet(num_classes, in_channels)
