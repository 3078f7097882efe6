"""MiniSeg (Qiu et al., AAAI 2021), written from the paper and PROTOCOL.md.

Module names match the authors' released state_dict, so their weights load with
`strict=True`. Channels C = (8, 24, 32, 64), blocks P = (2, 3, 8, 6), long-path blocks
D = P // 2. Train mode returns (pred1, pred2, pred3, pred4); eval mode returns pred1.

`MiniSegDecoder` holds the decoder and the prediction heads under their released names;
`MiniSeg` adds its two-path encoder to it. (The paper's ImageNet-backbone rows use the
release's own backbone-width decoder instead: `models/light_backbones.py`.)
The builder options of `MiniSeg` rebuild the authors' 26 ablation files (release
`full_code/models/MiniSeg_Ablation/`); their catalogue is `models/miniseg_ablations.py`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import upsample_to
from ._registry import register_model

CHANNELS = (8, 24, 32, 64)
BLOCKS = (2, 3, 8, 6)
AUX_HEADS = ("pred2", "pred3", "pred4")
AUX_WEIGHTS = (1.0, 0.4, 0.4, 0.4)
REFERENCE = "Qiu et al., MiniSeg: An Extremely Minimum Network for Efficient COVID-19 Segmentation, AAAI 2021"
ACTIVATIONS = ("prelu", "relu")
SHORT_BLOCKS = ("separable", "pyramid", "ahsp")


def make_act(kind: str, channels: int) -> nn.Module:
    """MiniSeg's activation: PReLU with one slope per channel (released), or ReLU (Table 3 ablation)."""
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {kind!r}; expected one of {ACTIVATIONS}")


class ConvBlock(nn.Module):
    """3x3 conv -> BN -> PReLU (stage 1's short path)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, act: str = "prelu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = make_act(act, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DownsamplerBlock(nn.Module):
    """1x1 conv -> depthwise k x k (stride; k = 5 released) -> BN -> PReLU (the long path)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, kernel_size: int = 5, act: str = "prelu") -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.conv1 = nn.Conv2d(out_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=out_ch, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = make_act(act, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv1(self.conv0(x))))


class AHSPBlock(nn.Module):
    """Attentive hierarchical spatial pyramid: depthwise branches at `dilations`, fused hierarchically with attention.

    1x1 reduce to out/K (K = number of branches) -> K depthwise 3x3 (stride, dilation d) ->
    cumulative sums seeded by a 3x3 average pool -> x + x * sigmoid(attention) per branch ->
    concat -> grouped 1x1 fuse (K groups) -> BN -> act. The released block has K = 4, dilations
    1/2/4/8. With K > 4 branches 4..K-1 share attention map 3, as the release's K = 8 file does.
    `hierarchical=False, attention=False` gives Table 2's plain multi-branch dilated pyramid
    (branches concatenated and fused, no pooled level, no cumulative sums, no attention).
    """

    DILATIONS = (1, 2, 4, 8)

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        act: str = "prelu",
        hierarchical: bool = True,
        attention: bool = True,
        dilations: Sequence[int] = DILATIONS,
    ) -> None:
        super().__init__()
        branches = len(dilations)
        if branches < 1 or out_ch % branches:
            raise ValueError(f"AHSPBlock: {out_ch} output channels do not split into {branches} branches {dilations}")
        inner = out_ch // branches
        self.hierarchical = hierarchical
        self.dilations = tuple(dilations)
        self.conv1x1_down = nn.Conv2d(in_ch, inner, 1, bias=False)
        for i, d in enumerate(self.dilations, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(inner, inner, 3, stride, d, d, groups=inner, bias=False))
        if hierarchical:
            self.pool = nn.AvgPool2d(3, stride, 1)
        if attention:
            self.attention = nn.Conv2d(out_ch, branches, 1, groups=branches, bias=False)
        self.conv1x1_fuse = nn.Conv2d(out_ch, out_ch, 1, groups=branches, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = make_act(act, out_ch)

    def _branches(self, reduced: torch.Tensor) -> list[torch.Tensor]:
        """The dilated branches; hierarchical: each adds the previous one (the first adds the pooled level)."""
        convs = [getattr(self, f"conv{i}") for i in range(1, len(self.dilations) + 1)]
        if not self.hierarchical:
            return [conv(reduced) for conv in convs]
        level = self.pool(reduced)
        branches = []
        for conv in convs:
            level = conv(reduced) + level
            branches.append(level)
        return branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = self._branches(self.conv1x1_down(x))
        if hasattr(self, "attention"):
            attention = torch.sigmoid(self.attention(torch.cat(branches, 1)))
            maps = [attention[:, j : j + 1] for j in range(min(len(branches), 4))]
            branches = [b + b * maps[min(i, 3)] for i, b in enumerate(branches)]
        return self.act(self.bn(self.conv1x1_fuse(torch.cat(branches, 1))))


# Table 2's SB row (release file MiniSeg_a0): fuse groups of the (downsampling block, stage blocks) of stages 2-4.
SEPARABLE_FUSE_GROUPS = ((2, 2), (2, 4), (4, 4))


class SeparableBlock(nn.Module):
    """Table 2's single-branch block: 1x1 to out/4 -> depthwise 3x3 (stride) -> grouped 1x1 to out -> BN -> act."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, act: str = "prelu", groups: int = 4) -> None:
        super().__init__()
        if out_ch % 4:
            raise ValueError(f"SeparableBlock: out_ch={out_ch} is not a multiple of 4")
        inner = out_ch // 4
        self.conv1x1_down = nn.Conv2d(in_ch, inner, 1, bias=False)
        self.conv3x3 = nn.Conv2d(inner, inner, 3, stride, 1, groups=inner, bias=False)
        self.conv1x1_fuse = nn.Conv2d(inner, out_ch, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = make_act(act, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv1x1_fuse(self.conv3x3(self.conv1x1_down(x)))))


def short_block(
    kind: str,
    in_ch: int,
    out_ch: int,
    stride: int,
    act: str,
    dilations: Sequence[int] = AHSPBlock.DILATIONS,
    groups: int = 4,
) -> nn.Module:
    """A short-path block of stages 2-4: AHSP (released) or one of Table 2's simpler blocks.

    `dilations` sets the AHSP/pyramid branches; `groups` the separable block's fuse groups.
    """
    if kind == "ahsp":
        return AHSPBlock(in_ch, out_ch, stride, act, dilations=dilations)
    if kind == "pyramid":
        return AHSPBlock(in_ch, out_ch, stride, act, hierarchical=False, attention=False, dilations=dilations)
    if kind == "separable":
        return SeparableBlock(in_ch, out_ch, stride, act, groups)
    raise ValueError(f"unknown block {kind!r}; expected one of {SHORT_BLOCKS}")


class DecoderBlock(nn.Module):
    """The feature fusion module (FFM): 1x1 conv, then the sum of depthwise 3x3 convs (dilation 1, 2) -> BN."""

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


class MiniSegDecoder(nn.Module):
    """MiniSeg's top-down decoder and heads over four feature levels; subclasses supply `encode(x)`.

    Level k of the decoder has `channels[k-1]` channels; the encoder's level k has
    `feature_channels[k-1]` (default: the same), read by the 1x1 lateral convs `up4_conv4`
    and `up{s}_conv{s}`. Each level has twice the stride of the one before. Modules carry
    the released names (`up4_conv4`, `up3_conv4`, ..., `pred1`) at the top level, which is
    why the encoders subclass this module instead of holding it.
    `fusion="ahsp"` replaces the FFMs (`up{s}_conv{s+1}`) by AHSP blocks (Table 3);
    `decoder=False` keeps only `pred1`, on the deepest level (Table 3's "no-decoder").
    """

    def __init__(
        self,
        channels: Sequence[int],
        num_classes: int = 2,
        aux: bool = True,
        act: str = "prelu",
        fusion: str = "ffm",
        decoder: bool = True,
        feature_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if aux and not decoder:
            raise ValueError("decoder=False leaves no decoder levels for auxiliary heads; pass aux=False")
        if fusion not in ("ffm", "ahsp"):
            raise ValueError(f"unknown fusion {fusion!r}; expected 'ffm' or 'ahsp'")
        c1, c2, c3, c4 = channels
        f1, f2, f3, f4 = feature_channels or channels
        self.aux = aux
        self.use_decoder = decoder
        if decoder:
            self.up4_conv4 = nn.Conv2d(f4, c4, 1)
            self.up4_bn4 = nn.BatchNorm2d(c4)
            self.up4_act = make_act(act, c4)
            for s, (cin, cout, lateral) in zip((3, 2, 1), ((c4, c3, f3), (c3, c2, f2), (c2, c1, f1))):
                fuse = DecoderBlock(cin, cout) if fusion == "ffm" else AHSPBlock(cin, cout, 1, act)
                setattr(self, f"up{s}_conv{s + 1}", fuse)
                setattr(self, f"up{s}_conv{s}", nn.Conv2d(lateral, cout, 1))
                setattr(self, f"up{s}_bn{s}", nn.BatchNorm2d(cout))
                setattr(self, f"up{s}_act", make_act(act, cout))
        if aux:
            self.pred4 = _head(c4, num_classes)
            self.pred3 = _head(c3, num_classes)
            self.pred2 = _head(c2, num_classes)
        self.pred1 = _head(c1 if decoder else f4, num_classes)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Four feature maps, finest first; implemented by the encoder subclass."""
        raise NotImplementedError

    def decode(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Top-down decoder; returns [u1, u2, u3, u4], u_k at the size of level k-1 (u1 at level 1's)."""
        if not self.use_decoder:
            return [feats[-1]]
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


class MiniSeg(MiniSegDecoder):
    """The released MiniSeg; the keyword options build the authors' ablation files (see `ABLATIONS`).

    `aux=False`: inference model without pred2..pred4 (also Table 3's no deep supervision).
    `blocks`: blocks per stage after its downsampling block (the journal's N_k - 1);
    `long_blocks`: long-path blocks per stage after its downsampler (M_k - 1; default blocks // 2).
    A stage runs min(blocks, long_blocks) long blocks: the release's loop never reaches the rest.
    `block`: short-path block of stages 2-4, "ahsp" | "pyramid" | "separable";
    `dilations`: the AHSP/pyramid branches (the journal's K = len(dilations)).
    `two_path=False`: no long (downsampler) path, so no channel split either.
    `channel_split=False`: two paths, but without the cat -> 1x1 conv -> BN -> split between
    stages; the next stage's long path then reads `out + long`, its short path `out` only.
    `residual=False`: blocks within a stage do not add their input back (Table 2's SB/MB/+AH).
    `stage1_block="ahsp"`: AHSP blocks instead of conv blocks in stage 1.
    `down_kernel`: depthwise kernel of the downsampler blocks (5 released).
    `act`: every activation; `short_act`: the encoder's short path only (default `act`).
    `fusion`, `decoder`: see `MiniSegDecoder`.
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        channels: Sequence[int] = CHANNELS,
        blocks: Sequence[int] = BLOCKS,
        aux: bool = True,
        *,
        long_blocks: Sequence[int] | None = None,
        block: str = "ahsp",
        dilations: Sequence[int] = AHSPBlock.DILATIONS,
        two_path: bool = True,
        channel_split: bool = True,
        residual: bool = True,
        stage1_block: str = "conv",
        down_kernel: int = 5,
        act: str = "prelu",
        short_act: str | None = None,
        fusion: str = "ffm",
        decoder: bool = True,
    ) -> None:
        super().__init__(channels, num_classes, aux, act, fusion, decoder)
        if channel_split and not two_path:
            raise ValueError("channel_split needs two_path=True (the split feeds the two paths)")
        if stage1_block not in ("conv", "ahsp"):
            raise ValueError(f"unknown stage1_block {stage1_block!r}; expected 'conv' or 'ahsp'")
        long_blocks = tuple(p // 2 for p in blocks) if long_blocks is None else tuple(long_blocks)
        if len(blocks) != 4 or len(long_blocks) != 4:
            raise ValueError(f"blocks {tuple(blocks)} and long_blocks {long_blocks} need one count per stage (4)")
        short_act = short_act or act
        self.depths = tuple(blocks)
        self.long_depths = long_blocks if two_path else (0, 0, 0, 0)
        self.two_path = two_path
        self.channel_split = channel_split
        self.residual = residual
        self._build_stage1(in_channels, channels[0], stage1_block, short_act, dilations, down_kernel, act)
        for s, (cin, cout) in enumerate(zip(channels[:-1], channels[1:]), start=2):
            groups = SEPARABLE_FUSE_GROUPS[s - 2]
            if two_path:
                setattr(self, f"long{s}", DownsamplerBlock(cin, cout, 2, down_kernel, act))
            setattr(self, f"down{s}", short_block(block, cin, cout, 2, short_act, dilations, groups[0]))
            level = [short_block(block, cout, cout, 1, short_act, dilations, groups[1]) for _ in range(blocks[s - 1])]
            setattr(self, f"level{s}", nn.ModuleList(level))
            self._build_long_blocks(s, cout, down_kernel, act)
            if channel_split and s < 4:
                setattr(self, f"cat{s}", self._cat(cout))

    def _build_stage1(
        self, cin: int, c1: int, kind: str, act: str, dilations: Sequence[int], down_kernel: int, long_act: str
    ) -> None:
        """Stage 1: conv (or AHSP) blocks on the short path, downsamplers on the long path."""

        def block(block_in: int, stride: int) -> nn.Module:
            if kind == "conv":
                return ConvBlock(block_in, c1, stride, act)
            return AHSPBlock(block_in, c1, stride, act, dilations=dilations)

        if self.two_path:
            self.long1 = DownsamplerBlock(cin, c1, 2, down_kernel, long_act)
        self.down1 = block(cin, 2)
        self.level1 = nn.ModuleList(block(c1, 1) for _ in range(self.depths[0]))
        self._build_long_blocks(1, c1, down_kernel, long_act)
        if self.channel_split:
            self.cat1 = self._cat(c1)

    def _build_long_blocks(self, s: int, channels: int, down_kernel: int, act: str) -> None:
        """Stage s's stride-1 downsampler blocks of the long path (none when single-path)."""
        if self.two_path:
            count = self.long_depths[s - 1]
            blocks = [DownsamplerBlock(channels, channels, 1, down_kernel, act) for _ in range(count)]
            setattr(self, f"level{s}_long", nn.ModuleList(blocks))

    @staticmethod
    def _cat(channels: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(2 * channels, 2 * channels, 1, bias=False), nn.BatchNorm2d(2 * channels))

    def _run_stage(
        self, s: int, out: torch.Tensor, long: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The loop of one stage: both paths read `out + long` of the previous block (`out` when single-path)."""
        merged = out if long is None else out + long
        level = getattr(self, f"level{s}")
        level_long = getattr(self, f"level{s}_long") if self.two_path else ()
        for i, block in enumerate(level):
            new_out = block(merged) + out if self.residual else block(merged)
            if i < len(level_long):
                long = level_long[i](merged) + long if self.residual else level_long[i](merged)
            out = new_out
            merged = out if long is None else out + long
        return out, long

    def _stage_inputs(
        self, s: int, out: torch.Tensor, long: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What stage s+1's short and long paths read: the channel split's halves, `out` and `out + long`, or `out`."""
        if long is None:
            return out, None
        if not self.channel_split:
            return out, out + long
        fused = getattr(self, f"cat{s}")(torch.cat([long, out], 1))
        left, right = fused.chunk(2, dim=1)
        return right + out, left + long

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Short-path outputs of the four stages (strides 2, 4, 8, 16)."""
        long = self.long1(x) if self.two_path else None
        out, long = self._run_stage(1, self.down1(x), long)
        feats = [out]
        for s in (2, 3, 4):
            short_in, long_in = self._stage_inputs(s - 1, out, long)
            out = getattr(self, f"down{s}")(short_in)
            long = getattr(self, f"long{s}")(long_in) if long_in is not None else None
            out, long = self._run_stage(s, out, long)
            feats.append(out)
        return feats


def strip_aux_heads(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the auxiliary heads' keys so a released file loads into `MiniSeg(aux=False)`."""
    return {k: v for k, v in state_dict.items() if not k.startswith(tuple(h + "." for h in AUX_HEADS))}


@register_model(
    "miniseg",
    family="miniseg",
    paper_name="MiniSeg",
    aux_weights=AUX_WEIGHTS,
    reference=REFERENCE,
    notes="the authors' released model; loads their Pretrained/*.pth with strict=True",
    input_multiple=16,
)
def miniseg(num_classes: int = 2, in_channels: int = 3, aux: bool = True) -> MiniSeg:
    """The released MiniSeg (82,912 params with aux heads, 82,666 without)."""
    return MiniSeg(num_classes=num_classes, in_channels=in_channels, aux=aux)
