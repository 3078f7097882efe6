"""PSPNet on a dilated ResNet50 (Zhao et al., CVPR 2017), written from the paper.

ResNet50 dilated to output stride 8; the pyramid pooling module average-pools layer4's
2048-channel map into 1x1, 2x2, 3x3 and 6x6 bins, reduces each to 2048/4 = 512 channels
(1x1 conv-BN-ReLU), upsamples them bilinearly and concatenates them with the map; a 3x3
conv-BN-ReLU (512), dropout 0.1 and a 1x1 classifier follow. The auxiliary loss (weight
0.4) comes from an FCN head on layer3 (the paper: res4b22 of ResNet101), as the paper trains it.

Parameter count: 48.9M with the auxiliary head (46.6M without) and 178 GMACs at 512x512,
against Table 4's 64.03M / 257.79 GFLOPs. The same network on ResNet101 (`depth=101`)
has 65.6M without the aux head (67.9M with) and 256.0 GMACs, so Table 4's row was most
likely measured on ResNet101; the registered row keeps the ResNet50 that the table names.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.models.segmentation.fcn import FCNHead

from .backbones import resnet_features
from .layers import ConvBNAct, upsample_to
from .registry import register_model

BINS = (1, 2, 3, 6)
HEAD_CHANNELS = 512


class PyramidPooling(nn.Module):
    """Pool into each bin size, 1x1 conv-BN-ReLU to in/len(bins) channels, upsample, concat with the input."""

    def __init__(self, in_channels: int, bins: Sequence[int] = BINS) -> None:
        super().__init__()
        self.bins = tuple(bins)
        reduced = in_channels // len(self.bins)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), ConvBNAct(in_channels, reduced, kernel_size=1)) for b in self.bins
        )
        self.out_channels = in_channels + reduced * len(self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return torch.cat([x] + [upsample_to(branch(x), size) for branch in self.branches], dim=1)


class PSPNet(nn.Module):
    """Dilated ResNet50 -> pyramid pooling -> 3x3 conv -> classifier; FCN aux head on layer3 in training."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, depth: int = 50) -> None:
        super().__init__()
        self.backbone = resnet_features(
            depth, output_stride=8, pretrained=pretrained, in_channels=in_channels, out_indices=(3, 4)
        )
        aux_in, top_in = self.backbone.channels
        self.ppm = PyramidPooling(top_in)
        self.head = nn.Sequential(
            ConvBNAct(self.ppm.out_channels, HEAD_CHANNELS), nn.Dropout2d(0.1), nn.Conv2d(HEAD_CHANNELS, num_classes, 1)
        )
        self.aux_head = FCNHead(aux_in, num_classes)

    def forward(self, x: torch.Tensor):
        c3, c4 = self.backbone(x)
        main = upsample_to(self.head(self.ppm(c4)), x.shape[-2:])
        if not self.training:
            return main
        return main, upsample_to(self.aux_head(c3), x.shape[-2:])


@register_model(
    "pspnet-resnet50",
    family="pspnet",
    paper_name="PSPNet",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 0.4),
    reference="Zhao et al., Pyramid Scene Parsing Network, CVPR 2017",
    notes=(
        "48.9M (aux head included) vs Table 4's 64.03M: Table 4's params/GFLOPs match this network on "
        "ResNet101 (depth=101: 65.6M without aux, 256.0 GMACs), so the row was likely measured on ResNet101"
    ),
    input_multiple=8,
)
def pspnet_resnet50(
    num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, depth: int = 50
) -> PSPNet:
    """PSPNet (ResNet50, bins 1/2/3/6, aux loss 0.4 on layer3); `depth=101` for the ResNet101 version."""
    return PSPNet(num_classes, in_channels, pretrained, depth)
