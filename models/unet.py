"""U-Net, Attention U-Net and UNet++: one encoder column, three ways of using its skips.

Written from the papers (Ronneberger et al. 2015; Oktay et al. 2018; Zhou et al. 2018).
Common to all three: 5 levels, two 3x3 conv-BN-ReLU per node, 2x2 max-pool down,
2x2 transposed-conv ("up-convolution") up that halves the channels, 1x1 classifier.
Convs are padded so that the output keeps the input size (the 2015 paper used
unpadded convs and cropping), and BN follows every conv (none in 2015).

Widths: the 2015 paper's U-Net is 64..1024 (31.0M params). Table 4 of MiniSeg lists
8.43M / 8.52M / 8.95M for U-Net / Attention U-Net / UNet++, which is the 32..512 width
that the UNet++ paper uses for all three (its 7.76M U-Net, 9.04M UNet++); that is our
default (`base_channels=32`), and `base_channels=64` gives the 2015 width.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import ConvBNAct, upsample_to
from .registry import register_model

LEVELS = 5
UNET_REFERENCE = "Ronneberger et al., U-Net: Convolutional Networks for Biomedical Image Segmentation, MICCAI 2015"
ATTENTION_REFERENCE = "Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas, MIDL 2018"
UNETPP_REFERENCE = "Zhou et al., UNet++: A Nested U-Net Architecture for Medical Image Segmentation, DLMIA 2018"
WIDTH_NOTE = "width 32..512 (the UNet++ paper's setting; Table 4's count implies it); base_channels=64 gives 64..1024"


def level_widths(base_channels: int) -> tuple[int, ...]:
    """Channels of the five levels: base, 2 base, ..., 16 base."""
    return tuple(base_channels * 2**i for i in range(LEVELS))


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU: one U-Net node."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvBNAct(in_channels, out_channels), ConvBNAct(out_channels, out_channels))


class UpConv(nn.ConvTranspose2d):
    """2x2 transposed conv, stride 2: doubles the resolution (the papers' up-convolution)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2)


class Encoder(nn.Module):
    """The contracting path: node, then (max-pool, node) four times; returns all five levels."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        ins = (in_channels, *widths[:-1])
        self.nodes = nn.ModuleList(DoubleConv(i, o) for i, o in zip(ins, widths))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.nodes[0](x)]
        for node in self.nodes[1:]:
            feats.append(node(self.pool(feats[-1])))
        return feats


class AttentionGate(nn.Module):
    """Additive attention gate: alpha = sigmoid(psi(relu(W_x x + W_g g))), output x * alpha.

    x (the skip, fine) is brought to the gating signal's grid by a 2x2 stride-2 conv,
    g (the coarser decoder feature) by a 1x1 conv; alpha is resampled back to x's grid.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta_x = nn.Conv2d(skip_channels, inter_channels, 2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(gate_channels, inter_channels, 1)
        self.psi = nn.Conv2d(inter_channels, 1, 1)

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention coefficients in [0, 1] at the skip's resolution, one channel."""
        theta = self.theta_x(x)
        q = self.psi(torch.relu(theta + upsample_to(self.phi_g(g), theta.shape[-2:])))
        return upsample_to(torch.sigmoid(q), x.shape[-2:])

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.coefficients(x, g)


class UNet(nn.Module):
    """U-Net: 4 down, 4 up, concatenated skips; with `attention=True`, the skips are gated (Attention U-Net)."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, base_channels: int = 32, attention: bool = False
    ) -> None:
        super().__init__()
        widths = level_widths(base_channels)
        self.encoder = Encoder(in_channels, widths)
        fine = range(LEVELS - 2, -1, -1)  # levels 3, 2, 1, 0
        self.ups = nn.ModuleList(UpConv(widths[i + 1], widths[i]) for i in fine)
        self.nodes = nn.ModuleList(DoubleConv(2 * widths[i], widths[i]) for i in fine)
        self.gates = (
            nn.ModuleList(AttentionGate(widths[i], widths[i + 1], widths[i] // 2) for i in fine)
            if attention
            else None
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        for k, (up, node) in enumerate(zip(self.ups, self.nodes)):
            skip = feats[LEVELS - 2 - k]
            if self.gates is not None:
                skip = self.gates[k](skip, y)
            y = node(torch.cat([skip, up(y)], dim=1))
        return self.head(y)


class UNetPlusPlus(nn.Module):
    """UNet++: nested, densely connected skip pathways X(i,j) and deep supervision on X(0,1..4).

    Node X(i,j), j >= 1, takes the concatenation of X(i,0..j-1) and the up-convolved
    X(i+1,j-1). Train mode returns (X(0,4) head, X(0,3), X(0,2), X(0,1)) with equal loss
    weights as the paper; eval returns the X(0,4) head (the full, unpruned network).
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3, base_channels: int = 32) -> None:
        super().__init__()
        widths = level_widths(base_channels)
        self.encoder = Encoder(in_channels, widths)
        self.ups = nn.ModuleDict()
        self.nodes = nn.ModuleDict()
        for i, j in self.node_ids():
            self.ups[f"{i}_{j}"] = UpConv(widths[i + 1], widths[i])
            self.nodes[f"{i}_{j}"] = DoubleConv((j + 1) * widths[i], widths[i])
        self.heads = nn.ModuleList(nn.Conv2d(widths[0], num_classes, 1) for _ in range(LEVELS - 1))

    @staticmethod
    def node_ids() -> list[tuple[int, int]]:
        """Decoder nodes (i, j) with j >= 1 and i + j <= 4, column by column."""
        return [(i, j) for j in range(1, LEVELS) for i in range(LEVELS - j)]

    def forward(self, x: torch.Tensor):
        grid: dict[tuple[int, int], torch.Tensor] = {(i, 0): f for i, f in enumerate(self.encoder(x))}
        for i, j in self.node_ids():
            key = f"{i}_{j}"
            same_level = [grid[(i, k)] for k in range(j)]
            grid[(i, j)] = self.nodes[key](torch.cat([*same_level, self.ups[key](grid[(i + 1, j - 1)])], dim=1))
        finals = [grid[(0, j)] for j in range(LEVELS - 1, 0, -1)]  # X(0,4), X(0,3), X(0,2), X(0,1)
        if not self.training:
            return self.heads[0](finals[0])
        return tuple(head(f) for head, f in zip(self.heads, finals))


@register_model(
    "unet",
    family="unet",
    paper_name="U-Net",
    reference=UNET_REFERENCE,
    notes=WIDTH_NOTE + "; padded convs and BN",
    input_multiple=16,
)
def unet(num_classes: int = 2, in_channels: int = 3, base_channels: int = 32) -> UNet:
    """U-Net (7.76M params at width 32; Table 4: 8.43M)."""
    return UNet(num_classes, in_channels, base_channels)


@register_model(
    "attention-unet",
    family="unet",
    paper_name="Attention U-Net",
    reference=ATTENTION_REFERENCE,
    notes=WIDTH_NOTE + "; additive attention gates on the four skips; no deep supervision",
    input_multiple=16,
)
def attention_unet(num_classes: int = 2, in_channels: int = 3, base_channels: int = 32) -> UNet:
    """U-Net with an attention gate on each skip, gated by the next coarser decoder feature."""
    return UNet(num_classes, in_channels, base_channels, attention=True)


@register_model(
    "unetplusplus",
    family="unet",
    paper_name="UNet++",
    reference=UNETPP_REFERENCE,
    aux_weights=(1.0, 1.0, 1.0, 1.0),
    notes=WIDTH_NOTE + "; deep supervision on X(0,1..4), equal weights; eval uses the X(0,4) head",
    input_multiple=16,
)
def unetplusplus(num_classes: int = 2, in_channels: int = 3, base_channels: int = 32) -> UNetPlusPlus:
    """UNet++ with deep supervision (train returns four heads)."""
    return UNetPlusPlus(num_classes, in_channels, base_channels)
