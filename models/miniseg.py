"""MiniSeg (Qiu et al., AAAI 2021), written from the paper and PROTOCOL.md, plus its ablations.

Module names match the authors' released state_dict, so their weights load with
`strict=True`. Channels C = (8, 24, 32, 64), blocks P = (2, 3, 8, 6), long-path blocks
D = P // 2. Train mode returns (pred1, pred2, pred3, pred4); eval mode returns pred1.

`MiniSegDecoder` holds the decoder and the prediction heads under their released names;
`MiniSeg` adds its two-path encoder to it, and `models/light_backbones.py` adds ImageNet
classification backbones to the same decoder (the paper's "backbone + MiniSeg decoder" rows).
The builder options of `MiniSeg` give the ablations of the paper's Tables 2 and 3.
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
    """Attentive hierarchical spatial pyramid: dilations 1/2/4/8 fused hierarchically with attention.

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
    ) -> None:
        super().__init__()
        branches = len(self.DILATIONS)
        inner = out_ch // branches
        self.hierarchical = hierarchical
        self.conv1x1_down = nn.Conv2d(in_ch, inner, 1, bias=False)
        for i, d in enumerate(self.DILATIONS, start=1):
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
        convs = [getattr(self, f"conv{i}") for i in range(1, len(self.DILATIONS) + 1)]
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
            branches = [b + b * attention[:, i : i + 1] for i, b in enumerate(branches)]
        return self.act(self.bn(self.conv1x1_fuse(torch.cat(branches, 1))))


class SeparableBlock(nn.Module):
    """Depthwise 3x3 (stride, dilation 1) -> pointwise 1x1 -> BN -> PReLU (Table 2's single-branch block)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, act: str = "prelu") -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False)
        self.conv_pw = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = make_act(act, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv_pw(self.conv_dw(x))))


def short_block(kind: str, in_ch: int, out_ch: int, stride: int, act: str) -> nn.Module:
    """A short-path block of stages 2-4: AHSP (released) or one of Table 2's simpler blocks."""
    if kind == "ahsp":
        return AHSPBlock(in_ch, out_ch, stride, act)
    if kind == "pyramid":
        return AHSPBlock(in_ch, out_ch, stride, act, hierarchical=False, attention=False)
    if kind == "separable":
        return SeparableBlock(in_ch, out_ch, stride, act)
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
    """The released MiniSeg; the keyword options build the ablations of Tables 2 and 3.

    `aux=False`: inference model without pred2..pred4 (also Table 3's no deep supervision).
    `block`: short-path block of stages 2-4, "ahsp" | "pyramid" | "separable".
    `two_path=False`: no long (downsampler) path, so no channel split either.
    `channel_split=False`: two paths, but without the cat -> 1x1 conv -> BN -> split between
    stages; both paths of the next stage then read `out + long`, as blocks within a stage do.
    `stage1_block="ahsp"`: AHSP blocks instead of conv blocks in stage 1.
    `down_kernel`: depthwise kernel of the downsampler blocks (5 released).
    `act`, `fusion`, `decoder`: see `MiniSegDecoder` and `make_act`.
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        channels: Sequence[int] = CHANNELS,
        blocks: Sequence[int] = BLOCKS,
        aux: bool = True,
        *,
        block: str = "ahsp",
        two_path: bool = True,
        channel_split: bool = True,
        stage1_block: str = "conv",
        down_kernel: int = 5,
        act: str = "prelu",
        fusion: str = "ffm",
        decoder: bool = True,
    ) -> None:
        super().__init__(channels, num_classes, aux, act, fusion, decoder)
        if channel_split and not two_path:
            raise ValueError("channel_split needs two_path=True (the split feeds the two paths)")
        if stage1_block not in ("conv", "ahsp"):
            raise ValueError(f"unknown stage1_block {stage1_block!r}; expected 'conv' or 'ahsp'")
        c1 = channels[0]
        self.depths = tuple(blocks)
        self.long_depths = tuple(p // 2 for p in blocks) if two_path else (0, 0, 0, 0)
        self.two_path = two_path
        self.channel_split = channel_split

        def stage1(cin: int, stride: int) -> nn.Module:
            return ConvBlock(cin, c1, stride, act) if stage1_block == "conv" else AHSPBlock(cin, c1, stride, act)

        def downsampler(cin: int, cout: int, stride: int) -> DownsamplerBlock:
            return DownsamplerBlock(cin, cout, stride, down_kernel, act)

        # Stage 1: conv blocks on the short path, downsamplers on the long path.
        if two_path:
            self.long1 = downsampler(in_channels, c1, 2)
        self.down1 = stage1(in_channels, 2)
        self.level1 = nn.ModuleList(stage1(c1, 1) for _ in range(blocks[0]))
        if two_path:
            self.level1_long = nn.ModuleList(downsampler(c1, c1, 1) for _ in range(self.long_depths[0]))
        if channel_split:
            self.cat1 = self._cat(c1)
        # Stages 2-4: AHSP blocks on the short path.
        for s, (cin, cout) in enumerate(zip(channels[:-1], channels[1:]), start=2):
            if two_path:
                setattr(self, f"long{s}", downsampler(cin, cout, 2))
            setattr(self, f"down{s}", short_block(block, cin, cout, 2, act))
            short_blocks = (short_block(block, cout, cout, 1, act) for _ in range(blocks[s - 1]))
            setattr(self, f"level{s}", nn.ModuleList(short_blocks))
            if two_path:
                long_blocks = (downsampler(cout, cout, 1) for _ in range(self.long_depths[s - 1]))
                setattr(self, f"level{s}_long", nn.ModuleList(long_blocks))
            if channel_split and s < 4:
                setattr(self, f"cat{s}", self._cat(cout))

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
            new_out = block(merged) + out
            if i < len(level_long):
                long = level_long[i](merged) + long
            out = new_out
            merged = out if long is None else out + long
        return out, long

    def _stage_inputs(
        self, s: int, out: torch.Tensor, long: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What stage s+1's long and short paths read: the channel split's halves, `out + long`, or `out`."""
        if long is None:
            return out, None
        if not self.channel_split:
            return out + long, out + long
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


# Ablations (paper Tables 2 and 3, on COVID-19-P1110): name -> (MiniSeg options, aux weights, notes).
ABLATIONS: dict[str, tuple[dict, tuple[float, ...], str]] = {
    "miniseg-sb": (
        {"block": "separable", "two_path": False, "channel_split": False},
        AUX_WEIGHTS,
        "Table 2 row SB: single path; every stage 2-4 block is a depthwise-separable 3x3 conv "
        "(dilation 1) -> 1x1 -> BN -> PReLU; stage 1 keeps its conv blocks; decoder and deep supervision kept",
    ),
    "miniseg-mb": (
        {"block": "pyramid", "two_path": False, "channel_split": False},
        AUX_WEIGHTS,
        "Table 2 row MB: SB's blocks replaced by the multi-branch dilated pyramid (1x1 -> depthwise "
        "dilations 1/2/4/8 -> concat -> grouped 1x1 -> BN -> PReLU), no hierarchy, no attention; single path",
    ),
    "miniseg-ah": (
        {"block": "ahsp", "two_path": False, "channel_split": False},
        AUX_WEIGHTS,
        "Table 2 row +AH: MB plus attentive hierarchical fusion (= AHSP blocks); single path",
    ),
    "miniseg-tp": (
        {"two_path": True, "channel_split": False},
        AUX_WEIGHTS,
        "Table 2 row +TP: AHSP plus the two-path encoder (downsampler long path), no channel split: "
        "no cat/1x1/BN/split between stages; both paths of the next stage read out + long",
    ),
    "miniseg-relu": (
        {"act": "relu"},
        AUX_WEIGHTS,
        "Table 3 row PReLU->ReLU: every PReLU (encoder and decoder) replaced by ReLU",
    ),
    "miniseg-nodecoder": (
        {"decoder": False, "aux": False},
        (1.0,),
        "Table 3 row no-decoder: the head sits on the last encoder stage, upsampled bilinearly to the input. "
        "Our stages have strides 2/4/8/16, so that output is at 1/16; the paper's '1/8' is read as the "
        "coarsest encoder output (a 1x1 head commutes with bilinear upsampling, so predicting after a 2x "
        "upsample to 1/8 gives the same map). No decoder levels remain, so no auxiliary heads",
    ),
    "miniseg-nods": (
        {"aux": False},
        (1.0,),
        "Table 3 row no-deep-supervision: only pred1 is built and supervised (82,666 params)",
    ),
    "miniseg-stage1ahsp": (
        {"stage1_block": "ahsp"},
        AUX_WEIGHTS,
        "Table 3 row stage1-AHSP: stage 1's conv blocks (down1 and level1) replaced by AHSP blocks",
    ),
    "miniseg-down3x3": (
        {"down_kernel": 3},
        AUX_WEIGHTS,
        "Table 3 row downsampler-3x3: the downsamplers' depthwise kernel 5x5 -> 3x3",
    ),
    "miniseg-ffm": (
        {"fusion": "ahsp"},
        AUX_WEIGHTS,
        "Table 3 row FFM->AHSP: the decoder's feature fusion modules (up{s}_conv{s+1}: 1x1 conv + "
        "depthwise 3x3 dilation 1 and 2 -> BN) replaced by stride-1 AHSP blocks; the FFM is read as "
        "the decoder's fusion block, not the cat/BN between encoder paths",
    ),
}


def _register_ablation(name: str, options: dict, aux_weights: tuple[float, ...], notes: str) -> None:
    """Register one Table 2/3 variant: `MiniSeg` with `options`, nothing else changed."""

    def builder(num_classes: int = 2, in_channels: int = 3) -> MiniSeg:
        return MiniSeg(num_classes=num_classes, in_channels=in_channels, **options)

    builder.__name__ = builder.__qualname__ = name.replace("-", "_")
    builder.__doc__ = f"MiniSeg ablation ({notes.split(':')[0]})."
    register_model(
        name,
        family="miniseg-ablation",
        paper_name=None,
        aux_weights=aux_weights,
        reference=REFERENCE,
        notes=notes,
        input_multiple=16,
    )(builder)


for _name, (_options, _weights, _notes) in ABLATIONS.items():
    _register_ablation(_name, _options, _weights, _notes)
