"""Anam-Net (Paluru et al., IEEE TNNLS 2021): a U-Net with anamorphic depth-embedding bottlenecks,
designed for anomaly segmentation in COVID-19 chest CT.

Written from the paper; layer sizes from the authors' release (NaveenPaluru/Segmentation-COVID-19,
`anamnet.py`). Encoder: four stages of 3x3 conv -> BN -> ReLU (64, 128, 256, 256 channels), each
followed by a 2x2 max-pool; after pools 1-3 an anamorphic depth embedding (AD) block. Decoder: 2x2
transposed conv (x2), an AD block (first three stages), the skip concatenated, 3x3 conv -> BN ->
ReLU (256, 256, 128, 64), then a 1x1 classifier. The AD block is a residual bottleneck: 1x1 conv
squeezing the depth to C/4 -> 3x3 conv -> 1x1 conv stretching back to C (each bias-free -> BN ->
ReLU), added to its input, then ReLU.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNAct, upsample_to
from ._registry import register_model

SQUEEZE = 4
REFERENCE = (
    "Paluru, Dayal, Jenssen, Sakinis, Cenkeramaddi, Prakash & Yalavarthy, Anam-Net: Anamorphic Depth "
    "Embedding-Based Lightweight CNN for Segmentation of Anomalies in COVID-19 Chest CT Images, IEEE TNNLS 2021"
)
#: The paper's configuration: one CT channel, three classes (background, normal lung, anomaly), 512x512.
PAPER_BUILD = {"num_classes": 3, "in_channels": 1}


class AnamorphicBlock(nn.Module):
    """x -> 1x1 (C -> C/4) -> 3x3 -> 1x1 (-> C), each bias-free conv -> BN -> ReLU; ReLU(x + that)."""

    def __init__(self, channels: int, squeeze: int = SQUEEZE) -> None:
        super().__init__()
        inner = channels // squeeze
        self.body = nn.Sequential(
            ConvBNAct(channels, inner, 1), ConvBNAct(inner, inner, 3), ConvBNAct(inner, channels, 1)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class UpStage(nn.Module):
    """2x2 transposed conv (x2) -> AD block (optional) -> [x, skip] -> 3x3 conv -> BN -> ReLU."""

    def __init__(self, in_channels: int, up_channels: int, skip_channels: int, out_channels: int, ad: bool) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, up_channels, 2, stride=2)
        self.ad = AnamorphicBlock(up_channels) if ad else nn.Identity()
        self.conv = ConvBNAct(up_channels + skip_channels, out_channels, bias=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.ad(upsample_to(self.up(x), skip.shape[-2:]))
        return self.conv(torch.cat([x, skip], dim=1))


class AnamNet(nn.Module):
    """Anam-Net: conv stages (64, 128, 256, 256) with AD blocks after pools 1-3, transposed-conv decoder."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(
            [ConvBNAct(i, o, bias=True) for i, o in zip((in_channels, 64, 128, 256), (64, 128, 256, 256))]
        )
        self.embeddings = nn.ModuleList([AnamorphicBlock(64), AnamorphicBlock(128), AnamorphicBlock(256)])
        self.pool = nn.MaxPool2d(2)
        self.decoder = nn.ModuleList([
            UpStage(256, 256, 256, 256, ad=True),
            UpStage(256, 256, 256, 256, ad=True),
            UpStage(256, 128, 128, 128, ad=True),
            UpStage(128, 64, 64, 64, ad=False),
        ])
        self.head = nn.Conv2d(64, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
            if i < len(self.embeddings):
                x = self.embeddings[i](x)
        for stage in self.decoder:
            x = stage(x, skips.pop())
        return self.head(x)


@register_model(
    "anamnet",
    family="post2021",
    reference=REFERENCE,
    notes=(
        "paper: 4.47M params (not re-read from the PDF here; consistent with its abstract's '7.8 times fewer than "
        "UNet variants' vs Attention U-Net's 34.88M); no FLOPs taken. Paper config = create_model('anamnet', "
        "num_classes=3, in_channels=1) at 512x512: 4,631,555 params, the release's file exactly (+3.6% over "
        "4.47M; the release shows no layer that would explain it), 84.3 fvcore GMACs. Forward checked equal to the "
        "release's AnamNet. At 2 classes, 3 input channels, 512x512: 4,632,642 params, 84.6 GMACs. No deep "
        "supervision; the release trains with class-weighted CE like ours."
    ),
    min_input_size=16,
    input_multiple=16,
    reported_params=4_470_000,
    reported_input="512x512",
)
def anamnet(num_classes: int = 2, in_channels: int = 3) -> AnamNet:
    """Anam-Net (4.63M params as released at 1 input channel, 3 classes)."""
    return AnamNet(num_classes, in_channels)
