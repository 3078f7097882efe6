"""CCNet (Huang et al., ICCV 2019): recurrent criss-cross attention on a dilated ResNet50, written from the paper.

Head (the paper's RCCA module): 3x3 conv 2048 -> 512, criss-cross attention applied R = 2 times
with shared weights (query/key 512 -> 64, value 512 -> 512), 3x3 conv 512 -> 512, concatenation
with the backbone features, 3x3 bottleneck -> 512, dropout, 1x1 classifier. An FCN head on
stage 4 gives the auxiliary loss (weight 0.4). Eq. 2 of the paper adds the aggregated context
to the input without a learned scale, and so does this module.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import DilatedResNetHeads
from .layers import ConvBNAct, ResizeOutputs, SegmentationHead
from .registry import register_model

RECURRENCE = 2


class CrissCrossAttention(nn.Module):
    """Each pixel attends to the H + W - 1 pixels of its own row and column (itself counted once)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[2]
        q, k, v = self.query(x), self.key(x), self.value(x)
        energy_col = torch.einsum("nchw,ncgw->nhwg", q, k)
        itself = torch.eye(height, dtype=torch.bool, device=x.device).view(1, height, 1, height)
        energy_col = energy_col.masked_fill(itself, float("-inf"))
        energy_row = torch.einsum("nchw,nchv->nhwv", q, k)
        weights = torch.softmax(torch.cat([energy_col, energy_row], dim=-1), dim=-1)
        from_col = torch.einsum("nhwg,ncgw->nchw", weights[..., :height], v)
        from_row = torch.einsum("nhwv,nchv->nchw", weights[..., height:], v)
        return from_col + from_row + x


class RCCAHead(nn.Module):
    """Recurrent criss-cross attention module: full-image context after `recurrence` = 2 passes."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 512, recurrence: int = RECURRENCE) -> None:
        super().__init__()
        self.recurrence = recurrence
        self.reduce = ConvBNAct(in_channels, channels, 3)
        self.attention = CrissCrossAttention(channels)
        self.post = ConvBNAct(channels, channels, 3)
        self.bottleneck = ConvBNAct(in_channels + channels, channels, 3)
        self.classifier = SegmentationHead(channels, num_classes, dropout=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.reduce(x)
        for _ in range(self.recurrence):
            context = self.attention(context)
        fused = self.bottleneck(torch.cat([x, self.post(context)], dim=1))
        return self.classifier(fused)


class CCNet(DilatedResNetHeads):
    """Dilated ResNet50 (output stride 8) + RCCA head; train mode adds the stage-4 FCN output."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool) -> None:
        super().__init__(lambda c4: RCCAHead(c4, num_classes), num_classes, in_channels, pretrained)


@register_model(
    "ccnet-resnet50",
    family="ccnet",
    paper_name="CCNet",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 0.4),
    reference="Huang et al., CCNet: Criss-Cross Attention for Semantic Segmentation, ICCV 2019",
    notes="RCCA head with R=2 on a dilated ResNet50 (output stride 8); stage-4 FCN auxiliary head (in/4 "
    "channels) weighted 0.4. Params include the auxiliary head; GMACs at 512 (eval, no aux) match Table 4.",
)
def ccnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
    """CCNet with a dilated ResNet50."""
    return ResizeOutputs(CCNet(num_classes, in_channels, pretrained))
