"""ANNNet (Zhu et al., ICCV 2019): asymmetric non-local blocks on a dilated ResNet50, written from the paper.

AFNB fuses stage 4 (keys/values) into stage 5 (queries); APNB then adds context within the
3x3-reduced (512) features. In both, keys and values are sampled by pyramid pooling with bins
1, 3, 6, 8 (S = 110 anchor points instead of all H x W pixels), key/value channels 256, and the
attended features pass through W (1x1 conv + BN) before being concatenated with the block's
input and fused by a 1x1 conv. Stage-4 FCN head (weight 0.4) for deep supervision.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import resnet_features
from .layers import ConvBNAct, FCNHead, ResizeOutputs, SegmentationHead, attend, pyramid_sample
from .registry import register_model

PYRAMID_SIZES = (1, 3, 6, 8)


class AsymmetricNonLocal(nn.Module):
    """Queries from `x`, keys/values from pyramid-pooled `source`; output (1x1 conv + BN) has `out_channels`."""

    def __init__(
        self,
        query_channels: int,
        source_channels: int,
        out_channels: int,
        key_channels: int = 256,
        value_channels: int = 256,
        shared_key_query: bool = False,
    ) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.key = ConvBNAct(source_channels, key_channels, 1)
        self.query = self.key if shared_key_query else ConvBNAct(query_channels, key_channels, 1)
        self.value = nn.Conv2d(source_channels, value_channels, 1)
        self.out = ConvBNAct(value_channels, out_channels, 1, act=None)

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        key = pyramid_sample(self.key(source), PYRAMID_SIZES)
        value = pyramid_sample(self.value(source), PYRAMID_SIZES)
        context = attend(self.query(x).flatten(2), key, value, self.key_channels**-0.5)
        return self.out(context.view(x.shape[0], -1, *x.shape[2:]))


class AFNB(nn.Module):
    """Asymmetric fusion non-local block: high-level queries, low-level sampled keys/values, concat + 1x1 fuse."""

    def __init__(self, low_channels: int, high_channels: int) -> None:
        super().__init__()
        self.attention = AsymmetricNonLocal(high_channels, low_channels, high_channels)
        self.fuse = nn.Sequential(ConvBNAct(2 * high_channels, high_channels, 1, act=None), nn.Dropout2d(0.05))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.attention(high, low), high], dim=1))


class APNB(nn.Module):
    """Asymmetric pyramid non-local block: self-attention against 110 pyramid-pooled anchors, concat + 1x1 fuse."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attention = AsymmetricNonLocal(channels, channels, channels, shared_key_query=True)
        self.fuse = nn.Sequential(ConvBNAct(2 * channels, channels, 1), nn.Dropout2d(0.05))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.attention(x, x), x], dim=1))


class ANNNet(nn.Module):
    """Dilated ResNet50 (output stride 8) -> AFNB(stage 4, stage 5) -> 3x3 conv -> APNB -> classifier."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, channels: int = 512) -> None:
        super().__init__()
        self.backbone = resnet_features(50, 8, pretrained, in_channels, out_indices=(3, 4))
        c3, c4 = self.backbone.channels
        self.fusion = AFNB(c3, c4)
        self.reduce = ConvBNAct(c4, channels, 3)
        self.context = APNB(channels)
        self.classifier = SegmentationHead(channels, num_classes)
        self.aux = FCNHead(c3, num_classes)

    def forward(self, x: torch.Tensor):
        c3, c4 = self.backbone(x)
        main = self.classifier(self.context(self.reduce(self.fusion(c3, c4))))
        return (main, self.aux(c3)) if self.training else main


@register_model(
    "annnet-resnet50",
    family="annnet",
    paper_name="ANNNet",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 0.4),
    reference="Zhu et al., Asymmetric Non-local Neural Networks for Semantic Segmentation, ICCV 2019",
    notes="AFNB + APNB with pyramid sampling (1, 3, 6, 8 -> 110 anchors) on a dilated ResNet50 (output stride 8); "
    "stage-4 FCN auxiliary head weighted 0.4 (the paper's deep supervision).",
)
def annnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
    """ANNNet with a dilated ResNet50."""
    return ResizeOutputs(ANNNet(num_classes, in_channels, pretrained))
