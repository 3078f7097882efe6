"""DenseASPP (Yang et al., CVPR 2018) on a dilated DenseNet161, written from the paper.

Backbone: DenseNet161 with the pooling of transitions 2 and 3 removed and the 3x3 convs of dense
blocks 3 and 4 dilated by 2 and 4 (output stride 8, as the paper does), 2208 channels out.
DenseASPP: five dilated layers with rates 3, 6, 12, 18, 24; layer i sees the concatenation of
the backbone features and every earlier layer's output (BN-ReLU-1x1 conv to 128, BN-ReLU-3x3
dilated conv to 64, dropout 0.1); the final concatenation (2208 + 5 x 64) goes through dropout
and a 1x1 classifier, upsampled x8.

Table 4 names no backbone for DenseASPP; its 27.93M and 122.3 GMACs fit DenseNet161 (26.47M,
about 119 GMACs dilated at 512) with a light ASPP: 128 -> 64 channels per layer gives 28.37M.
A wider 512 -> 128 ASPP would give 35.7M; DenseNet121-based variants stay under 10M.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import adapt_first_conv
from .layers import ResizeOutputs, SegmentationHead
from .registry import register_model

RATES = (3, 6, 12, 18, 24)


def dilated_densenet161(pretrained: bool, in_channels: int) -> nn.Sequential:
    """torchvision DenseNet161 features at output stride 8 (transitions 2-3 keep size; blocks 3-4 dilated 2, 4)."""
    from torchvision import models as tvm

    features = tvm.densenet161(weights="IMAGENET1K_V1" if pretrained else None).features
    features.conv0 = adapt_first_conv(features.conv0, in_channels)
    features.transition2.pool = nn.Identity()
    features.transition3.pool = nn.Identity()
    for block, dilation in ((features.denseblock3, 2), (features.denseblock4, 4)):
        for layer in block.children():
            layer.conv2.dilation = (dilation, dilation)
            layer.conv2.padding = (dilation, dilation)
    return features


class DenseASPPLayer(nn.Sequential):
    """BN-ReLU-1x1 conv (reduce) -> BN-ReLU-3x3 conv at `rate` -> dropout."""

    def __init__(self, in_channels: int, reduced: int, growth: int, rate: int, dropout: float = 0.1) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, reduced, 1, bias=False),
            nn.BatchNorm2d(reduced),
            nn.ReLU(inplace=True),
            nn.Conv2d(reduced, growth, 3, padding=rate, dilation=rate, bias=False),
            nn.Dropout2d(dropout),
        )


class DenseASPP(nn.Module):
    """Densely connected atrous layers: each layer's input is all features so far."""

    def __init__(self, in_channels: int, reduced: int = 128, growth: int = 64, rates: Sequence[int] = RATES) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseASPPLayer(in_channels + i * growth, reduced, growth, rate) for i, rate in enumerate(rates)
        )
        self.out_channels = in_channels + len(rates) * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class DenseASPPNet(nn.Module):
    """Dilated DenseNet161 -> BN-ReLU -> DenseASPP -> dropout + 1x1 classifier (output stride 8)."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool) -> None:
        super().__init__()
        self.backbone = dilated_densenet161(pretrained, in_channels)
        channels = self.backbone.norm5.num_features
        self.aspp = DenseASPP(channels)
        self.classifier = SegmentationHead(self.aspp.out_channels, num_classes, dropout=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.aspp(torch.relu(self.backbone(x))))


@register_model(
    "denseaspp",
    family="denseaspp",
    paper_name="DenseASPP",
    backbone="DenseNet161",
    pretrained_backbone=False,
    reference="Yang et al., DenseASPP for Semantic Segmentation in Street Scenes, CVPR 2018",
    notes="Dilated DenseNet161 (output stride 8, chosen because Table 4's 27.93M / 122.3 GMACs fit it), "
    "rates 3/6/12/18/24, 1x1 reduce to 128 and growth 64 per layer; params 28.37M.",
)
def denseaspp(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
    """DenseASPP on a dilated DenseNet161."""
    return ResizeOutputs(DenseASPPNet(num_classes, in_channels, pretrained))
