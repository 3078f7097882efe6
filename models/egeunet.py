"""EGE-UNet (Ruan et al., MICCAI 2023): MALUNet's skeleton with GHPA stages and group aggregation bridges.

Written from the paper; layer sizes from the authors' release (JCruan519/EGE-UNet, `models/egeunet.py`).
Widths C = (8, 16, 24, 32, 48, 64) as MALUNet; stages 1-3 (and the last two decoder stages) are plain
3x3 convs, stages 4-6 and decoder stages 1-3 are GHPA modules.

- GHPA (group multi-axis Hadamard product attention): LayerNorm, then the channels in four groups:
  group 1 times a learnable (C/4, 8, 8) map over (H, W), group 2 times a (C/4, 8) map over (C, H),
  group 3 times a (C/4, 8) map over (C, W) - each map resized to the feature size and passed through
  depthwise conv -> GELU -> 1x1 conv - and group 4 through 1x1 -> GELU -> depthwise 3x3; then
  LayerNorm -> depthwise 3x3 -> GELU -> 1x1.
- GAB (group aggregation bridge): the deeper feature (1x1 projected, resized) and the skip, each in
  four groups, each pair concatenated with the decoder's mask prediction -> LayerNorm -> depthwise 3x3
  of dilation 1, 2, 5, 7; the four results -> LayerNorm -> 1x1 conv.
- Deep supervision: a 1x1 mask head on each of the five decoder stages; its prediction feeds that
  stage's GAB and is supervised (the release's loss weights 0.5, 0.4, 0.3, 0.2, 0.1 from fine to coarse).

Classes: the release predicts one sigmoid channel and its GABs take that one mask channel. Here the
mask heads predict `num_classes` channels (the contract's aux logits) and the GABs take all of them,
which is the release exactly at `num_classes=1`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LayerNorm2d
from .malunet import CHANNELS, GNStage, conv3x3, group_norm, resize_bilinear
from ._registry import register_model

GAB_DILATIONS = (1, 2, 5, 7)
HPA_GRID = 8
#: Loss weights: main output, then the mask heads from the finest (1/2) to the coarsest (1/32).
AUX_WEIGHTS = (1.0, 0.5, 0.4, 0.3, 0.2, 0.1)
REFERENCE = (
    "Ruan, Xie, Gao, Liu & Fu, EGE-UNet: an Efficient Group Enhanced UNet for Skin Lesion Segmentation, "
    "MICCAI 2023"
)
#: The paper's configuration: binary masks (one sigmoid output), RGB input, 256x256 (ISIC 2017/2018).
PAPER_BUILD = {"num_classes": 1, "in_channels": 3}


def depthwise3x3(channels: int, dilation: int = 1) -> nn.Conv2d:
    """Depthwise 3x3 conv with bias; `dilation` keeps the size."""
    return nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels)


def axis_mixer(channels: int, conv: type[nn.Module]) -> nn.Sequential:
    """Depthwise k=3 conv -> GELU -> 1x1 conv, in 2D (Conv2d) or along one axis (Conv1d)."""
    return nn.Sequential(
        conv(channels, channels, 3, padding=1, groups=channels), nn.GELU(), conv(channels, channels, 1)
    )


class GHPA(nn.Module):
    """Group multi-axis Hadamard product attention (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, grid: int = HPA_GRID) -> None:
        super().__init__()
        if in_channels % 4:
            raise ValueError(f"GHPA: {in_channels} channels do not split into 4 groups")
        c = in_channels // 4
        self.params_hw = nn.Parameter(torch.ones(1, c, grid, grid))
        self.params_ch = nn.Parameter(torch.ones(1, c, grid))
        self.params_cw = nn.Parameter(torch.ones(1, c, grid))
        self.mix_hw = axis_mixer(c, nn.Conv2d)
        self.mix_ch = axis_mixer(c, nn.Conv1d)
        self.mix_cw = axis_mixer(c, nn.Conv1d)
        self.local = nn.Sequential(nn.Conv2d(c, c, 1), nn.GELU(), depthwise3x3(c))
        self.norm_in = LayerNorm2d(in_channels)
        self.norm_out = LayerNorm2d(in_channels)
        self.out = nn.Sequential(depthwise3x3(in_channels), nn.GELU(), nn.Conv2d(in_channels, out_channels, 1))

    def attention_maps(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three Hadamard weights, shaped to broadcast over (N, C/4, H, W)."""
        hw = self.mix_hw(resize_bilinear(self.params_hw, (height, width)))
        ch = self.mix_ch(F.interpolate(self.params_ch, size=height, mode="linear", align_corners=True))
        cw = self.mix_cw(F.interpolate(self.params_cw, size=width, mode="linear", align_corners=True))
        return hw, ch.unsqueeze(-1), cw.unsqueeze(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2, x3, x4 = torch.chunk(self.norm_in(x), 4, dim=1)
        hw, ch, cw = self.attention_maps(*x.shape[-2:])
        x = torch.cat([x1 * hw, x2 * ch, x3 * cw, self.local(x4)], dim=1)
        return self.out(self.norm_out(x))


class GroupAggregationBridge(nn.Module):
    """GAB: fuse the deeper feature, the skip and the mask prediction in four dilated groups."""

    def __init__(
        self, deep_channels: int, skip_channels: int, mask_channels: int = 1, dilations: Sequence[int] = GAB_DILATIONS
    ) -> None:
        super().__init__()
        if skip_channels % 4:
            raise ValueError(f"GAB: {skip_channels} skip channels do not split into 4 groups")
        group = skip_channels // 2 + mask_channels
        self.project = nn.Conv2d(deep_channels, skip_channels, 1)
        self.groups = nn.ModuleList(nn.Sequential(LayerNorm2d(group), depthwise3x3(group, d)) for d in dilations)
        fused = group * len(dilations)
        self.tail = nn.Sequential(LayerNorm2d(fused), nn.Conv2d(fused, skip_channels, 1))

    def forward(self, deep: torch.Tensor, skip: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        deep = torch.chunk(resize_bilinear(self.project(deep), skip.shape[-2:]), 4, dim=1)
        skip = torch.chunk(skip, 4, dim=1)
        return self.tail(torch.cat([g(torch.cat([h, s, mask], 1)) for g, h, s in zip(self.groups, deep, skip)], 1))


class EGEUNet(nn.Module):
    """EGE-UNet; train mode returns (main, mask heads fine to coarse), all at the input size."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, channels: Sequence[int] = CHANNELS) -> None:
        super().__init__()
        c = tuple(channels)
        if len(c) != 6:
            raise ValueError(f"EGE-UNet: channels must hold 6 stage widths, got {c}")
        ins = (in_channels, *c[:-1])
        self.encoder = nn.ModuleList(
            [GNStage(conv3x3(ins[i], c[i]), c[i]) for i in range(3)]
            + [GNStage(GHPA(ins[i], c[i]), c[i]) for i in (3, 4)]
        )
        self.bottom = GNStage(GHPA(c[4], c[5]), c[5], pool=False, norm=False)
        self.bridges = nn.ModuleList(GroupAggregationBridge(c[i + 1], c[i], num_classes) for i in (4, 3, 2, 1, 0))
        self.mask_heads = nn.ModuleList(nn.Conv2d(c[i], num_classes, 1) for i in (4, 3, 2, 1, 0))
        self.decoder = nn.ModuleList(
            [GHPA(c[i + 1], c[i]) for i in (4, 3, 2)] + [conv3x3(c[i + 1], c[i]) for i in (1, 0)]
        )
        self.decoder_norms = nn.ModuleList(group_norm(c[i]) for i in (4, 3, 2, 1, 0))
        self.head = nn.Conv2d(c[0], num_classes, 1)

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        deep = x = self.bottom(x)
        masks = []
        stages = zip(self.decoder, self.decoder_norms, self.mask_heads, self.bridges, reversed(skips))
        for block, norm, mask_head, bridge, skip in stages:
            x = F.gelu(resize_bilinear(norm(block(x)), skip.shape[-2:]))
            mask = mask_head(x)
            deep = bridge(deep, skip, mask)
            x = x + deep
            masks.append(mask)
        main = resize_bilinear(self.head(x), size)
        if not self.training:
            return main
        return (main, *(resize_bilinear(m, size) for m in reversed(masks)))


@register_model(
    "egeunet",
    family="post2021",
    reference=REFERENCE,
    aux_weights=AUX_WEIGHTS,
    notes=(
        "paper (Table 1, ISIC 2017/2018, 256x256): 0.053M params ('50KB'), 0.072 GFLOPs, consistent with the "
        "abstract's 494x/160x reduction from TransFuse. Paper config = create_model('egeunet', num_classes=1): "
        "53,374 params (the release's count exactly), 0.072 GMACs by torch's counter, 0.079 fvcore GMACs at "
        "1x3x256x256: the paper's GFLOPs are MACs. Forward checked equal to the release's EGEUNet. Deep "
        "supervision: train mode returns (main, 5 mask heads fine to coarse) with the release's loss weights "
        "1, 0.5, 0.4, 0.3, 0.2, 0.1 (its loss is BCE+Dice per output; ours CE). At 2 classes, 512x512: the mask "
        "heads and GAB groups carry num_classes mask channels (one in the release): 54,308 params, 0.33 GMACs."
    ),
    min_input_size=32,
    input_multiple=32,
    reported_params=53_000,
    reported_gmacs=0.072,
    reported_input="256x256",
)
def egeunet(num_classes: int = 2, in_channels: int = 3, channels: Sequence[int] = CHANNELS) -> EGEUNet:
    """EGE-UNet with deep supervision (train mode returns six outputs)."""
    return EGEUNet(num_classes, in_channels, channels)
