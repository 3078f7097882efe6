"""MALUNet (Ruan et al., IEEE BIBM 2022): a six-stage, 8..64-channel U-shape with four attention modules.

Written from the paper; layer sizes from the authors' release (JCruan519/MALUNet, `models/malunet.py`).
Widths C = (8, 16, 24, 32, 48, 64). Encoder stages 1-3: 3x3 conv -> GroupNorm(4) -> 2x2 max-pool ->
GELU; stages 4-5: IEA -> DGA -> GroupNorm -> max-pool -> GELU; stage 6 (no pool): IEA -> DGA -> GELU.
The decoder mirrors it (DGA -> IEA in stages 1-3, 3x3 convs after) with GroupNorm, bilinear x2
(align_corners=True) and GELU, adding the skips. The five skips pass the SC attention bridge first:
SAB (one shared dilated 7x7 conv on [mean, max] over channels) then CAB (pooled features of all
stages -> 1D conv -> one linear per stage).

- DGA (dilated gated attention): the channels in four groups, depthwise 3x3 convs with dilations
  7, 5, 2, 1, GroupNorm, 1x1 conv, GELU, then a gated attention unit.
- IEA (inverted external attention): two 1x1 "memory" units that expand to 4C and back, softmax
  over positions and normalisation over the memory slots, a residual and GELU.

`GNStage`, `conv3x3`, `group_norm` and `resize_bilinear` are shared with EGE-UNet (same authors, same skeleton).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import resize_to
from ._registry import register_model

CHANNELS = (8, 16, 24, 32, 48, 64)
DGA_DILATIONS = (7, 5, 2, 1)
IEA_EXPANSION = 4
REFERENCE = (
    "Ruan, Xiang, Xie, Liu & Fu, MALUNet: A Multi-Attention and Light-weight UNet for Skin Lesion "
    "Segmentation, IEEE BIBM 2022"
)
#: The paper's configuration: binary masks (one sigmoid output), RGB input, 256x256 (ISIC 2017/2018).
PAPER_BUILD = {"num_classes": 1, "in_channels": 3}


def resize_bilinear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True (the release's x2 upsampling), a no-op at the same size."""
    return resize_to(x, size, mode="bilinear", align_corners=True)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 4 groups: the normalisation of every MALUNet/EGE-UNet stage."""
    return nn.GroupNorm(4, channels)


class GNStage(nn.Module):
    """`body` -> GroupNorm -> (2x2 max-pool) -> GELU: an encoder stage of the MALUNet/EGE-UNet skeleton."""

    def __init__(self, body: nn.Module, channels: int, pool: bool = True, norm: bool = True) -> None:
        super().__init__()
        self.body = body
        self.norm = group_norm(channels) if norm else nn.Identity()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.body(x))
        return F.gelu(F.max_pool2d(x, 2) if self.pool else x)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """Plain 3x3 conv with bias: the first three encoder stages and last two decoder stages."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class SeparableGN(nn.Sequential):
    """Depthwise k x k conv -> GroupNorm(4) -> 1x1 conv (the release's DepthWiseConv2d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, kernel_size, padding=kernel_size // 2, groups=in_channels),
            group_norm(in_channels),
            nn.Conv2d(in_channels, out_channels, 1),
        )


class GatedAttentionUnit(nn.Module):
    """out = GELU(sep3x3(sigmoid(sep3x3(x)) * GELU(sep5x5(x)))) + 1x1(x)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.gate = SeparableGN(in_channels, in_channels, kernel_size)
        self.value = SeparableGN(in_channels, in_channels, kernel_size + 2)
        self.out = SeparableGN(in_channels, out_channels, kernel_size)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gated = torch.sigmoid(self.gate(x)) * F.gelu(self.value(x))
        return F.gelu(self.out(gated)) + self.shortcut(x)


class DilatedGatedAttention(nn.Module):
    """DGA: four channel groups through depthwise 3x3 convs of dilations 7, 5, 2, 1 -> GN -> 1x1 -> GELU -> GAU."""

    def __init__(self, in_channels: int, out_channels: int, dilations: Sequence[int] = DGA_DILATIONS) -> None:
        super().__init__()
        if in_channels % len(dilations):
            raise ValueError(f"DGA: {in_channels} channels do not split into {len(dilations)} groups")
        group = in_channels // len(dilations)
        self.branches = nn.ModuleList(
            nn.Conv2d(group, group, 3, padding=d, dilation=d, groups=group) for d in dilations
        )
        self.norm = group_norm(in_channels)
        self.mix = nn.Conv2d(in_channels, in_channels, 1)
        self.gau = GatedAttentionUnit(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.chunk(x, len(self.branches), dim=1)
        x = torch.cat([branch(g) for branch, g in zip(self.branches, groups)], dim=1)
        return self.gau(F.gelu(self.mix(self.norm(x))))


class InvertedExternalAttention(nn.Module):
    """IEA: 1x1 conv, memory units M_k (C -> 4C) and M_v (4C -> C) over positions, GN, residual, GELU.

    The attention is softmax over positions, then normalised over the 4C memory slots. M_v starts
    as M_k transposed; the release ties their storage by assignment, we keep two tensors (same count).
    """

    def __init__(self, channels: int, expansion: int = IEA_EXPANSION) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.memory_key = nn.Conv1d(channels, channels * expansion, 1, bias=False)
        self.memory_value = nn.Conv1d(channels * expansion, channels, 1, bias=False)
        with torch.no_grad():
            self.memory_value.weight.copy_(self.memory_key.weight.permute(1, 0, 2))
        self.out = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = group_norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        attn = torch.softmax(self.memory_key(self.proj(x).flatten(2)), dim=-1)
        attn = attn / (1e-9 + attn.sum(dim=1, keepdim=True))
        y = self.memory_value(attn).view(n, c, h, w)
        return F.gelu(self.norm(self.out(y)) + x)


class ChannelAttentionBridge(nn.Module):
    """CAB: pooled features of all stages, concatenated -> 1D conv (k=3) -> one linear per stage -> sigmoid."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.mix = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        self.heads = nn.ModuleList(nn.Linear(sum(channels), c) for c in channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        pooled = torch.cat([f.mean(dim=(2, 3)) for f in feats], dim=1)  # (N, sum C)
        mixed = self.mix(pooled.unsqueeze(1)).squeeze(1)
        return [torch.sigmoid(head(mixed))[:, :, None, None] for head in self.heads]


class SpatialAttentionBridge(nn.Module):
    """SAB: one shared 7x7 conv (dilation 3) on [channel mean, channel max] of each stage -> sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=9, dilation=3)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [
            torch.sigmoid(self.conv(torch.cat([f.mean(1, keepdim=True), f.amax(1, keepdim=True)], dim=1)))
            for f in feats
        ]


class SCAttentionBridge(nn.Module):
    """SAB then CAB over the five skips, each with a residual: t' = t * s + t, out = t' * c + t * s."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.spatial = SpatialAttentionBridge()
        self.channel = ChannelAttentionBridge(channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        spatial = [f * a for f, a in zip(feats, self.spatial(feats))]
        mixed = [s + f for s, f in zip(spatial, feats)]
        return [m * a + s for m, a, s in zip(mixed, self.channel(mixed), spatial)]


class MALUNet(nn.Module):
    """MALUNet: plain conv stages 1-3, IEA + DGA stages 4-6, SC attention bridge on the skips."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, channels: Sequence[int] = CHANNELS, bridge: bool = True
    ) -> None:
        super().__init__()
        c = tuple(channels)
        if len(c) != 6:
            raise ValueError(f"MALUNet: channels must hold 6 stage widths, got {c}")
        ins = (in_channels, *c[:-1])
        self.encoder = nn.ModuleList(
            [GNStage(conv3x3(ins[i], c[i]), c[i]) for i in range(3)]
            + [GNStage(nn.Sequential(InvertedExternalAttention(ins[i]), DilatedGatedAttention(ins[i], c[i])), c[i])
               for i in (3, 4)]
        )
        self.bottom = GNStage(
            nn.Sequential(InvertedExternalAttention(c[4]), DilatedGatedAttention(c[4], c[5])), c[5], pool=False,
            norm=False,
        )
        self.bridge = SCAttentionBridge(c[:5]) if bridge else None
        self.decoder = nn.ModuleList(
            [nn.Sequential(DilatedGatedAttention(c[i + 1], c[i]), InvertedExternalAttention(c[i])) for i in (4, 3, 2)]
            + [conv3x3(c[i + 1], c[i]) for i in (1, 0)]
        )
        self.decoder_norms = nn.ModuleList(group_norm(c[i]) for i in (4, 3, 2, 1, 0))
        self.head = nn.Conv2d(c[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        if self.bridge is not None:
            skips = self.bridge(skips)
        x = self.bottom(x)
        for block, norm, skip in zip(self.decoder, self.decoder_norms, reversed(skips)):
            x = F.gelu(resize_bilinear(norm(block(x)), skip.shape[-2:])) + skip
        return resize_bilinear(self.head(x), size)


@register_model(
    "malunet",
    family="post2021",
    reference=REFERENCE,
    notes=(
        "paper (comparison table, ISIC 2018, 256x256): 0.175M params, 0.083 GFLOPs (figures not re-read from the "
        "PDF here; they fit the abstract's 44x/166x reduction from its UNet; EGE-UNet's paper lists MALUNet at "
        "0.177M/0.085). Paper config = create_model('malunet', num_classes=1): 177,943 params (the release's count "
        "exactly), 0.083 GMACs by torch's counter (conv/linear only), 0.090 fvcore GMACs at 1x3x256x256: the "
        "paper's GFLOPs are MACs. Forward checked equal to the release's MALUNet (M_v is a separate tensor here, "
        "storage-tied to M_k there). At 2 classes, 512x512: +9 params (head), 0.36 GMACs. No deep supervision."
    ),
    min_input_size=32,
    input_multiple=32,
    reported_params=175_000,
    reported_gmacs=0.083,
    reported_input="256x256",
)
def malunet(num_classes: int = 2, in_channels: int = 3, channels: Sequence[int] = CHANNELS) -> MALUNet:
    """MALUNet (about 0.18M params)."""
    return MALUNet(num_classes, in_channels, channels)
