"""U-Lite (Dinh et al., APSIPA ASC 2023): a U-Net built from axial depthwise convolutions.

Written from the paper ("1M parameters are enough? A lightweight CNN-based model for medical image
segmentation"); layer sizes from the authors' release (duong-db/U-Lite, `models/ULite.py`).
Widths 16, 32, 64, 128, 256, 512. The axial depthwise convolution is x + DW_(k x 1)(x) + DW_(1 x k)(x)
(7x7 criss-cross in encoder and decoder). Stem: 7x7 conv 3 -> 16. Encoder block: axial DW -> BN
(this is the skip) -> 1x1 conv to the next width -> 2x2 max-pool -> GELU. Bottleneck: 1x1 to C/4,
then [x, axial DW 3 (dilation 1), (dilation 2), (dilation 3)] concatenated -> BN -> 1x1 to C -> GELU.
Decoder block: nearest x2, the skip concatenated -> 1x1 conv -> BN -> axial DW 7 -> 1x1 conv -> GELU.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import resize_to
from ._registry import register_model

WIDTHS = (16, 32, 64, 128, 256, 512)
MIXER_KERNEL = 7
BOTTLENECK_DILATIONS = (1, 2, 3)
REFERENCE = (
    "Dinh, Nguyen, Tran & Pham, 1M parameters are enough? A lightweight CNN-based model for medical image "
    "segmentation (U-Lite), APSIPA ASC 2023"
)
#: The paper's configuration: binary masks (one output), RGB input, 256x256.
PAPER_BUILD = {"num_classes": 1, "in_channels": 3}


class AxialDW(nn.Module):
    """Axial depthwise conv: x + DW_(k x 1)(x) + DW_(1 x k)(x), padded to keep the size."""

    def __init__(self, channels: int, kernel_size: int = MIXER_KERNEL, dilation: int = 1) -> None:
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.along_h = nn.Conv2d(channels, channels, (kernel_size, 1), padding=(pad, 0), dilation=dilation,
                                 groups=channels)
        self.along_w = nn.Conv2d(channels, channels, (1, kernel_size), padding=(0, pad), dilation=dilation,
                                 groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.along_h(x) + self.along_w(x)


class EncoderBlock(nn.Module):
    """Axial DW -> BN (returned as the skip) -> 1x1 conv -> 2x2 max-pool -> GELU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = MIXER_KERNEL) -> None:
        super().__init__()
        self.mix = AxialDW(in_channels, kernel_size)
        self.bn = nn.BatchNorm2d(in_channels)
        self.pw = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.bn(self.mix(x))
        return F.gelu(F.max_pool2d(self.pw(skip), 2)), skip


class Bottleneck(nn.Module):
    """1x1 to C/4, [x, axial DW 3 at dilations 1, 2, 3] concatenated -> BN -> 1x1 to C -> GELU."""

    def __init__(self, channels: int, dilations: Sequence[int] = BOTTLENECK_DILATIONS) -> None:
        super().__init__()
        inner = channels // 4
        self.reduce = nn.Conv2d(channels, inner, 1)
        self.branches = nn.ModuleList(AxialDW(inner, 3, d) for d in dilations)
        width = inner * (len(dilations) + 1)
        self.bn = nn.BatchNorm2d(width)
        self.expand = nn.Conv2d(width, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        x = torch.cat([x, *(branch(x) for branch in self.branches)], dim=1)
        return F.gelu(self.expand(self.bn(x)))


class DecoderBlock(nn.Module):
    """Nearest up to the skip's size, [x, skip] -> 1x1 conv -> BN -> axial DW -> 1x1 conv -> GELU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = MIXER_KERNEL) -> None:
        super().__init__()
        self.pw = nn.Conv2d(in_channels + out_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.mix = AxialDW(out_channels, kernel_size)
        self.pw2 = nn.Conv2d(out_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([resize_to(x, skip.shape[-2:], mode="nearest"), skip], dim=1)
        return F.gelu(self.pw2(self.mix(self.bn(self.pw(x)))))


class ULite(nn.Module):
    """U-Lite: 7x7 stem, five axial-DW encoder blocks (to 1/32), dilated axial bottleneck, five decoder blocks."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, widths: Sequence[int] = WIDTHS) -> None:
        super().__init__()
        if len(widths) != 6:
            raise ValueError(f"U-Lite: widths must hold 6 entries (stem and five blocks), got {tuple(widths)}")
        self.stem = nn.Conv2d(in_channels, widths[0], 7, padding=3)
        self.encoder = nn.ModuleList(EncoderBlock(i, o) for i, o in zip(widths[:-1], widths[1:]))
        self.bottleneck = Bottleneck(widths[-1])
        self.decoder = nn.ModuleList(DecoderBlock(widths[i + 1], widths[i]) for i in range(len(widths) - 2, -1, -1))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for block in self.encoder:
            x, skip = block(x)
            skips.append(skip)
        x = self.bottleneck(x)
        for block in self.decoder:
            x = block(x, skips.pop())
        return self.head(x)


@register_model(
    "ulite",
    family="post2021",
    reference=REFERENCE,
    notes=(
        "paper (abstract, 256x256 inputs): 878K params; its FLOPs figure is not taken here (not verified). Paper "
        "config = create_model('ulite', num_classes=1): 878,417 params (the release's count exactly), 0.75 fvcore "
        "GMACs (torch counter 0.74) at 1x3x256x256 (fvcore misses the release's padding='same' convs: 0.54 there; "
        "we pad explicitly). Forward checked equal to the release's ULite. At 2 classes, 512x512: +17 params, "
        "3.00 GMACs. No deep supervision."
    ),
    min_input_size=32,
    input_multiple=32,
    reported_params=878_000,
    reported_input="256x256",
)
def ulite(num_classes: int = 2, in_channels: int = 3, widths: Sequence[int] = WIDTHS) -> ULite:
    """U-Lite (878K params at one output class)."""
    return ULite(num_classes, in_channels, widths)
