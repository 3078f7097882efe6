"""U-Net, Attention U-Net and UNet++ as the MiniSeg authors built them (their Table 4 rows).

The networks are those of their papers (Ronneberger et al. 2015; Oktay et al. 2018; Zhou et
al. 2018) in the layout of the authors' baseline files (`full_code/models/Baselines/UNet.py`,
`Att_UNet.py`, `NestedUNet.py`), which all share:
- 5 levels of widths w, 2w, 4w, 8w, 16w; a node is two 3x3 conv (with bias) -> BN -> ReLU, padded
  so that sizes are kept (the 2015 paper: unpadded convs, no BN); 2x2 max-pool between levels;
- U-Net / Attention U-Net go up by nearest-neighbour 2x upsampling followed by a 3x3
  conv-BN-ReLU that halves the channels (not a transposed conv); UNet++ by plain bilinear 2x
  upsampling (align_corners=True) without a conv, its nodes taking the concatenation;
- the Attention U-Net gate reads the skip x and the *upsampled* decoder feature g at the same
  resolution: psi(relu(BN(W_g g) + BN(W_x x))) -> BN -> sigmoid scales x (no stride-2 theta);
- UNet++ has one 1x1 head on X(0,4) (no deep supervision).

Width: Table 4's counts (8.43M / 8.52M / 8.95M in units of 1,024,000) are base width w = 32;
the released files default to w = 64 (the 2015 paper's width), registered as the `-w64` variants.
The finest attention gate has 32 inner channels at any width (the authors' file fixes it; the
other gates use half the skip's channels).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ._registry import register_model

LEVELS = 5
PAPER_WIDTH = 32
CLASSIC_WIDTH = 64
FINEST_GATE_CHANNELS = 32  # inner channels of the level-0 attention gate in the authors' file, at any width
UNET_REFERENCE = "Ronneberger et al., U-Net: Convolutional Networks for Biomedical Image Segmentation, MICCAI 2015"
ATTENTION_REFERENCE = "Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas, MIDL 2018"
UNETPP_REFERENCE = "Zhou et al., UNet++: A Nested U-Net Architecture for Medical Image Segmentation, DLMIA 2018"
BUILD_NOTE = (
    "the authors' build: base width 32 (their released file defaults to 64, registered as the -w64 variant); "
    "padded convs with bias + BN"
)
VARIANT_NOTE = "not the paper's build: base width 64 (the released file's default and the 2015 paper's width)"


def level_widths(base_channels: int) -> tuple[int, ...]:
    """Channels of the five levels: base, 2 base, ..., 16 base."""
    return tuple(base_channels * 2**i for i in range(LEVELS))


class ConvBNReLU(nn.Sequential):
    """3x3 conv (with bias, as the authors' files) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU: one U-Net node."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvBNReLU(in_channels, out_channels), ConvBNReLU(out_channels, out_channels))


class UpConv(nn.Sequential):
    """Nearest 2x upsampling then a 3x3 conv-BN-ReLU (the authors' `up_conv`)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2), ConvBNReLU(in_channels, out_channels))


class Encoder(nn.Module):
    """The contracting path: node, then (max-pool, node) four times; returns all five levels."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        ins = (in_channels, *widths[:-1])
        self.nodes = nn.ModuleList(DoubleConv(i, o) for i, o in zip(ins, widths))
        self.pools = nn.ModuleList(nn.MaxPool2d(2) for _ in widths[1:])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.nodes[0](x)]
        for pool, node in zip(self.pools, self.nodes[1:]):
            feats.append(node(pool(feats[-1])))
        return feats


def _conv1x1_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv (with bias) -> BN: the attention gate's projections."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))


class AttentionGate(nn.Module):
    """Additive attention gate: alpha = sigmoid(BN(psi(relu(W_g g + W_x x)))), output x * alpha.

    g is the decoder feature already upsampled to the skip x's resolution, so no resampling is needed.
    """

    def __init__(self, gate_channels: int, skip_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.w_g = _conv1x1_bn(gate_channels, inter_channels)
        self.w_x = _conv1x1_bn(skip_channels, inter_channels)
        self.psi = nn.Sequential(_conv1x1_bn(inter_channels, 1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention coefficients in [0, 1], one channel at the skip's resolution."""
        return self.psi(self.relu(self.w_g(g) + self.w_x(x)))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.coefficients(x, g)


def gate_widths(widths: Sequence[int]) -> tuple[int, ...]:
    """Inner channels of the gates on levels 3, 2, 1, 0: half the skip's channels, 32 at level 0."""
    return tuple(widths[i] // 2 for i in range(LEVELS - 2, 0, -1)) + (FINEST_GATE_CHANNELS,)


class UNet(nn.Module):
    """U-Net: 4 down, 4 up, concatenated skips; with `attention=True`, the skips are gated (Attention U-Net)."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, base_channels: int = PAPER_WIDTH, attention: bool = False
    ) -> None:
        super().__init__()
        widths = level_widths(base_channels)
        self.encoder = Encoder(in_channels, widths)
        fine = range(LEVELS - 2, -1, -1)  # levels 3, 2, 1, 0
        self.ups = nn.ModuleList(UpConv(widths[i + 1], widths[i]) for i in fine)
        self.nodes = nn.ModuleList(DoubleConv(2 * widths[i], widths[i]) for i in fine)
        self.gates = (
            nn.ModuleList(
                AttentionGate(widths[i], widths[i], inner) for i, inner in zip(fine, gate_widths(widths))
            )
            if attention
            else None
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        for k, (up, node) in enumerate(zip(self.ups, self.nodes)):
            skip, y = feats[LEVELS - 2 - k], up(y)
            if self.gates is not None:
                skip = self.gates[k](skip, y)
            y = node(torch.cat([skip, y], dim=1))
        return self.head(y)


class UNetPlusPlus(nn.Module):
    """UNet++: nested, densely connected skip pathways X(i,j), one head on X(0,4).

    Node X(i,j), j >= 1, takes the concatenation of X(i,0..j-1) and the bilinearly
    upsampled X(i+1,j-1) (no up-convolution, as the authors' file).
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3, base_channels: int = PAPER_WIDTH) -> None:
        super().__init__()
        widths = level_widths(base_channels)
        self.encoder = Encoder(in_channels, widths)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.nodes = nn.ModuleDict(
            {f"{i}_{j}": DoubleConv(j * widths[i] + widths[i + 1], widths[i]) for i, j in self.node_ids()}
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    @staticmethod
    def node_ids() -> list[tuple[int, int]]:
        """Decoder nodes (i, j) with j >= 1 and i + j <= 4, column by column."""
        return [(i, j) for j in range(1, LEVELS) for i in range(LEVELS - j)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid: dict[tuple[int, int], torch.Tensor] = {(i, 0): f for i, f in enumerate(self.encoder(x))}
        for i, j in self.node_ids():
            same_level = [grid[(i, k)] for k in range(j)]
            grid[(i, j)] = self.nodes[f"{i}_{j}"](torch.cat([*same_level, self.up(grid[(i + 1, j - 1)])], dim=1))
        return self.head(grid[(0, LEVELS - 1)])


@register_model(
    "unet",
    family="unet",
    paper_name="U-Net",
    reference=UNET_REFERENCE,
    notes=BUILD_NOTE + "; up = nearest 2x + 3x3 conv-BN-ReLU",
    input_multiple=16,
)
def unet(num_classes: int = 2, in_channels: int = 3, base_channels: int = PAPER_WIDTH) -> UNet:
    """U-Net as the authors built it (8,637,378 params at width 32, 2 classes)."""
    return UNet(num_classes, in_channels, base_channels)


@register_model(
    "unet-w64",
    family="unet",
    reference=UNET_REFERENCE,
    notes=VARIANT_NOTE,
    input_multiple=16,
)
def unet_w64(num_classes: int = 2, in_channels: int = 3, base_channels: int = CLASSIC_WIDTH) -> UNet:
    """U-Net at width 64..1024 (the authors' released default)."""
    return UNet(num_classes, in_channels, base_channels)


@register_model(
    "attention-unet",
    family="unet",
    paper_name="Attention U-Net",
    reference=ATTENTION_REFERENCE,
    notes=BUILD_NOTE + "; additive gates on the four skips, gated by the upsampled decoder feature; "
    "no deep supervision",
    input_multiple=16,
)
def attention_unet(num_classes: int = 2, in_channels: int = 3, base_channels: int = PAPER_WIDTH) -> UNet:
    """U-Net with an attention gate on each skip (8,727,246 params at width 32, 2 classes)."""
    return UNet(num_classes, in_channels, base_channels, attention=True)


@register_model(
    "attention-unet-w64",
    family="unet",
    reference=ATTENTION_REFERENCE,
    notes=VARIANT_NOTE,
    input_multiple=16,
)
def attention_unet_w64(num_classes: int = 2, in_channels: int = 3, base_channels: int = CLASSIC_WIDTH) -> UNet:
    """Attention U-Net at width 64..1024 (the authors' released default)."""
    return UNet(num_classes, in_channels, base_channels, attention=True)


@register_model(
    "unetplusplus",
    family="unet",
    paper_name="UNet++",
    reference=UNETPP_REFERENCE,
    notes=BUILD_NOTE + "; bilinear up without conv; one head on X(0,4), no deep supervision (the authors' file)",
    input_multiple=16,
)
def unetplusplus(num_classes: int = 2, in_channels: int = 3, base_channels: int = PAPER_WIDTH) -> UNetPlusPlus:
    """UNet++ as the authors built it (9,163,362 params at width 32, 2 classes)."""
    return UNetPlusPlus(num_classes, in_channels, base_channels)


@register_model(
    "unetplusplus-w64",
    family="unet",
    reference=UNETPP_REFERENCE,
    notes=VARIANT_NOTE,
    input_multiple=16,
)
def unetplusplus_w64(
    num_classes: int = 2, in_channels: int = 3, base_channels: int = CLASSIC_WIDTH
) -> UNetPlusPlus:
    """UNet++ at width 64..1024 (the authors' released default)."""
    return UNetPlusPlus(num_classes, in_channels, base_channels)
