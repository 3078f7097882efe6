"""BiSeNet (Yu et al., ECCV 2018) with a ResNet18 context path, as the MiniSeg authors built it
(release `Others/BiSeNet.py`, backbone from `Others/resnet.py`).

Spatial Path: 7x7 conv-BN-ReLU stride 2 to 64, two 3x3 conv-BN-ReLU stride 2 (64), 1x1
conv-BN-ReLU to 128: a 1/8 map. Context Path: torchvision's ResNet18 layout (stride 32; the
file takes conv1..layer4 only, so the fc is not registered). Global context: average pool, 1x1
conv-BN-ReLU 512 -> 128, broadcast over the 1/32 map. Attention Refinement Modules on layer4 and
layer3: 3x3 conv-BN-ReLU to 128, then weights sigmoid(1x1 conv-BN-ReLU of the pooled map). Top-down:
ARM(layer4) + global, resized to 1/16, 3x3 conv-BN-ReLU; + ARM(layer3), resized to 1/8, 3x3
conv-BN-ReLU. Feature Fusion Module: concat (256), 1x1 conv-BN-ReLU, x + x * sigmoid(1x1
conv-BN-ReLU 256 -> 64 -> 256 of the pooled map). Head: 3x3 conv-BN-ReLU to 64, dropout 0.1, 1x1
classifier. The file builds no auxiliary heads (aux=False): 12,795,394 params.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import resnet_features
from .layers import ConvBNAct, upsample_to
from ._registry import register_model

SPATIAL_CHANNELS = (64, 64, 64, 128)
CONTEXT_CHANNELS = 128
FUSION_CHANNELS = 256
HEAD_CHANNELS = 64


def pooled_gate(*widths: int) -> nn.Sequential:
    """Average pool to 1x1, a chain of 1x1 conv-BN-ReLU through `widths`, sigmoid: per-channel weights."""
    convs = [ConvBNAct(cin, cout, 1) for cin, cout in zip(widths[:-1], widths[1:])]
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), *convs, nn.Sigmoid())


class SpatialPath(nn.Sequential):
    """7x7 and two 3x3 stride-2 conv-BN-ReLU, then a 1x1 to 128: a wide 1/8 map that keeps spatial detail."""

    def __init__(self, in_channels: int) -> None:
        c = SPATIAL_CHANNELS
        super().__init__(
            ConvBNAct(in_channels, c[0], 7, stride=2),
            ConvBNAct(c[0], c[1], 3, stride=2),
            ConvBNAct(c[1], c[2], 3, stride=2),
            ConvBNAct(c[2], c[3], 1),
        )


class AttentionRefinement(nn.Module):
    """ARM: 3x3 conv-BN-ReLU to `channels`, reweighted by a sigmoid of its pooled map (1x1 conv-BN-ReLU)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, channels, 3)
        self.gate = pooled_gate(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * self.gate(x)


class FeatureFusion(nn.Module):
    """FFM: concatenate both paths, 1x1 conv-BN-ReLU, then add the channel-reweighted features."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.fuse = ConvBNAct(in_channels, out_channels, 1)
        self.gate = pooled_gate(out_channels, out_channels // reduction, out_channels)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.fuse(torch.cat([spatial, context], dim=1))
        return x + x * self.gate(x)


class ContextPath(nn.Module):
    """ResNet18 with global context and ARMs on layer4 and layer3, refined top-down to a 1/8 map."""

    def __init__(self, in_channels: int, pretrained: bool, channels: int = CONTEXT_CHANNELS) -> None:
        super().__init__()
        self.backbone = resnet_features(18, 32, pretrained, in_channels, out_indices=(2, 3, 4))
        c8, c16, c32 = self.backbone.channels
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNAct(c32, channels, 1))
        self.arm32 = AttentionRefinement(c32, channels)
        self.arm16 = AttentionRefinement(c16, channels)
        self.refine32 = ConvBNAct(channels, channels, 3)
        self.refine16 = ConvBNAct(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8, f16, f32 = self.backbone(x)
        up = self.refine32(upsample_to(self.arm32(f32) + self.global_context(f32), f16.shape[-2:]))
        return self.refine16(upsample_to(self.arm16(f16) + up, f8.shape[-2:]))


class BiSeNet(nn.Module):
    """Spatial Path + Context Path fused by the FFM, 3x3 head, logits upsampled to the input."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool) -> None:
        super().__init__()
        self.spatial = SpatialPath(in_channels)
        self.context = ContextPath(in_channels, pretrained)
        self.ffm = FeatureFusion(SPATIAL_CHANNELS[-1] + CONTEXT_CHANNELS, FUSION_CHANNELS)
        self.head = nn.Sequential(
            ConvBNAct(FUSION_CHANNELS, HEAD_CHANNELS, 3), nn.Dropout(0.1), nn.Conv2d(HEAD_CHANNELS, num_classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.spatial(x)
        context = upsample_to(self.context(x), spatial.shape[-2:])
        return upsample_to(self.head(self.ffm(spatial, context)), x.shape[-2:])


@register_model(
    "bisenet-resnet18",
    family="bisenet",
    paper_name="BiSeNet",
    backbone="ResNet18",
    pretrained_backbone=True,
    reference="Yu et al., BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation, ECCV 2018",
    notes="the authors' build (Others/BiSeNet.py): Spatial Path 7x7/3x3/3x3 to 64 + 1x1 to 128, ResNet18 "
    "Context Path (fc not registered) with global pooling and ARMs (1x1 conv-BN-ReLU gates), FFM with "
    "reduction 4, 3x3 head to 64; no auxiliary heads (aux=False). 12,795,394 params",
    input_multiple=32,
)
def bisenet_resnet18(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> BiSeNet:
    """The authors' BiSeNet with a ResNet18 context path."""
    return BiSeNet(num_classes, in_channels, pretrained)
