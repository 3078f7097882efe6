"""DANet (Fu et al., CVPR 2019) as the MiniSeg authors built it (release `Others/DANet.py`).

Backbone: the release's `resnet101_v1b` (dilated ResNet-101, output stride 8, no fc); the file's
default is ResNet-50, but only ResNet-101 reproduces Table 4 (which says ResNet50). Two parallel
branches on stage 5, each a 3x3 conv-BN-ReLU 2048 -> 512, an attention module and a 3x3
conv-BN-ReLU 512 -> 512; their sum goes through dropout 0.1 and a 1x1 classifier. Position attention
(PAM): query/key 1x1 convs to C/8, value 1x1 conv to C, scale alpha. Channel attention (CAM): no
conv, scale beta; like the file (and PyTorch-Encoding) it takes the softmax of (row max - energy),
i.e. softmax(-energy). Both scales start at 0. The file builds the head with aux=False: no PAM/CAM
side classifiers, main output only. 66,426,564 params.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import resnet_v1b_features
from .layers import ConvBNAct, attend, upsample_to
from ._registry import register_model

CHANNELS = 512
REFERENCE = "Fu et al., Dual Attention Network for Scene Segmentation, CVPR 2019"


class PositionAttention(nn.Module):
    """PAM: every position is updated by a softmax-weighted sum over all positions (Eq. 1-2)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = attend(self.query(x).flatten(2), self.key(x).flatten(2), self.value(x).flatten(2))
        return self.alpha * context.view_as(x) + x


class ChannelAttention(nn.Module):
    """CAM: every channel is updated by a softmax-weighted sum over all channels (the release's max - energy)."""

    def __init__(self) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        energy = torch.bmm(flat, flat.transpose(1, 2))
        weights = torch.softmax(energy.amax(-1, keepdim=True) - energy, dim=-1)
        return self.beta * torch.bmm(weights, flat).view_as(x) + x


class AttentionBranch(nn.Sequential):
    """3x3 conv -> attention module -> 3x3 conv."""

    def __init__(self, in_channels: int, channels: int, attention: nn.Module) -> None:
        super().__init__(ConvBNAct(in_channels, channels, 3), attention, ConvBNAct(channels, channels, 3))


class DANetHead(nn.Module):
    """Position and channel branches, summed, then dropout + 1x1 classifier."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = CHANNELS) -> None:
        super().__init__()
        self.position = AttentionBranch(in_channels, channels, PositionAttention(channels))
        self.channel = AttentionBranch(in_channels, channels, ChannelAttention())
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.position(x) + self.channel(x))


class DANet(nn.Module):
    """Dilated ResNet (resnetXX_v1b) + dual attention head, logits upsampled to the input."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, depth: int = 101) -> None:
        super().__init__()
        self.backbone = resnet_v1b_features(depth, pretrained, in_channels, out_indices=(4,))
        self.head = DANetHead(self.backbone.channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top,) = self.backbone(x)
        return upsample_to(self.head(top), x.shape[-2:])


@register_model(
    "danet-resnet101",
    family="danet",
    paper_name="DANet",
    backbone="ResNet-101",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="the authors' build (Others/DANet.py with backbone resnet101): Table 4 says ResNet50; only the "
    "resnet101_v1b backbone reproduces its params/GFLOPs. Head built with aux=False (no PAM/CAM side "
    "classifiers), main output only. 66,426,564 params",
    input_multiple=8,
)
def danet_resnet101(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> DANet:
    """The authors' DANet on a dilated ResNet-101."""
    return DANet(num_classes, in_channels, pretrained, depth=101)


@register_model(
    "danet-resnet50",
    family="danet",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="not the paper's build: the authors' DANet (danet-resnet101) on the ResNet50 that Table 4 names "
    "(the file's default; 47.4M params)",
    input_multiple=8,
)
def danet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> DANet:
    """The authors' DANet head on a dilated ResNet-50."""
    return DANet(num_classes, in_channels, pretrained, depth=50)
