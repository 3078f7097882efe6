"""DANet (Fu et al., CVPR 2019): position and channel attention on a dilated ResNet50, written from the paper.

Two parallel branches on stage 5 (each: 3x3 conv 2048 -> 512, attention module, 3x3 conv 512 -> 512),
summed and classified. The position attention module (PAM) uses query/key 1x1 convs to C/8 and a
value 1x1 conv to C; the channel attention module (CAM) has no convolution, only the scale beta.
Both scales (alpha, beta) start at 0, as the paper says. Train mode returns (fused, position,
channel) predictions, each weighted 1.0 (the authors' release sums the three losses).

Params: Table 4's 64.87M and 275.7 GMACs match this head on a ResNet-101 (about 66.4M); on the
ResNet50 that Table 4 names, the model has 47.5M, the reason for the gap noted in ModelInfo.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import resnet_features
from .layers import ConvBNAct, ResizeOutputs, SegmentationHead, attend
from .registry import register_model


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
    """CAM: every channel is updated by a softmax-weighted sum over all channels (Eq. 3-4)."""

    def __init__(self) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        weights = torch.softmax(torch.bmm(flat, flat.transpose(1, 2)), dim=-1)
        return self.beta * torch.bmm(weights, flat).view_as(x) + x


class AttentionBranch(nn.Sequential):
    """3x3 conv -> attention module -> 3x3 conv."""

    def __init__(self, in_channels: int, channels: int, attention: nn.Module) -> None:
        super().__init__(ConvBNAct(in_channels, channels, 3), attention, ConvBNAct(channels, channels, 3))


class DANetHead(nn.Module):
    """Position and channel branches, summed; each branch also has its own classifier (train mode)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 512) -> None:
        super().__init__()
        self.position = AttentionBranch(in_channels, channels, PositionAttention(channels))
        self.channel = AttentionBranch(in_channels, channels, ChannelAttention())
        self.classifier = SegmentationHead(channels, num_classes, dropout=0.1)
        self.position_classifier = SegmentationHead(channels, num_classes, dropout=0.1)
        self.channel_classifier = SegmentationHead(channels, num_classes, dropout=0.1)

    def forward(self, x: torch.Tensor):
        pos, chan = self.position(x), self.channel(x)
        main = self.classifier(pos + chan)
        if not self.training:
            return main
        return main, self.position_classifier(pos), self.channel_classifier(chan)


class DANet(nn.Module):
    """Dilated ResNet50 (output stride 8) + dual attention head."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool) -> None:
        super().__init__()
        self.backbone = resnet_features(50, 8, pretrained, in_channels, out_indices=(4,))
        self.head = DANetHead(self.backbone.channels[0], num_classes)

    def forward(self, x: torch.Tensor):
        return self.head(self.backbone(x)[0])


@register_model(
    "danet-resnet50",
    family="danet",
    paper_name="DANet",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 1.0, 1.0),
    reference="Fu et al., Dual Attention Network for Scene Segmentation, CVPR 2019",
    notes="PAM + CAM on a dilated ResNet50 (output stride 8); train outputs (fused, PAM, CAM) weighted 1/1/1. "
    "Params 27% below Table 4: its 64.87M / 275.7 GMACs fit this head on ResNet-101 (~66.4M), "
    "we keep the ResNet50 that Table 4 names.",
)
def danet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
    """DANet with a dilated ResNet50."""
    return ResizeOutputs(DANet(num_classes, in_channels, pretrained))
