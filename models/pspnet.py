"""PSPNet (Zhao et al., CVPR 2017) as the MiniSeg authors built it (release `full_code/models/Baselines/PSPNet.py`).

Backbone: a ResNet in the Caffe/MSRA layout (`caffe_resnet_features`: stride 2 in the first 1x1 conv
of layer2, ceil-mode max-pool, every block of layer3 / layer4 dilated 2 / 4, output stride 8). The
file hard-codes the ResNet-101 depth [3, 4, 23, 3] although Table 4 says ResNet50 (it loads the
ResNet-50 ImageNet weights into it wherever the keys match).

Pyramid pooling module (as the file has it): layer4's 2048-channel map average-pooled to 1, 2, 3
and 6 bins, each bin a bias-free 1x1 conv to 2048 / 4 = 512 channels (no BN, no ReLU), bilinearly
upsampled and concatenated with the map (4096 channels), then an UNPADDED 3x3 conv with bias to 512
(so a 65 x 65 map becomes 63 x 63), BN and PReLU. Dropout 0.1, a 1x1 classifier, bilinear upsampling
to the input. No auxiliary head ("not necessary", the file says): 65,571,395 params at ResNet-101.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import caffe_resnet_features
from .layers import upsample_to
from ._registry import register_model

BINS = (1, 2, 3, 6)
HEAD_CHANNELS = 512
REFERENCE = "Zhao et al., Pyramid Scene Parsing Network, CVPR 2017"


class PyramidPooling(nn.Module):
    """Pool into each bin, bias-free 1x1 conv to in/len(bins), upsample, concat with the input; unpadded
    3x3 conv (bias) -> BN -> PReLU to `out_channels` (the release's PSPModule, shared with its GFF)."""

    def __init__(self, in_channels: int, out_channels: int = HEAD_CHANNELS, bins: Sequence[int] = BINS) -> None:
        super().__init__()
        self.bins = tuple(bins)
        reduced = in_channels // len(self.bins)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_channels, reduced, 1, bias=False)) for b in self.bins
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(in_channels + reduced * len(self.bins), out_channels, 3),
            nn.BatchNorm2d(out_channels),
            nn.PReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return self.bottleneck(torch.cat([upsample_to(branch(x), size) for branch in self.branches] + [x], dim=1))


class PSPNet(nn.Module):
    """Caffe-layout dilated ResNet -> pyramid pooling -> dropout -> 1x1 classifier -> upsampling."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, depth: int = 101) -> None:
        super().__init__()
        self.backbone = caffe_resnet_features(depth, pretrained, in_channels, out_indices=(4,))
        self.ppm = PyramidPooling(self.backbone.channels[-1])
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(HEAD_CHANNELS, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top,) = self.backbone(x)
        return upsample_to(self.classifier(self.ppm(top)), x.shape[-2:])


@register_model(
    "pspnet-resnet101",
    family="pspnet",
    paper_name="PSPNet",
    backbone="ResNet-101",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes=(
        "the authors' build (PSPNet.py): Table 4 says ResNet50; the file builds a ResNet-101 layout [3,4,23,3] "
        "in the Caffe form (stride in the 1x1 conv, ceil-mode max-pool, all layer3/4 blocks dilated) and loads "
        "ResNet-50 ImageNet weights into it where keys match (pretrained=True here loads torchvision's "
        "ResNet-101 weights). PSP bottleneck: unpadded 3x3 conv + BN + PReLU; no aux head. The file also "
        "freezes the backbone BN affine parameters; the trainer here trains them. 65,571,395 params"
    ),
    input_multiple=8,
)
def pspnet_resnet101(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> PSPNet:
    """The authors' PSPNet: Caffe-layout dilated ResNet-101, pyramid pooling, no auxiliary head."""
    return PSPNet(num_classes, in_channels, pretrained, depth=101)


@register_model(
    "pspnet-resnet50",
    family="pspnet",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="not the paper's build: the authors' PSPNet (pspnet-resnet101) on the ResNet50 that Table 4 names "
    "(46.6M params)",
    input_multiple=8,
)
def pspnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> PSPNet:
    """The authors' PSPNet head on a Caffe-layout dilated ResNet50."""
    return PSPNet(num_classes, in_channels, pretrained, depth=50)
