"""MiniSeg (Qiu et al., AAAI 2021), written from the paper and PROTOCOL.md.

Module names match the authors' released state_dict, so their weights load with
`strict=True`. Channels C = (8, 24, 32, 64), blocks P = (2, 3, 8, 6), long-path blocks
D = P // 2. Train mode returns (pred1, pred2, pred3, pred4); eval mode returns pred1.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import upsample_to
from .registry import register_model

CHANNELS = (8, 24, 32, 64)
BLOCKS = (2, 3, 8, 6)
AUX_HEADS = ("pred2", "pred3", "pred4")


class ConvBlock(nn.Module):
    """3x3 conv -> BN -> PReLU (stage 1's short path)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DownsamplerBlock(nn.Module):
    """1x1 conv -> depthwise 5x5 (stride) -> BN -> PReLU (the long path)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.conv1 = nn.Conv2d(out_ch, out_ch, 5, stride, 2, groups=out_ch, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv1(self.conv0(x))))


class AHSPBlock(nn.Module):
    """Attentive hierarchical spatial pyramid: dilations 1/2/4/8 fused hierarchically with attention."""

    DILATIONS = (1, 2, 4, 8)

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        branches = len(self.DILATIONS)
        inner = out_ch // branches
        self.conv1x1_down = nn.Conv2d(in_ch, inner, 1, bias=False)
        for i, d in enumerate(self.DILATIONS, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(inner, inner, 3, stride, d, d, groups=inner, bias=False))
        self.pool = nn.AvgPool2d(3, stride, 1)
        self.attention = nn.Conv2d(out_ch, branches, 1, groups=branches, bias=False)
        self.conv1x1_fuse = nn.Conv2d(out_ch, out_ch, 1, groups=branches, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1x1_down(x)
        level = self.pool(reduced)
        branches = []
        for i in range(1, len(self.DILATIONS) + 1):
            level = getattr(self, f"conv{i}")(reduced) + level
            branches.append(level)
        attention = torch.sigmoid(self.attention(torch.cat(branches, 1)))
        weighted = [b + b * attention[:, i : i + 1] for i, b in enumerate(branches)]
        return self.act(self.bn(self.conv1x1_fuse(torch.cat(weighted, 1))))


class DecoderBlock(nn.Module):
    """1x1 conv, then the sum of two depthwise 3x3 convs (dilation 1 and 2) -> BN."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.conv1 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, 1, groups=out_ch, bias=False)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 2, 2, groups=out_ch, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv0(x)
        return self.bn(self.conv1(x) + self.conv2(x))


def _head(in_ch: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Dropout2d(0.01), nn.Conv2d(in_ch, num_classes, 1))


class MiniSeg(nn.Module):
    """The released MiniSeg. `aux=False` builds the inference model without pred2..pred4."""

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        channels: Sequence[int] = CHANNELS,
        blocks: Sequence[int] = BLOCKS,
        aux: bool = True,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.depths = tuple(blocks)
        self.long_depths = tuple(p // 2 for p in blocks)
        self.aux = aux
        # Stage 1: conv blocks on the short path, downsamplers on the long path.
        self.long1 = DownsamplerBlock(in_channels, c1, 2)
        self.down1 = ConvBlock(in_channels, c1, 2)
        self.level1 = nn.ModuleList(ConvBlock(c1, c1) for _ in range(blocks[0]))
        self.level1_long = nn.ModuleList(DownsamplerBlock(c1, c1) for _ in range(self.long_depths[0]))
        self.cat1 = self._cat(c1)
        # Stages 2-4: AHSP blocks on the short path.
        for s, (cin, cout) in enumerate(zip(channels[:-1], channels[1:]), start=2):
            setattr(self, f"long{s}", DownsamplerBlock(cin, cout, 2))
            setattr(self, f"down{s}", AHSPBlock(cin, cout, 2))
            setattr(self, f"level{s}", nn.ModuleList(AHSPBlock(cout, cout) for _ in range(blocks[s - 1])))
            setattr(
                self,
                f"level{s}_long",
                nn.ModuleList(DownsamplerBlock(cout, cout) for _ in range(self.long_depths[s - 1])),
            )
            if s < 4:
                setattr(self, f"cat{s}", self._cat(cout))
        # Decoder.
        self.up4_conv4 = nn.Conv2d(c4, c4, 1)
        self.up4_bn4 = nn.BatchNorm2d(c4)
        self.up4_act = nn.PReLU(c4)
        for s, (cin, cout) in zip((3, 2, 1), ((c4, c3), (c3, c2), (c2, c1))):
            setattr(self, f"up{s}_conv{s + 1}", DecoderBlock(cin, cout))
            setattr(self, f"up{s}_conv{s}", nn.Conv2d(cout, cout, 1))
            setattr(self, f"up{s}_bn{s}", nn.BatchNorm2d(cout))
            setattr(self, f"up{s}_act", nn.PReLU(cout))
        if aux:
            self.pred4 = _head(c4, num_classes)
            self.pred3 = _head(c3, num_classes)
            self.pred2 = _head(c2, num_classes)
        self.pred1 = _head(c1, num_classes)

    @staticmethod
    def _cat(channels: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(2 * channels, 2 * channels, 1, bias=False), nn.BatchNorm2d(2 * channels))

    def _run_stage(self, s: int, out: torch.Tensor, long: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The dual-path loop of one stage: both paths read `out + long` of the previous block."""
        merged = out + long
        level, level_long = getattr(self, f"level{s}"), getattr(self, f"level{s}_long")
        for i, block in enumerate(level):
            new_out = block(merged) + out
            if i < len(level_long):
                long = level_long[i](merged) + long
            out = new_out
            merged = out + long
        return out, long

    def _split(self, s: int, out: torch.Tensor, long: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fused = getattr(self, f"cat{s}")(torch.cat([long, out], 1))
        return fused.chunk(2, dim=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Short-path outputs of the four stages (strides 2, 4, 8, 16)."""
        out, long = self._run_stage(1, self.down1(x), self.long1(x))
        feats = [out]
        for s in (2, 3, 4):
            left, right = self._split(s - 1, out, long)
            long = getattr(self, f"long{s}")(left + long)
            out = getattr(self, f"down{s}")(right + out)
            out, long = self._run_stage(s, out, long)
            feats.append(out)
        return feats

    def decode(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Top-down decoder; returns [u1, u2, u3, u4], each u_k at stride of level k-1 (u1 at stride 2)."""
        out1, out2, out3, out4 = feats
        u4 = upsample_to(self.up4_act(self.up4_bn4(self.up4_conv4(out4))), out3.shape[-2:])
        ups = [u4]
        previous = u4
        for s, lateral, target in ((3, out3, out2), (2, out2, out1), (1, out1, None)):
            fused = getattr(self, f"up{s}_conv{s + 1}")(previous) + getattr(self, f"up{s}_bn{s}")(
                getattr(self, f"up{s}_conv{s}")(lateral)
            )
            previous = getattr(self, f"up{s}_act")(fused)
            if target is not None:
                previous = upsample_to(previous, target.shape[-2:])
            ups.insert(0, previous)
        return ups

    def forward(self, x: torch.Tensor):
        ups = self.decode(self.encode(x))
        size = x.shape[-2:]
        main = upsample_to(self.pred1(ups[0]), size)
        if not (self.training and self.aux):
            return main
        aux = [upsample_to(getattr(self, f"pred{k}")(ups[k - 1]), size) for k in (2, 3, 4)]
        return (main, *aux)


def strip_aux_heads(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the auxiliary heads' keys so a released file loads into `MiniSeg(aux=False)`."""
    return {k: v for k, v in state_dict.items() if not k.startswith(tuple(h + "." for h in AUX_HEADS))}


@register_model(
    "miniseg",
    family="miniseg",
    paper_name="MiniSeg",
    aux_weights=(1.0, 0.4, 0.4, 0.4),
    reference="Qiu et al., MiniSeg: An Extremely Minimum Network for Efficient COVID-19 Segmentation, AAAI 2021",
    notes="the authors' released model; loads their Pretrained/*.pth with strict=True",
    input_multiple=16,
)
def miniseg(num_classes: int = 2, in_channels: int = 3, aux: bool = True) -> MiniSeg:
    """The released MiniSeg (82,912 params with aux heads, 82,666 without)."""
    return MiniSeg(num_classes=num_classes, in_channels=in_channels, aux=aux)
