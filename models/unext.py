"""UNeXt (Valanarasu & Patel, MICCAI 2022): three conv stages, then tokenised shifted-MLP stages.

Written from the paper; layer sizes from the authors' release (UNeXt-pytorch, `archs.py`, class
`UNext`). Encoder: three stages of 3x3 conv -> BN -> 2x2 max-pool -> ReLU, then two tokenised MLP
stages, each an overlapping patch embedding (3x3 conv, stride 2, LayerNorm), one tokenised MLP block
and a LayerNorm. Decoder: 3x3 conv -> BN -> bilinear x2 -> ReLU, plus the skip (added, not
concatenated); the two deepest decoder stages also run a tokenised MLP block. The block is
x + ShiftedMLP(LN(x)): shift channel groups along H -> linear -> 3x3 depthwise conv -> GELU -> shift
along W -> linear (hidden width = width, the release's mlp_ratio=1).

Widths: the paper's text says C1..C5 = 32, 64, 128, 160, 256, but its 1.47M parameters are the
release's 16, 32, 128, 160, 256, which we build (`widths=(32, 64, 128, 160, 256)` gives 1.58M params
and 1.20 GMACs at 256x256).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import upsample_to
from ._registry import register_model

WIDTHS = (16, 32, 128, 160, 256)
SHIFT_GROUPS = 5
REFERENCE = "Valanarasu & Patel, UNeXt: MLP-based Rapid Medical Image Segmentation Network, MICCAI 2022"
#: The paper's configuration: binary masks (one sigmoid output), RGB input, 256x256 (ISIC 2018, BUSI).
PAPER_BUILD = {"num_classes": 1, "in_channels": 3}


def translate(x: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """Move `x` by `shift` positions along `dim`, filling the vacated positions with zeros."""
    size = x.shape[dim]
    step = min(abs(shift), size)
    if step == 0:
        return x
    zeros = x.new_zeros(*x.shape[:dim], step, *x.shape[dim + 1 :])
    if shift > 0:
        return torch.cat([zeros, x.narrow(dim, 0, size - step)], dim)
    return torch.cat([x.narrow(dim, step, size - step), zeros], dim)


def shift_channel_groups(x: torch.Tensor, dim: int, groups: int = SHIFT_GROUPS) -> torch.Tensor:
    """UNeXt's axial shift on channels-last maps: channel group i moves by i - groups // 2 along `dim`."""
    first = -(groups // 2)
    chunks = torch.chunk(x, groups, dim=-1)
    return torch.cat([translate(c, first + i, dim) for i, c in enumerate(chunks)], dim=-1)


class ShiftedMLP(nn.Module):
    """Shift along H -> linear -> 3x3 depthwise conv -> GELU -> shift along W -> linear, on (N, H, W, C)."""

    def __init__(self, dim: int, groups: int = SHIFT_GROUPS) -> None:
        super().__init__()
        self.groups = groups
        self.fc1 = nn.Linear(dim, dim)
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(shift_channel_groups(x, 1, self.groups))
        x = self.act(self.dwconv(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        return self.fc2(shift_channel_groups(x, 2, self.groups))


class TokenisedMLPBlock(nn.Module):
    """x + ShiftedMLP(LayerNorm(x)) over channels-last tokens (N, H, W, C)."""

    def __init__(self, dim: int, groups: int = SHIFT_GROUPS) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = ShiftedMLP(dim, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


def tokens_in_and_out(block: nn.Module, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a tokenised block and its LayerNorm on an (N, C, H, W) map, returning (N, C, H, W)."""
    return norm(block(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)


class ConvDown(nn.Module):
    """3x3 conv -> BN -> 2x2 max-pool -> ReLU: one of the three convolutional encoder stages."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.max_pool2d(self.bn(self.conv(x)), 2))


class TokenisedDown(nn.Module):
    """Overlapping patch embedding (3x3 conv, stride 2, LayerNorm), a tokenised MLP block, LayerNorm."""

    def __init__(self, in_channels: int, dim: int, groups: int = SHIFT_GROUPS) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_channels, dim, 3, stride=2, padding=1)
        self.embed_norm = nn.LayerNorm(dim)
        self.block = TokenisedMLPBlock(dim, groups)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed_norm(self.embed(x).permute(0, 2, 3, 1))
        return self.norm(self.block(tokens)).permute(0, 3, 1, 2)


class UpStage(nn.Module):
    """3x3 conv (-> BN) -> bilinear up to the skip's size -> ReLU, plus the skip; in the MLP stages
    a tokenised block and a LayerNorm follow."""

    def __init__(
        self, in_channels: int, out_channels: int, bn: bool = True, tokens: bool = False, groups: int = SHIFT_GROUPS
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels) if bn else nn.Identity()
        self.block = TokenisedMLPBlock(out_channels, groups) if tokens else None
        self.norm = nn.LayerNorm(out_channels) if tokens else None

    def forward(self, x: torch.Tensor, size: Sequence[int], skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.relu(upsample_to(self.bn(self.conv(x)), size))
        if skip is not None:
            x = x + skip
        if self.block is not None:
            x = tokens_in_and_out(self.block, self.norm, x)
        return x


class UNeXt(nn.Module):
    """UNeXt: conv stages at 1/2..1/8, shifted-MLP stages at 1/16 and 1/32, additive skips."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, widths: Sequence[int] = WIDTHS, groups: int = SHIFT_GROUPS
    ) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"UNeXt: widths must hold 5 stage widths (C1..C5), got {tuple(widths)}")
        c1, c2, c3, c4, c5 = widths
        self.conv_stages = nn.ModuleList([ConvDown(in_channels, c1), ConvDown(c1, c2), ConvDown(c2, c3)])
        self.token_stages = nn.ModuleList([TokenisedDown(c3, c4, groups), TokenisedDown(c4, c5, groups)])
        self.up_stages = nn.ModuleList([
            UpStage(c5, c4, tokens=True, groups=groups),
            UpStage(c4, c3, tokens=True, groups=groups),
            UpStage(c3, c2),
            UpStage(c2, c1),
            UpStage(c1, c1, bn=False),
        ])
        self.head = nn.Conv2d(c1, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = []
        for stage in [*self.conv_stages, *self.token_stages]:
            x = stage(x)
            skips.append(x)
        skips.pop()  # the bottleneck itself
        for stage in self.up_stages:
            skip = skips.pop() if skips else None
            x = stage(x, skip.shape[-2:] if skip is not None else size, skip)
        return self.head(x)


@register_model(
    "unext",
    family="post2021",
    reference=REFERENCE,
    notes=(
        "paper (Table 1, ISIC 2018, 256x256): 1.47M params, 0.57 GFLOPs. Paper config = "
        "create_model('unext', num_classes=1): 1,471,921 params (the release's count exactly), 0.58 fvcore GMACs "
        "(torch counter 0.56) at 1x3x256x256, so the paper's GFLOPs are MACs. Widths are the release's "
        "16,32,128,160,256 (the paper's text says C1=32, C2=64; those give 1.58M). Forward checked equal to the "
        "release's UNext. At 2 classes, 512x512: +17 params (head), 2.31 GMACs. No deep supervision."
    ),
    min_input_size=32,
    input_multiple=32,
    reported_params=1_470_000,
    reported_gmacs=0.57,
    reported_input="256x256",
)
def unext(num_classes: int = 2, in_channels: int = 3, widths: Sequence[int] = WIDTHS) -> UNeXt:
    """UNeXt (1.47M params at one output class)."""
    return UNeXt(num_classes, in_channels, widths)
