"""DUpsampling (Tian et al., CVPR 2019) as the MiniSeg authors built it (release `Others/dunet.py`).

Backbone: the release's `resnet50_v1b` (dilated ResNet-50, output stride 8, no fc). Decoder: layer2
(512 ch) and layer3 (1024 ch) features, resized to layer4's size, each projected by a 1x1
conv-BN-ReLU to 48 channels and concatenated with layer4 (2048 + 96 = 2144 channels); two 3x3
conv-BN-ReLU to 256; then DUpsampling: a bias-free 1x1 conv to classes * r * r channels whose r x r
blocks are laid out as the output's r x r cells (r = output stride), a learned per-cell linear
reconstruction. No adaptive-temperature softmax (the file has none). 29,145,344 params.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet_features
from .layers import ConvBNAct, upsample_to
from ._registry import register_model

LOW_CHANNELS = 48
CHANNELS = 256


class DUpsample(nn.Module):
    """Bias-free 1x1 conv to C * r^2 channels, rearranged into r x r blocks (a per-cell linear reconstruction)."""

    def __init__(self, in_channels: int, num_classes: int, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.project = nn.Conv2d(in_channels, num_classes * ratio * ratio, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.project(x), self.ratio)


class DUpsamplingNet(nn.Module):
    """Dilated ResNet-50, layer2/layer3 fused at layer4's resolution, DUpsampling decoder."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, output_stride: int = 8) -> None:
        super().__init__()
        self.backbone = resnet_features(
            50, output_stride, pretrained, in_channels, out_indices=(2, 3, 4), dilate_first_block=False
        )
        c2, c3, c4 = self.backbone.channels
        self.low = nn.ModuleList(ConvBNAct(c, LOW_CHANNELS, 1) for c in (c3, c2))  # concat order: c4, c3, c2
        self.fuse = nn.Sequential(ConvBNAct(c4 + 2 * LOW_CHANNELS, CHANNELS, 3), ConvBNAct(CHANNELS, CHANNELS, 3))
        self.decode = DUpsample(CHANNELS, num_classes, output_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c2, c3, c4 = self.backbone(x)
        size = c4.shape[-2:]
        lows = [project(upsample_to(c, size)) for project, c in zip(self.low, (c3, c2))]
        return upsample_to(self.decode(self.fuse(torch.cat([c4, *lows], dim=1))), x.shape[-2:])


@register_model(
    "dupsampling-resnet50",
    family="dupsampling",
    paper_name="DUpsampling",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference="Tian et al., Decoders Matter for Semantic Segmentation: Data-Dependent Decoding Enables "
    "Flexible Feature Aggregation, CVPR 2019",
    notes="the authors' build (Others/dunet.py, resnet50_v1b at output stride 8): layer2 + layer3 fused "
    "(48 ch each) with layer4, DUpsampling W learned end to end, no adaptive temperature. 29,145,344 params; "
    "builder option output_stride (8, 16, 32) sets the backbone stride and the DUpsampling ratio",
    input_multiple=8,
)
def dupsampling_resnet50(
    num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 8
) -> DUpsamplingNet:
    """The authors' DUpsampling network on a ResNet-50 at `output_stride` (8, 16 or 32)."""
    return DUpsamplingNet(num_classes, in_channels, pretrained, output_stride)
