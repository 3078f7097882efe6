"""DUpsampling (Tian et al., CVPR 2019): data-dependent upsampling decoder on ResNet50, written from the paper.

Decoder: conv2_x features (layer1, stride 4; 1x1 conv -> 48) are downsampled to the last feature map's size and
concatenated with stage 5 (the paper fuses low-level features at the coarse resolution), two
3x3 convs -> 256, then DUpsampling: a 1x1 conv to num_classes * r * r channels, each r x r output
block reconstructed linearly from the one feature vector of its cell (r = output stride), and the
adaptive-temperature softmax (logits divided by a learned T, initialised to 1). W is learned end
to end with the network rather than pre-computed from label patches (the paper's alternative).

Output stride 8 by default: Table 4's 123 GMACs at 512 imply a dilated, stride-8 encoder; the
paper's own ResNet-50 experiments use stride 16/32 (`output_stride=16` or `32`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet_features
from .layers import ConvBNAct, ResizeOutputs, upsample_to
from .registry import register_model


class DUpsample(nn.Module):
    """1x1 conv to C * r^2 channels, rearranged into r x r blocks (a per-cell linear reconstruction)."""

    def __init__(self, in_channels: int, num_classes: int, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.project = nn.Conv2d(in_channels, num_classes * ratio * ratio, 1, bias=False)
        self.temperature = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.project(x), self.ratio) / self.temperature


class DUpsamplingNet(nn.Module):
    """ResNet50 encoder, low-level fusion at the coarse resolution, DUpsampling decoder."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, output_stride: int = 8) -> None:
        super().__init__()
        self.backbone = resnet_features(50, output_stride, pretrained, in_channels, out_indices=(1, 4))
        c1, c4 = self.backbone.channels
        self.low = ConvBNAct(c1, 48, 1)
        self.fuse = nn.Sequential(ConvBNAct(c4 + 48, 256, 3), ConvBNAct(256, 256, 3))
        self.decode = DUpsample(256, num_classes, output_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c4 = self.backbone(x)
        low = upsample_to(self.low(c1), c4.shape[-2:])
        return self.decode(self.fuse(torch.cat([c4, low], dim=1)))


@register_model(
    "dupsampling-resnet50",
    family="dupsampling",
    paper_name="DUpsampling",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference="Tian et al., Decoders Matter for Semantic Segmentation: Data-Dependent Decoding Enables "
    "Flexible Feature Aggregation, CVPR 2019",
    notes="Output stride 8 (dilated ResNet50) to match Table 4's GMACs; the paper's ResNet-50 runs use 16/32 "
    "(builder option output_stride). DUpsampling W learned end to end; adaptive-temperature softmax kept.",
)
def dupsampling_resnet50(
    num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 8
) -> nn.Module:
    """DUpsampling with a ResNet50 encoder at `output_stride` (8, 16 or 32)."""
    return ResizeOutputs(DUpsamplingNet(num_classes, in_channels, pretrained, output_stride))
