"""CMUNeXt (Tang et al., ISBI 2024): large-kernel inverted-bottleneck encoder and Skip-Fusion decoder.

Written from the paper; layer sizes from the authors' release (FengheTan9/CMUNeXt, `network/CMUNeXt.py`).
Widths (16, 32, 128, 160, 256), blocks per stage (1, 1, 1, 3, 1), depthwise kernels (3, 3, 7, 7, 7)
for the base model. Stem: 3x3 conv -> BN -> ReLU. Each encoder stage (the first at full resolution,
the others after a 2x2 max-pool) is `depth` CMUNeXt blocks - a residual depthwise k x k conv -> GELU
-> BN, then 1x1 expansion to 4C -> GELU -> BN -> 1x1 back to C -> GELU -> BN - followed by a 3x3
conv -> BN -> ReLU to the stage's output width. Decoder: bilinear x2 -> 3x3 conv -> BN -> ReLU, the
skip concatenated, then Skip-Fusion: 3x3 conv in two groups (skip / upsampled) -> GELU -> BN ->
1x1 to 4C -> GELU -> BN -> 1x1 to C -> GELU -> BN. Note the release's order: activation before BN.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import ConvBNAct, upsample_to
from ._registry import register_model

WIDTHS = (16, 32, 128, 160, 256)
DEPTHS = (1, 1, 1, 3, 1)
KERNELS = (3, 3, 7, 7, 7)
EXPANSION = 4
REFERENCE = (
    "Tang, Ding, Wang, Ning & Zhou, CMUNeXt: An Efficient Medical Image Segmentation Network based on Large "
    "Kernel and Skip Fusion, ISBI 2024"
)
#: The paper's configuration: binary masks (one output), RGB input, 256x256 (BUSI, GlaS, ISIC 2016).
PAPER_BUILD = {"num_classes": 1, "in_channels": 3}


def conv_gelu_bn(in_channels: int, out_channels: int, kernel_size: int = 1, groups: int = 1) -> list[nn.Module]:
    """k x k conv (bias) -> GELU -> BN: CMUNeXt's unit, activation before normalisation."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups)
    return [conv, nn.GELU(), nn.BatchNorm2d(out_channels)]


class Residual(nn.Module):
    """x + fn(x)."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class CMUNeXtBlock(nn.Sequential):
    """Residual depthwise k x k mixing, then the inverted bottleneck C -> 4C -> C (no residual)."""

    def __init__(self, channels: int, kernel_size: int, expansion: int = EXPANSION) -> None:
        super().__init__(
            Residual(nn.Sequential(*conv_gelu_bn(channels, channels, kernel_size, groups=channels))),
            *conv_gelu_bn(channels, channels * expansion),
            *conv_gelu_bn(channels * expansion, channels),
        )


class EncoderStage(nn.Sequential):
    """`depth` CMUNeXt blocks at the input width, then 3x3 conv -> BN -> ReLU to the output width."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, kernel_size: int) -> None:
        blocks = [CMUNeXtBlock(in_channels, kernel_size) for _ in range(depth)]
        super().__init__(*blocks, ConvBNAct(in_channels, out_channels, bias=True))


class SkipFusion(nn.Sequential):
    """Grouped 3x3 conv over [skip, upsampled] (2 groups) -> GELU -> BN -> 1x1 to 4C -> 1x1 to C."""

    def __init__(self, channels: int, expansion: int = EXPANSION) -> None:
        super().__init__(
            *conv_gelu_bn(2 * channels, 2 * channels, 3, groups=2),
            *conv_gelu_bn(2 * channels, channels * expansion),
            *conv_gelu_bn(channels * expansion, channels),
        )


class UpStage(nn.Module):
    """Bilinear up to the skip's size -> 3x3 conv -> BN -> ReLU, concatenated after the skip, Skip-Fusion."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = ConvBNAct(in_channels, out_channels, bias=True)
        self.fuse = SkipFusion(out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(upsample_to(x, skip.shape[-2:]))
        return self.fuse(torch.cat([skip, x], dim=1))


class CMUNeXt(nn.Module):
    """CMUNeXt: five encoder stages (1 .. 1/16), four Skip-Fusion decoder stages, 1x1 classifier."""

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        widths: Sequence[int] = WIDTHS,
        depths: Sequence[int] = DEPTHS,
        kernels: Sequence[int] = KERNELS,
    ) -> None:
        super().__init__()
        if not len(widths) == len(depths) == len(kernels) == 5:
            raise ValueError(f"CMUNeXt: widths, depths, kernels need 5 entries each, got {widths}, {depths}, {kernels}")
        self.stem = ConvBNAct(in_channels, widths[0], bias=True)
        ins = (widths[0], *widths[:-1])
        self.encoder = nn.ModuleList(EncoderStage(i, o, d, k) for i, o, d, k in zip(ins, widths, depths, kernels))
        self.pool = nn.MaxPool2d(2)
        self.decoder = nn.ModuleList(UpStage(widths[i + 1], widths[i]) for i in range(3, -1, -1))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder[0](self.stem(x))
        skips = [x]
        for stage in self.encoder[1:]:
            x = stage(self.pool(x))
            skips.append(x)
        skips.pop()  # the deepest stage is the decoder's input
        for stage in self.decoder:
            x = stage(x, skips.pop())
        return self.head(x)


@register_model(
    "cmunext",
    family="post2021",
    reference=REFERENCE,
    notes=(
        "paper (Table 1, BUSI, 256x256): 3.14M params, 7.41 GFLOPs (figures not re-read from the PDF here). "
        "Paper config = create_model('cmunext', num_classes=1): 3,149,185 params (the release's count exactly), "
        "7.32 fvcore GMACs (torch counter 7.23) at 1x3x256x256: the paper's GFLOPs are MACs (within 1.3%). "
        "Forward checked equal to the release's CMUNeXt. CMUNeXt-S/-L: widths (8,16,32,64,128) depths 1s kernels "
        "(3,3,7,7,9) / widths (32,64,128,256,512) depths (1,1,1,6,3). At 2 classes, 512x512: +17 params, 29.3 GMACs."
    ),
    min_input_size=16,
    input_multiple=16,
    reported_params=3_140_000,
    reported_gmacs=7.41,
    reported_input="256x256",
)
def cmunext(
    num_classes: int = 2,
    in_channels: int = 3,
    widths: Sequence[int] = WIDTHS,
    depths: Sequence[int] = DEPTHS,
    kernels: Sequence[int] = KERNELS,
) -> CMUNeXt:
    """CMUNeXt (3.15M params at one output class); the release's S/L variants via widths/depths/kernels."""
    return CMUNeXt(num_classes, in_channels, widths, depths, kernels)
