"""DeepLabv3 on a dilated ResNet50 and DeepLabv3+ on aligned Xception-65, written from the papers.

DeepLabv3 (Chen et al. 2017): ResNet50 dilated to output stride 8 (the stride the paper
evaluates at; Table 4's 163.83 GFLOPs is an OS-8 figure), ASPP with a 1x1 branch, three
3x3 branches at rates (12, 24, 36) (= (6, 12, 18) at OS 16, doubled at OS 8), and
image-level pooling, all 256 channels with BN, concatenated and projected by a 1x1 conv
(256) before the 1x1 classifier; bilinear upsampling to the input. No multi-grid in
layer4 and no auxiliary loss (the paper trains neither here). 39.0M params (Table 4: 38.71M).

DeepLabv3+ (Chen et al. 2018): aligned Xception-65 (timm's `xception65`) at OS 16, ASPP
rates (6, 12, 18); decoder: the stride-4 low-level feature (256 ch, entry-flow block 2)
projected to 48 channels by 1x1 conv-BN-ReLU, concatenated with the 4x upsampled ASPP
output, two 3x3 conv-BN-ReLU (256), 1x1 classifier, 4x upsampling. ASPP and decoder use
regular convs (the paper's variant without separable convs in them); 54.7M params,
Table 4: 53.33M (separable ones would give about 41M).

The ASPP module is torchvision's (`torchvision.models.segmentation.deeplabv3.ASPP`), the
same architecture as the paper's (it adds dropout 0.5 after the projection).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from .backbones import resnet_features, timm_features
from .layers import ConvBNAct, upsample_to
from .registry import register_model

ASPP_CHANNELS = 256
LOW_LEVEL_CHANNELS = 48
RATES_AT_OS16 = (6, 12, 18)
V3_REFERENCE = "Chen et al., Rethinking Atrous Convolution for Semantic Image Segmentation, arXiv:1706.05587, 2017"
V3PLUS_REFERENCE = (
    "Chen et al., Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation, ECCV 2018"
)


def aspp_rates(output_stride: int) -> tuple[int, ...]:
    """The paper's ASPP rates: (6, 12, 18) at output stride 16, scaled by 16 / output_stride."""
    if output_stride not in (8, 16):
        raise ValueError(f"DeepLab output_stride must be 8 or 16, got {output_stride}")
    return tuple(r * 16 // output_stride for r in RATES_AT_OS16)


class DeepLabV3(nn.Module):
    """Dilated ResNet50 -> ASPP -> 1x1 classifier -> bilinear upsampling."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 8
    ) -> None:
        super().__init__()
        self.backbone = resnet_features(
            50, output_stride=output_stride, pretrained=pretrained, in_channels=in_channels, out_indices=(4,)
        )
        self.aspp = ASPP(self.backbone.channels[-1], list(aspp_rates(output_stride)), ASPP_CHANNELS)
        self.classifier = nn.Conv2d(ASPP_CHANNELS, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top,) = self.backbone(x)
        return upsample_to(self.classifier(self.aspp(top)), x.shape[-2:])


class DeepLabV3Plus(nn.Module):
    """Aligned Xception-65 -> ASPP; decoder fuses a 48-channel projection of the stride-4 feature."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 16
    ) -> None:
        super().__init__()
        self.backbone = timm_features(
            "xception65",
            output_stride=output_stride,
            pretrained=pretrained,
            in_channels=in_channels,
            out_indices=(1, 4),
        )
        low_in, top_in = self.backbone.channels
        self.aspp = ASPP(top_in, list(aspp_rates(output_stride)), ASPP_CHANNELS)
        self.low_level = ConvBNAct(low_in, LOW_LEVEL_CHANNELS, kernel_size=1)
        self.decoder = nn.Sequential(
            ConvBNAct(ASPP_CHANNELS + LOW_LEVEL_CHANNELS, ASPP_CHANNELS),
            ConvBNAct(ASPP_CHANNELS, ASPP_CHANNELS),
            nn.Conv2d(ASPP_CHANNELS, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, top = self.backbone(x)
        context = upsample_to(self.aspp(top), low.shape[-2:])
        logits = self.decoder(torch.cat([context, self.low_level(low)], dim=1))
        return upsample_to(logits, x.shape[-2:])


@register_model(
    "deeplabv3-resnet50",
    family="deeplab",
    paper_name="DeepLabv3",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference=V3_REFERENCE,
    notes="output stride 8, ASPP rates (12, 24, 36); no multi-grid, no aux loss",
    input_multiple=8,
)
def deeplabv3_resnet50(
    num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 8
) -> DeepLabV3:
    """DeepLabv3 with a dilated ResNet50 (`output_stride=16` gives rates 6/12/18)."""
    return DeepLabV3(num_classes, in_channels, pretrained, output_stride)


@register_model(
    "deeplabv3plus-xception",
    family="deeplab",
    paper_name="DeepLabv3+",
    backbone="Xception",
    pretrained_backbone=True,
    reference=V3PLUS_REFERENCE,
    notes="aligned Xception-65 (timm xception65), output stride 16; ASPP and decoder with regular (not separable) "
    "convs",
    input_multiple=16,
)
def deeplabv3plus_xception(
    num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 16
) -> DeepLabV3Plus:
    """DeepLabv3+ with aligned Xception-65 and the 48-channel low-level decoder."""
    return DeepLabV3Plus(num_classes, in_channels, pretrained, output_stride)
