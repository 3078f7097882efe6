"""BiSeNet (Yu et al., ECCV 2018) with a ResNet18 context path, written from the paper.

Spatial Path: three stride-2 conv-BN-ReLU layers (64, 128, 256 channels), output at 1/8 of the
input. Context Path: ResNet18 (stride 32); an Attention Refinement Module (ARM: global pool,
1x1 conv, BN, sigmoid, multiply) on the 1/16 and 1/32 stages, global average pooling at the
tail added to the 1/32 branch, each branch reduced to 128 channels (3x3 conv) and upsampled into
the next. Feature Fusion Module (FFM): concat, conv-BN-ReLU to 256, then x + x * SE-gate(x).
Two auxiliary 1x1 heads supervise the context path's 1/16 and 1/32 features (loss weights 1.0,
the paper's alpha = 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet_features
from .layers import ChannelGate, ConvBNAct, ResizeOutputs, SegmentationHead, upsample_to
from .registry import register_model

SPATIAL_CHANNELS = (64, 128, 256)
CONTEXT_CHANNELS = 128


class SpatialPath(nn.Sequential):
    """Three stride-2 conv-BN-ReLU layers: a wide 1/8-resolution map that keeps spatial detail."""

    def __init__(self, in_channels: int, channels: tuple[int, ...] = SPATIAL_CHANNELS) -> None:
        widths = (in_channels, *channels)
        super().__init__(*(ConvBNAct(cin, cout, 3, stride=2) for cin, cout in zip(widths[:-1], widths[1:])))


class AttentionRefinement(nn.Module):
    """ARM: features reweighted by a sigmoid of their global average (1x1 conv + BN)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = ChannelGate(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class FeatureFusion(nn.Module):
    """FFM: concatenate both paths, conv-BN-ReLU, then add the channel-reweighted features."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.fuse = ConvBNAct(in_channels, out_channels, 1)
        self.gate = ChannelGate(out_channels, out_channels, hidden=out_channels // reduction)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.fuse(torch.cat([spatial, context], dim=1))
        return x + x * self.gate(x)


class ContextPath(nn.Module):
    """ResNet18 with ARMs on the 1/16 and 1/32 stages and global context; returns (1/8 map, 1/16, 1/32 features)."""

    def __init__(self, in_channels: int, pretrained: bool, channels: int = CONTEXT_CHANNELS) -> None:
        super().__init__()
        self.backbone = resnet_features(18, 32, pretrained, in_channels, out_indices=(3, 4))
        c16, c32 = self.backbone.channels
        self.arm16 = AttentionRefinement(c16)
        self.arm32 = AttentionRefinement(c32)
        self.refine16 = ConvBNAct(c16, channels, 3)
        self.refine32 = ConvBNAct(c32, channels, 3)

    def forward(self, x: torch.Tensor, size_8: torch.Size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f16, f32 = self.backbone(x)
        tail = F.adaptive_avg_pool2d(f32, 1)
        up32 = self.refine32(self.arm32(f32) + tail)
        up16 = self.refine16(self.arm16(f16)) + upsample_to(up32, f16.shape[-2:])
        return upsample_to(up16, size_8), up16, up32


class BiSeNet(nn.Module):
    """Spatial Path + Context Path fused by the FFM; two context-path heads in train mode."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool) -> None:
        super().__init__()
        self.spatial = SpatialPath(in_channels)
        self.context = ContextPath(in_channels, pretrained)
        self.ffm = FeatureFusion(SPATIAL_CHANNELS[-1] + CONTEXT_CHANNELS, 256)
        self.classifier = SegmentationHead(256, num_classes, dropout=0.1)
        self.aux16 = SegmentationHead(CONTEXT_CHANNELS, num_classes)
        self.aux32 = SegmentationHead(CONTEXT_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor):
        spatial = self.spatial(x)
        context, f16, f32 = self.context(x, spatial.shape[-2:])
        main = self.classifier(self.ffm(spatial, context))
        return (main, self.aux16(f16), self.aux32(f32)) if self.training else main


@register_model(
    "bisenet-resnet18",
    family="bisenet",
    paper_name="BiSeNet",
    backbone="ResNet18",
    pretrained_backbone=True,
    aux_weights=(1.0, 1.0, 1.0),
    reference="Yu et al., BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation, ECCV 2018",
    notes="Spatial Path (3 stride-2 convs, 1/8), ResNet18 Context Path with ARMs and global pooling, FFM; "
    "two auxiliary heads on the context path weighted 1.0 each (alpha = 1).",
)
def bisenet_resnet18(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
    """BiSeNet with a ResNet18 context path."""
    return ResizeOutputs(BiSeNet(num_classes, in_channels, pretrained))
