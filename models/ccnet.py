"""CCNet (Huang et al., ICCV 2019) as the MiniSeg authors built it (release `Others/CCNet.py`).

Backbone: the release's `resnet50_v1b` (dilated ResNet-50, output stride 8, no fc). Head (RCCA
module): 3x3 conv-BN-ReLU 2048 -> 512, criss-cross attention (query/key 1x1 512 -> 64, value 1x1
512 -> 512, output gamma * context + input with gamma starting at 0), 3x3 conv-BN-ReLU 512 -> 512,
concatenation with the backbone features, 3x3 conv + BN (no ReLU) to 512, dropout 0.1, 1x1
classifier. The authors' forward makes ONE criss-cross pass (recurrence 1) and has no auxiliary
head: 47,433,411 params. The paper's R = 2 is the variant `ccnet-r2-resnet50`.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import resnet_v1b_features
from .layers import ConvBNAct, upsample_to
from ._registry import register_model

CHANNELS = 512
REFERENCE = "Huang et al., CCNet: Criss-Cross Attention for Semantic Segmentation, ICCV 2019"


class CrissCrossAttention(nn.Module):
    """Each pixel attends to the H + W - 1 pixels of its own row and column (itself counted once)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

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
        return self.gamma * (from_col + from_row) + x


class RCCAHead(nn.Module):
    """Recurrent criss-cross attention module and classifier; `recurrence` passes share one attention."""

    def __init__(self, in_channels: int, num_classes: int, recurrence: int = 1, channels: int = CHANNELS) -> None:
        super().__init__()
        if recurrence < 1:
            raise ValueError(f"CCNet recurrence must be >= 1, got {recurrence}")
        self.recurrence = recurrence
        self.reduce = ConvBNAct(in_channels, channels, 3)
        self.attention = CrissCrossAttention(channels)
        self.post = ConvBNAct(channels, channels, 3)
        self.bottleneck = nn.Sequential(ConvBNAct(in_channels + channels, channels, 3, act=None), nn.Dropout2d(0.1))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.reduce(x)
        for _ in range(self.recurrence):
            context = self.attention(context)
        return self.classifier(self.bottleneck(torch.cat([x, self.post(context)], dim=1)))


class CCNet(nn.Module):
    """Dilated ResNet (resnetXX_v1b) + RCCA head, logits upsampled to the input."""

    def __init__(
        self, num_classes: int, in_channels: int, pretrained: bool, recurrence: int = 1, depth: int = 50
    ) -> None:
        super().__init__()
        self.backbone = resnet_v1b_features(depth, pretrained, in_channels, out_indices=(4,))
        self.head = RCCAHead(self.backbone.channels[-1], num_classes, recurrence)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top,) = self.backbone(x)
        return upsample_to(self.head(top), x.shape[-2:])


@register_model(
    "ccnet-resnet50",
    family="ccnet",
    paper_name="CCNet",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="the authors' build (Others/CCNet.py): one criss-cross pass (recurrence 1, the paper uses 2), no "
    "auxiliary head, learned gamma on the attention output; resnet50_v1b backbone. 47,433,411 params",
    input_multiple=8,
)
def ccnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> CCNet:
    """The authors' CCNet: dilated ResNet-50, one criss-cross pass."""
    return CCNet(num_classes, in_channels, pretrained, recurrence=1)


@register_model(
    "ccnet-r2-resnet50",
    family="ccnet",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="not the paper's build: the authors' CCNet (ccnet-resnet50) with the paper's two criss-cross passes "
    "(R = 2, shared weights), so every pixel sees the whole image; same params, more MACs",
    input_multiple=8,
)
def ccnet_r2_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> CCNet:
    """CCNet with the paper's recurrence R = 2."""
    return CCNet(num_classes, in_channels, pretrained, recurrence=2)
