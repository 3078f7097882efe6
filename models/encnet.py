"""EncNet (Zhang et al., CVPR 2018) as the MiniSeg authors built it (release `Others/EncNet.py`).

Backbone: the release's `resnet101_v1b` (dilated ResNet-101, output stride 8, no fc); the file's
default is ResNet-50, but only ResNet-101 reproduces Table 4 (which says ResNet50). Head: 3x3
conv-BN-ReLU 2048 -> 512, then the Context Encoding Module: 1x1 conv-BN-ReLU, the Encoding layer
(K = 32 codewords of 512 dims with smoothing factors; residuals soft-assigned by
softmax_k(-s_k ||x_i - d_k||^2) and aggregated), BN1d + ReLU, mean over the codewords, an FC layer
with sigmoid giving channel weights gamma, output ReLU(x + x * gamma); dropout 0.1 and a 1x1
classifier. The SE-loss layer (Linear 512 -> classes) is built, as in the file, and counted, but the
file's forward discards its output and the authors' loss uses the main output only: it is never
called here. No lateral connections, no auxiliary head: 52,482,724 params (52,481,698 on the eval path).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet_v1b_features
from .layers import ConvBNAct, upsample_to
from ._registry import register_model

CODEWORDS = 32
CHANNELS = 512
REFERENCE = "Zhang et al., Context Encoding for Semantic Segmentation, CVPR 2018"


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
    """Encode the feature statistics; reweight the channels by sigmoid(FC(mean of the encoded codewords))."""

    def __init__(self, channels: int, num_classes: int, codewords: int = CODEWORDS) -> None:
        super().__init__()
        self.project = ConvBNAct(channels, channels, 1)
        self.encoding = Encoding(channels, codewords)
        self.norm = nn.Sequential(nn.BatchNorm1d(codewords), nn.ReLU(inplace=True))
        self.fc = nn.Linear(channels, channels)
        self.se_layer = nn.Linear(channels, num_classes)  # the file's SE-loss classifier: counted, never used

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded = self.norm(self.encoding(self.project(x).flatten(2))).mean(1)
        gamma = torch.sigmoid(self.fc(encoded))
        return F.relu(x + x * gamma[:, :, None, None])


class EncHead(nn.Module):
    """3x3 conv -> Context Encoding Module -> dropout + 1x1 classifier."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = CHANNELS) -> None:
        super().__init__()
        self.reduce = ConvBNAct(in_channels, channels, 3)
        self.encode = ContextEncoding(channels, num_classes)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encode(self.reduce(x)))


class EncNet(nn.Module):
    """Dilated ResNet (resnetXX_v1b) + Context Encoding head, logits upsampled to the input."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, depth: int = 101) -> None:
        super().__init__()
        self.backbone = resnet_v1b_features(depth, pretrained, in_channels, out_indices=(4,))
        self.head = EncHead(self.backbone.channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top,) = self.backbone(x)
        return upsample_to(self.head(top), x.shape[-2:])


@register_model(
    "encnet-resnet101",
    family="encnet",
    paper_name="EncNet",
    backbone="ResNet-101",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="the authors' build (Others/EncNet.py with backbone resnet101): Table 4 says ResNet50; only the "
    "resnet101_v1b backbone reproduces its params/GFLOPs. Context Encoding (K=32, mean over codewords), "
    "no lateral connections, no auxiliary head; the SE-loss Linear is built and counted but unused, as in "
    "the file. 52,482,724 params",
    input_multiple=8,
)
def encnet_resnet101(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> EncNet:
    """The authors' EncNet on a dilated ResNet-101."""
    return EncNet(num_classes, in_channels, pretrained, depth=101)


@register_model(
    "encnet-resnet50",
    family="encnet",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="not the paper's build: the authors' EncNet (encnet-resnet101) on the ResNet50 that Table 4 names "
    "(the file's default; 33.5M params)",
    input_multiple=8,
)
def encnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> EncNet:
    """The authors' EncNet head on a dilated ResNet-50."""
    return EncNet(num_classes, in_channels, pretrained, depth=50)
