"""OCNet (Yuan & Wang, 2018), base-OC variant on a dilated ResNet50, written from the paper.

Base-OC: 3x3 conv 2048 -> 512, then the object context module: a shared key/query transform
(1x1 conv + BN + ReLU, 512 -> 256), a value transform (1x1, 512 -> 256), scaled dot-product
attention over all pixels, and W (1x1, 256 -> 512); the object context is concatenated with the
input and fused by a 1x1 conv (1024 -> 512), dropout 0.05, 1x1 classifier. Stage-4 FCN head
(weight 0.4) as the paper's deep supervision.

Params: Table 4's 51.6M / 220.7 GMACs fit this head on a ResNet-101 (about 55M); on the ResNet50
Table 4 names the model has 36.2M (reason noted in ModelInfo).
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import DilatedResNetHeads
from .layers import ConvBNAct, ResizeOutputs, SegmentationHead, attend
from .registry import register_model


class ObjectContext(nn.Module):
    """Self-attention whose key and query share one transform: each pixel gathers pixels of its object."""

    def __init__(self, channels: int, key_channels: int = 256, value_channels: int = 256) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.key = ConvBNAct(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, value_channels, 1)
        self.out = nn.Conv2d(value_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = self.key(x).flatten(2)
        context = attend(key, key, self.value(x).flatten(2), self.key_channels**-0.5)
        return self.out(context.view(x.shape[0], -1, *x.shape[2:]))


class BaseOCHead(nn.Module):
    """3x3 conv -> object context -> concat with its input -> 1x1 fuse -> classifier."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 512) -> None:
        super().__init__()
        self.reduce = ConvBNAct(in_channels, channels, 3)
        self.context = ObjectContext(channels)
        self.fuse = ConvBNAct(2 * channels, channels, 1)
        self.classifier = SegmentationHead(channels, num_classes, dropout=0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        return self.classifier(self.fuse(torch.cat([self.context(x), x], dim=1)))


class OCNet(DilatedResNetHeads):
    """Dilated ResNet50 (output stride 8) + base-OC head; train mode adds the stage-4 FCN output."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool) -> None:
        super().__init__(lambda c4: BaseOCHead(c4, num_classes), num_classes, in_channels, pretrained)


@register_model(
    "ocnet-resnet50",
    family="ocnet",
    paper_name="OCNet",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 0.4),
    reference="Yuan & Wang, OCNet: Object Context Network for Scene Parsing, arXiv:1809.00916, 2018",
    notes="base-OC head on a dilated ResNet50 (output stride 8), stage-4 FCN auxiliary head weighted 0.4. "
    "Params 30% below Table 4: its 51.6M / 220.7 GMACs fit this head on ResNet-101 (~55M), "
    "we keep the ResNet50 that Table 4 names.",
)
def ocnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
    """OCNet (base-OC) with a dilated ResNet50."""
    return ResizeOutputs(OCNet(num_classes, in_channels, pretrained))
