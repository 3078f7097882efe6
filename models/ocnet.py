"""OCNet (Yuan & Wang, 2018), base-OC, as the MiniSeg authors built it (release `Others/ocnet.py`).

Backbone: the release's `resnet101_v1b` (dilated ResNet-101, output stride 8, no fc); the file's
default is ResNet-50, but only ResNet-101 reproduces Table 4's GFLOPs (Table 4 says ResNet50).
Head: 3x3 conv-BN-ReLU 2048 -> 512, then the base object context module: one key/query transform
shared by both roles (1x1 conv with bias + BN + ReLU, 512 -> 256), a value transform (1x1, 512 ->
256), scaled dot-product attention over all pixels and W (1x1, 256 -> 512, zero-initialised); the
context is concatenated with the module's input and fused by a 1x1 conv (bias) + BN + ReLU, dropout
0.05, 1x1 classifier. No auxiliary head. 52,859,970 params: the counter's 51.62M, while Table 4
prints 51.60M (no option of the file explains the difference; its GFLOPs reproduce exactly).
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import resnet_v1b_features
from .layers import ConvBNAct, attend, upsample_to
from ._registry import register_model

CHANNELS = 512
REFERENCE = "Yuan & Wang, OCNet: Object Context Network for Scene Parsing, arXiv:1809.00916, 2018"


class ObjectContext(nn.Module):
    """Self-attention whose key and query share one transform: each pixel gathers pixels of its object."""

    def __init__(self, channels: int, key_channels: int = 256, value_channels: int = 256) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.key = ConvBNAct(channels, key_channels, 1, bias=True)
        self.value = nn.Conv2d(channels, value_channels, 1)
        self.out = nn.Conv2d(value_channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = self.key(x).flatten(2)  # the shared transform runs once per role, as in the release
        key = self.key(x).flatten(2)
        context = attend(query, key, self.value(x).flatten(2), self.key_channels**-0.5)
        return self.out(context.view(x.shape[0], -1, *x.shape[2:]))


class BaseOCHead(nn.Module):
    """3x3 conv -> object context -> concat with its input -> 1x1 fuse -> classifier."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = CHANNELS) -> None:
        super().__init__()
        self.reduce = ConvBNAct(in_channels, channels, 3)
        self.context = ObjectContext(channels)
        self.fuse = nn.Sequential(ConvBNAct(2 * channels, channels, 1, bias=True), nn.Dropout2d(0.05))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        return self.classifier(self.fuse(torch.cat([self.context(x), x], dim=1)))


class OCNet(nn.Module):
    """Dilated ResNet (resnetXX_v1b) + base-OC head, logits upsampled to the input."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, depth: int = 101) -> None:
        super().__init__()
        self.backbone = resnet_v1b_features(depth, pretrained, in_channels, out_indices=(4,))
        self.head = BaseOCHead(self.backbone.channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top,) = self.backbone(x)
        return upsample_to(self.head(top), x.shape[-2:])


@register_model(
    "ocnet-resnet101",
    family="ocnet",
    paper_name="OCNet",
    backbone="ResNet-101",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="the authors' build (Others/ocnet.py, oc_arch base, backbone resnet101): Table 4 says ResNet50; "
    "resnet101_v1b reproduces its GFLOPs exactly. No auxiliary head. Params 52,859,970 = 51.62M in the "
    "counter's units vs the printed 51.60M: no option of the file explains the 16-27K difference",
    input_multiple=8,
)
def ocnet_resnet101(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> OCNet:
    """The authors' OCNet (base-OC) on a dilated ResNet-101."""
    return OCNet(num_classes, in_channels, pretrained, depth=101)


@register_model(
    "ocnet-resnet50",
    family="ocnet",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="not the paper's build: the authors' OCNet (ocnet-resnet101) on the ResNet50 that Table 4 names "
    "(the file's default; 33.9M params)",
    input_multiple=8,
)
def ocnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> OCNet:
    """The authors' base-OC head on a dilated ResNet-50."""
    return OCNet(num_classes, in_channels, pretrained, depth=50)
