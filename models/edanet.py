"""EDANet (Lo et al., "Efficient Dense Modules of Asymmetric Convolution for Real-Time
Semantic Segmentation", ACM MM Asia 2019 / arXiv 1809.06323) as the MiniSeg release builds it
(`full_code/models/Baselines/EDANet.py`).

Downsampling block (from ENet's initial block): a 3x3 stride-2 conv (with bias) beside a 2x2
max-pool concatenated (when widening), else the conv alone, -> BN -> ReLU. EDA module: 1x1 conv
to k = 40 channels -> BN -> ReLU, asymmetric 3x1 + 1x3 conv -> BN -> ReLU, dilated 3x1 + 1x3
conv -> BN -> ReLU, dropout 0.02; the 40 new channels are concatenated in front of the input
(dense connection, growth rate 40). All convs carry a bias; every ReLU is functional, as in the
release. Blocks: down 3->15, down 15->60, 5 EDA modules (dilations 1,1,1,2,2) -> 260, down
260->130, 8 EDA modules (2,2,4,4,8,8,16,16) -> 450, 1x1 projection to the classes at 1/8,
bilinear upsampling x8 (align_corners=True). Init as the release: conv weights N(0, 0.02), BN
weights N(1, 0.02), BN biases 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import init_conv_bn
from ._registry import register_model

GROWTH = 40
BLOCK1_DILATIONS = (1, 1, 1, 2, 2)
BLOCK2_DILATIONS = (2, 2, 4, 4, 8, 8, 16, 16)
INIT_STD = 0.02


class DownsamplingBlock(nn.Module):
    """3x3 stride-2 conv (+ 2x2 max-pool of the input, concatenated, when widening) -> BN -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2) if in_ch < out_ch else None
        self.conv = nn.Conv2d(in_ch, out_ch - in_ch if self.pool else out_ch, 3, 2, 1)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool is not None:
            y = torch.cat([y, self.pool(x)], 1)
        return F.relu(self.bn(y))


class EDAModule(nn.Module):
    """1x1 -> asymmetric 3x3 -> dilated asymmetric 3x3 (each -> BN -> ReLU) -> dropout; output: (k new, input)."""

    def __init__(self, in_ch: int, dilation: int, growth: int = GROWTH, dropout: float = 0.02) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(in_ch, growth, 1)
        self.bn0 = nn.BatchNorm2d(growth)
        self.conv3x1_1 = nn.Conv2d(growth, growth, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(growth, growth, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(growth)
        self.conv3x1_2 = nn.Conv2d(growth, growth, (3, 1), padding=(dilation, 0), dilation=(dilation, 1))
        self.conv1x3_2 = nn.Conv2d(growth, growth, (1, 3), padding=(0, dilation), dilation=(1, dilation))
        self.bn2 = nn.BatchNorm2d(growth)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn0(self.conv1x1(x)))
        y = F.relu(self.bn1(self.conv1x3_1(self.conv3x1_1(y))))
        y = F.relu(self.bn2(self.conv1x3_2(self.conv3x1_2(y))))
        return torch.cat([self.dropout(y), x], 1)


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
        # The release's init: conv weights N(0, 0.02); BN weights N(1, 0.02), biases 0 (conv biases keep torch's).
        init_conv_bn(self, lambda w: nn.init.normal_(w, 0.0, INIT_STD), lambda w: nn.init.normal_(w, 1.0, INIT_STD))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.block2(self.down(self.block1(self.stem(x)))))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)


@register_model(
    "edanet",
    family="edanet",
    paper_name="EDANet",
    reference="Lo et al., Efficient Dense Modules of Asymmetric Convolution for Real-Time Semantic Segmentation, ACM MM Asia 2019",
    notes="the release's EDANet.py (681,818 params at 2 classes): growth rate 40, 5 + 8 EDA modules, biased convs, "
    "new channels concatenated before the input, x8 bilinear upsampling with align_corners=True",
    input_multiple=8,
    min_input_size=32,
)
def edanet(num_classes: int = 2, in_channels: int = 3) -> EDANet:
    """EDANet, the release's build."""
    return EDANet(num_classes, in_channels)
