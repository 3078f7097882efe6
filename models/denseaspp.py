"""DenseASPP (Yang et al., CVPR 2018) as the MiniSeg authors built it, on their own dilated DenseNet.

Backbone (the DenseNet inside `full_code/models/Baselines/DenseASPP.py`, trained from scratch;
it has no torchvision twin): a DenseNet-201 layout (stem 7x7 conv 64 /2 -> BN -> ReLU -> 3x3
max-pool /2; dense blocks of 6, 12, 48, 32 layers, growth 32, bottleneck 4 x 32; each layer
BN-ReLU-1x1 conv, BN-ReLU-3x3 conv, bias-free) at output stride 8: transition 1 halves the
channels and average-pools, transitions 2 and 3 only halve the channels, blocks 3 and 4 dilate
their 3x3 convs by 2 and 4, and a fourth transition (1920 -> 960, no pool) precedes the final BN
(no ReLU after it: the first ASPP layer starts with one).

DenseASPP head: five layers at rates 3, 6, 12, 18, 24; layer i sees the concatenation of every
earlier layer's output and the backbone features ([BN]-ReLU-1x1 conv to 480 -> BN-ReLU-3x3
dilated conv to 240, convs with bias, dropout 0.1; the first layer has no leading BN); the final
2160 channels go through dropout 0.1 and a 1x1 classifier, bilinearly upsampled x8.
28,603,250 params at 2 classes (Table 4: 27.93M = params / 1,024,000).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import init_conv_bn, upsample_to
from ._registry import register_model

RATES = (3, 6, 12, 18, 24)
BLOCK_LAYERS = (6, 12, 48, 32)  # DenseNet-201
BLOCK_DILATIONS = (1, 1, 2, 4)
GROWTH = 32
BOTTLENECK = 4
STEM_CHANNELS = 64
ASPP_REDUCED = 480
ASPP_GROWTH = 240
ASPP_BN_MOMENTUM = 0.0003  # the authors' file sets it on the ASPP's BN layers
DROPOUT = 0.1


def bn_relu_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    dilation: int = 1,
    bias: bool = False,
    momentum: float = 0.1,
    with_bn: bool = True,
) -> list[nn.Module]:
    """Pre-activation conv: [BN] -> ReLU -> k x k conv (padding keeps the size)."""
    norm = [nn.BatchNorm2d(in_channels, momentum=momentum)] if with_bn else []
    padding = dilation * (kernel_size - 1) // 2
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=bias)
    return [*norm, nn.ReLU(inplace=True), conv]


class DenseLayer(nn.Sequential):
    """BN-ReLU-1x1 conv to 4 x growth, BN-ReLU-3x3 conv to growth; returns the input with it appended."""

    def __init__(self, in_channels: int, dilation: int) -> None:
        inner = BOTTLENECK * GROWTH
        super().__init__(*bn_relu_conv(in_channels, inner, 1), *bn_relu_conv(inner, GROWTH, 3, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, super().forward(x)], dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv halving the channels, then a 2x2 average pool when `pool`."""

    def __init__(self, in_channels: int, pool: bool) -> None:
        layers = bn_relu_conv(in_channels, in_channels // 2, 1)
        super().__init__(*layers, *([nn.AvgPool2d(2, 2)] if pool else []))


def dilated_densenet(in_channels: int = 3) -> nn.Sequential:
    """The authors' DenseNet-201 layout at output stride 8, ending in a BN over 960 channels."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, STEM_CHANNELS, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(STEM_CHANNELS),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    ]
    channels = STEM_CHANNELS
    for index, (n_layers, dilation) in enumerate(zip(BLOCK_LAYERS, BLOCK_DILATIONS)):
        layers.append(nn.Sequential(*(DenseLayer(channels + i * GROWTH, dilation) for i in range(n_layers))))
        channels += n_layers * GROWTH
        layers.append(Transition(channels, pool=index == 0))
        channels //= 2
    layers.append(nn.BatchNorm2d(channels))
    features = nn.Sequential(*layers)
    features.out_channels = channels  # type: ignore[assignment]
    return features


class DenseASPP(nn.Module):
    """Densely connected atrous layers: each layer's input is every earlier output and the features."""

    def __init__(self, in_channels: int, rates: Sequence[int] = RATES) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                *bn_relu_conv(in_channels + i * ASPP_GROWTH, ASPP_REDUCED, 1, bias=True, momentum=ASPP_BN_MOMENTUM,
                              with_bn=i > 0),
                *bn_relu_conv(ASPP_REDUCED, ASPP_GROWTH, 3, rate, bias=True, momentum=ASPP_BN_MOMENTUM),
                nn.Dropout2d(DROPOUT),
            )
            for i, rate in enumerate(rates)
        )
        self.out_channels = in_channels + len(rates) * ASPP_GROWTH

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([layer(x), x], dim=1)
        return x


class DenseASPPNet(nn.Module):
    """Dilated DenseNet (output stride 8) -> DenseASPP -> dropout + 1x1 classifier -> bilinear x8."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.backbone = dilated_densenet(in_channels)
        self.aspp = DenseASPP(self.backbone.out_channels)
        self.classifier = nn.Sequential(nn.Dropout2d(DROPOUT), nn.Conv2d(self.aspp.out_channels, num_classes, 1))
        init_conv_bn(self, nn.init.kaiming_uniform_)  # the authors' init: Kaiming-uniform convs, unit BN

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.classifier(self.aspp(self.backbone(x))), x.shape[-2:])


@register_model(
    "denseaspp",
    family="denseaspp",
    paper_name="DenseASPP",
    backbone="DenseNet-201 layout (authors' own, dilated)",
    reference="Yang et al., DenseASPP for Semantic Segmentation in Street Scenes, CVPR 2018",
    notes="the authors' build: their own DenseNet (DenseNet-201 layout plus a fourth transition to 960 channels, "
    "output stride 8; no torchvision twin, trained from scratch), ASPP 480 -> 240 per layer at rates "
    "3/6/12/18/24",
    input_multiple=8,
)
def denseaspp(num_classes: int = 2, in_channels: int = 3) -> DenseASPPNet:
    """DenseASPP on the authors' dilated DenseNet (28,603,250 params at 2 classes)."""
    return DenseASPPNet(num_classes, in_channels)
