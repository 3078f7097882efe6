"""GFF (Li et al., AAAI 2020) as the MiniSeg authors built it (release `Others/GFF.py`).

The file's own reading of the paper ("may be wrong because lots of details [are] missing"), not the
paper's dense feature pyramid. Backbone: the release's `resnet101_v1b` (dilated ResNet-101, output
stride 8, no fc); the file's default is ResNet-50, but only ResNet-101 reproduces Table 4 (which
says ResNet50). All four stages meet at 1/8: each is projected to 256 channels by a bias-free 1x1
conv (layer1's with stride 2) and gated by G_i = sigmoid(1x1 conv 256 -> 256). Gated fully fusion
(the paper's Eq. 4): X~_l = (1 + G_l) X_l + (1 - G_l) sum_{i != l} G_i X_i, then two 3x3
conv-BN-ReLU per level. Context: PSPNet's pyramid pooling module on layer4 (its unpadded 3x3 conv
makes the map 2 px smaller), the fused levels resized to it. Dense concatenation [l1], [l1 l2],
[l1 l2 l3], [l1 .. l4], [psp l1 .. l4] (4096 channels), 3x3 conv-BN-ReLU to 512, then three
pre-activation stages (BN-ReLU-transposed 3x3 conv, stride 2, halving the channels; BN-ReLU-3x3 conv)
and a bias-free 1x1 classifier, bilinear upsampling to the input. No auxiliary head: 92,738,881 params.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import resnet_v1b_features
from .layers import ConvBNAct, upsample_to
from .pspnet import PyramidPooling
from ._registry import register_model

FUSION_CHANNELS = 256
CONTEXT_CHANNELS = 512
DECODER_CHANNELS = (256, 128, 64)
REFERENCE = "Li et al., Gated Fully Fusion for Semantic Segmentation, AAAI 2020"


class GatedFullyFusion(nn.Module):
    """Project every level to `channels`, gate it, fuse all levels into each level (Eq. 4), refine each level."""

    def __init__(self, in_channels: Sequence[int], strides: Sequence[int], channels: int = FUSION_CHANNELS) -> None:
        super().__init__()
        self.project = nn.ModuleList(
            nn.Conv2d(c, channels, 1, stride=s, bias=False) for c, s in zip(in_channels, strides)
        )
        self.gates = nn.ModuleList(nn.Conv2d(channels, channels, 1, bias=False) for _ in in_channels)
        self.refine = nn.ModuleList(
            nn.Sequential(ConvBNAct(channels, channels, 3), ConvBNAct(channels, channels, 3)) for _ in in_channels
        )

    def fuse(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Eq. 4 on the projected levels: each keeps (1 + G) X and takes (1 - G) of every other gated level."""
        levels = [project(f) for project, f in zip(self.project, features)]
        gates = [torch.sigmoid(gate(x)) for gate, x in zip(self.gates, levels)]
        gated = [g * x for g, x in zip(gates, levels)]
        total = sum(gated)
        return [(1 + g) * x + (1 - g) * (total - gx) for g, x, gx in zip(gates, levels, gated)]

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [refine(x) for refine, x in zip(self.refine, self.fuse(features))]


class PreActivation(nn.Sequential):
    """BN -> ReLU -> conv (a 3x3 conv, or a stride-2 transposed 3x3 conv that doubles the size minus one)."""

    def __init__(self, in_channels: int, out_channels: int, upscale: bool = False) -> None:
        conv: nn.Module
        if upscale:
            conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
        else:
            conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        super().__init__(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True), conv)


class GFFNet(nn.Module):
    """Dilated ResNet -> gated fully fusion + PSP context -> dense concat -> upscaling decoder -> classifier."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, depth: int = 101) -> None:
        super().__init__()
        self.backbone = resnet_v1b_features(depth, pretrained, in_channels, out_indices=(1, 2, 3, 4))
        stage_channels = self.backbone.channels
        self.fusion = GatedFullyFusion(stage_channels, strides=(2, 1, 1, 1))
        self.ppm = PyramidPooling(stage_channels[-1], CONTEXT_CHANNELS)
        n = len(stage_channels)  # [l1], [l1 l2], .., [l1 .. ln], then [psp l1 .. ln]
        dense = (n * (n + 1) // 2 + n) * FUSION_CHANNELS + CONTEXT_CHANNELS
        self.merge = ConvBNAct(dense, CONTEXT_CHANNELS, 3)
        widths = (CONTEXT_CHANNELS, *DECODER_CHANNELS)
        self.decoder = nn.Sequential(
            *(
                nn.Sequential(PreActivation(cin, cout, upscale=True), PreActivation(cout, cout))
                for cin, cout in zip(widths[:-1], widths[1:])
            )
        )
        self.classifier = nn.Conv2d(widths[-1], num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        context = self.ppm(feats[-1])
        levels = [upsample_to(level, context.shape[-2:]) for level in self.fusion(feats)]
        dense = [torch.cat(levels[: i + 1], dim=1) for i in range(len(levels))]
        merged = self.merge(torch.cat([*dense, context, *levels], dim=1))
        return upsample_to(self.classifier(self.decoder(merged)), x.shape[-2:])


@register_model(
    "gff-resnet101",
    family="gff",
    paper_name="GFF",
    backbone="ResNet-101",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="the authors' build (Others/GFF.py with backbone resnet101): Table 4 says ResNet50; only the "
    "resnet101_v1b backbone reproduces its params/GFLOPs. The file's own design (gated fusion of 4 stages "
    "at 1/8 with 256-channel gates, PSP context, dense concat, transposed-conv decoder), not the paper's "
    "dense feature pyramid; no auxiliary head. 92,738,881 params",
    input_multiple=8,
)
def gff_resnet101(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> GFFNet:
    """The authors' GFF on a dilated ResNet-101."""
    return GFFNet(num_classes, in_channels, pretrained, depth=101)


@register_model(
    "gff-resnet50",
    family="gff",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference=REFERENCE,
    notes="not the paper's build: the authors' GFF (gff-resnet101) on the ResNet50 that Table 4 names "
    "(the file's default; 73.7M params)",
    input_multiple=8,
)
def gff_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> GFFNet:
    """The authors' GFF on a dilated ResNet-50."""
    return GFFNet(num_classes, in_channels, pretrained, depth=50)
