"""EncNet (Zhang et al., CVPR 2018): the Context Encoding Module on a dilated ResNet50, written from the paper.

Stage 5 -> 3x3 conv 2048 -> 512 -> Context Encoding Module: 1x1 conv + BN + ReLU, the Encoding
layer (K = 32 codewords of 512 dims with smoothing factors; residuals soft-assigned by
softmax(-s_k ||x_i - d_k||^2), aggregated, BN + ReLU, summed over codewords), an FC layer with
sigmoid that rescales the feature channels; dropout 0.1 and a 1x1 classifier. Stage-4 FCN head
(weight 0.2) as in the authors' training.

The SE-loss (a per-image, multi-label "which classes are present" BCE on the encoding) is
not a map, so the trainer cannot apply it: it and its FC layer are left out (ModelInfo.notes).
Params: Table 4's 51.25M / 217.5 GMACs fit this model on a ResNet-101 (about 54.8M); on the
ResNet50 that Table 4 names it has 35.9M.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import DilatedResNetHeads
from .layers import ConvBNAct, ResizeOutputs, SegmentationHead
from .registry import register_model

CODEWORDS = 32


class Encoding(nn.Module):
    """Encoding layer: soft-assigned residuals to K learned codewords, (N, C, L) -> (N, K, C); orderless in L."""

    def __init__(self, channels: int, codewords: int = CODEWORDS) -> None:
        super().__init__()
        bound = (codewords * channels) ** -0.5
        self.codewords = nn.Parameter(torch.empty(codewords, channels).uniform_(-bound, bound))
        self.smoothing = nn.Parameter(torch.empty(codewords).uniform_(0.0, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, L); uses ||x - d||^2 = |x|^2 - 2 x.d + |d|^2 so the (N, L, K, C) residuals are never built."""
        feats = x.transpose(1, 2)
        dist = (
            feats.square().sum(-1, keepdim=True)
            - 2 * feats @ self.codewords.t()
            + self.codewords.square().sum(-1)
        )
        assign = torch.softmax(-self.smoothing * dist, dim=-1)
        return assign.transpose(1, 2) @ feats - assign.sum(1).unsqueeze(-1) * self.codewords


class ContextEncoding(nn.Module):
    """Encode the feature statistics, then rescale channels by sigmoid(FC(sum of encoded codewords))."""

    def __init__(self, channels: int, codewords: int = CODEWORDS) -> None:
        super().__init__()
        self.project = ConvBNAct(channels, channels, 1)
        self.encoding = Encoding(channels, codewords)
        self.norm = nn.BatchNorm1d(codewords)
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded = F.relu(self.norm(self.encoding(self.project(x).flatten(2)))).sum(1)
        scale = torch.sigmoid(self.fc(encoded))
        return x * scale[:, :, None, None]


class EncHead(nn.Module):
    """3x3 conv -> Context Encoding Module -> dropout + 1x1 classifier."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 512) -> None:
        super().__init__()
        self.reduce = ConvBNAct(in_channels, channels, 3)
        self.encode = ContextEncoding(channels)
        self.classifier = SegmentationHead(channels, num_classes, dropout=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encode(self.reduce(x)))


class EncNet(DilatedResNetHeads):
    """Dilated ResNet50 (output stride 8) + Context Encoding head; train mode adds the stage-4 FCN output."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, channels: int = 512) -> None:
        super().__init__(lambda c4: EncHead(c4, num_classes, channels), num_classes, in_channels, pretrained)


@register_model(
    "encnet-resnet50",
    family="encnet",
    paper_name="EncNet",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 0.2),
    reference="Zhang et al., Context Encoding for Semantic Segmentation, CVPR 2018",
    notes="Context Encoding Module (K=32) on a dilated ResNet50 (output stride 8), stage-4 FCN auxiliary head "
    "weighted 0.2. SE-loss dropped (an image-level BCE, not a map the trainer can use). Params 31% below "
    "Table 4: its 51.25M / 217.5 GMACs fit this model on ResNet-101 (~54.8M); we keep the ResNet50 Table 4 names.",
)
def encnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
    """EncNet with a dilated ResNet50."""
    return ResizeOutputs(EncNet(num_classes, in_channels, pretrained))
