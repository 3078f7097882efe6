"""MiniSeg (Qiu et al., AAAI 2021), written from the paper and PROTOCOL.md, plus its ablations.

Module names match the authors' released state_dict, so their weights load with
`strict=True`. Channels C = (8, 24, 32, 64), blocks P = (2, 3, 8, 6), long-path blocks
D = P // 2. Train mode returns (pred1, pred2, pred3, pred4); eval mode returns pred1.

`MiniSegDecoder` holds the decoder and the prediction heads under their released names;
`MiniSeg` adds its two-path encoder to it. (The paper's ImageNet-backbone rows use the
release's own backbone-width decoder instead: `models/light_backbones.py`.)
The builder options of `MiniSeg` rebuild the authors' 26 ablation files (release
`full_code/models/MiniSeg_Ablation/`): the paper's Tables 2 and 3 and the journal version's
Tables III and V plus K = 2 / 8 branches; `ABLATIONS` maps each registered variant to its file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

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


ABLATION_DIR = "full_code/models/MiniSeg_Ablation"


@dataclass(frozen=True)
class Ablation:
    """A MiniSeg ablation: the release file it rebuilds, the table row it stands for, and its `MiniSeg` options.

    `table_row` is the row text of benchmark/paper/ablations_authors_builds.csv; `paper_row` is
    (table, variant) in benchmark/paper/table2_3_ablations_P1110.csv, None for the journal's tables.
    """

    authors_file: str
    table_row: str
    paper_row: tuple[int, str] | None
    options: dict[str, Any]
    description: str

    @property
    def aux_weights(self) -> tuple[float, ...]:
        """Deep supervision as released unless the variant builds no auxiliary heads."""
        return AUX_WEIGHTS if self.options.get("aux", True) else (1.0,)

    @property
    def notes(self) -> str:
        """The registry's notes: the CSV's table row, the release file, then what differs from MiniSeg."""
        return f"{self.table_row}. Authors' file {ABLATION_DIR}/{self.authors_file}.py: {self.description}"


def _after_first(counts: Sequence[int]) -> tuple[int, ...]:
    """The journal's N_k / M_k count a stage's stride-2 block too; `MiniSeg` takes the blocks after it."""
    return tuple(n - 1 for n in counts)


RELEASED_LONG_BLOCKS = _after_first((2, 2, 5, 4))
_SINGLE_PATH = {"two_path": False, "channel_split": False, "residual": False}


def _blocks_row(n: tuple[int, int, int, int], file: str, table_row: str) -> Ablation:
    """Journal Table V, N1~N4: blocks per stage (released {3,4,9,7}); the long path kept as released."""
    return Ablation(
        file,
        table_row,
        None,
        {"blocks": _after_first(n), "long_blocks": RELEASED_LONG_BLOCKS},
        f"short-path blocks per stage N1~N4 = {n}, counting each stage's downsampling block (released "
        f"(3, 4, 9, 7)); the long path keeps the released M1~M4 = (2, 2, 5, 4)",
    )


def _long_row(m: tuple[int, int, int, int], file: str, table_row: str) -> Ablation:
    """Journal Table V, M1~M4: long-path blocks per stage (released {2,2,5,4})."""
    idle = [(s, n, d) for s, (n, d) in enumerate(zip(BLOCKS, _after_first(m)), start=1) if d > n]
    unused = "".join(f" Stage {s} builds {d} long blocks but runs {n} (one per short block), as the file does."
                     for s, n, d in idle)
    return Ablation(
        file,
        table_row,
        None,
        {"long_blocks": _after_first(m)},
        f"long-path blocks per stage M1~M4 = {m}, counting each stage's stride-2 downsampler (released "
        f"(2, 2, 5, 4)); short path as released.{unused}",
    )


def _channels_row(c: tuple[int, int, int, int], file: str, table_row: str) -> Ablation:
    """Journal Table V, C1~C4: channels per stage (released {8,24,32,64}); decoder and heads follow."""
    return Ablation(
        file,
        table_row,
        None,
        {"channels": c},
        f"channels per stage C1~C4 = {c} (released (8, 24, 32, 64)); encoder, decoder and heads follow",
    )


# Registered name -> the release file it rebuilds. `miniseg` itself is MiniSeg_a4 (Table 2's +CS row).
ABLATIONS: dict[str, Ablation] = {
    "miniseg-sb": Ablation(
        "MiniSeg_a0",
        "Table II (readme) = CSV table 2: SB",
        (2, "SB"),
        {"block": "separable", **_SINGLE_PATH},
        "single path (no long path, no channel split), no residual inside a stage; stage 1 keeps its conv "
        "blocks; every stage 2-4 block is 1x1 reduce to out/4 -> depthwise 3x3 (stride) -> grouped 1x1 to out "
        "(2 groups in stage 2 and in stage 3's downsampling block, 4 elsewhere) -> BN -> PReLU; decoder and "
        "deep supervision as released",
    ),
    "miniseg-mb": Ablation(
        "MiniSeg_a1",
        "Table II = CSV table 2: MB",
        (2, "MB"),
        {"block": "pyramid", **_SINGLE_PATH},
        "SB with every stage 2-4 block a multi-branch dilated pyramid (1x1 reduce to out/4 -> depthwise 3x3 "
        "at dilations 1/2/4/8 -> concat -> 4-group 1x1 -> BN -> PReLU): no pooled level, no hierarchy, no "
        "attention; single path, no residual inside a stage",
    ),
    "miniseg-ah": Ablation(
        "MiniSeg_a2",
        "Table II = CSV table 2: +AH(SP)",
        (2, "+AH"),
        {"block": "ahsp", **_SINGLE_PATH},
        "MB plus attentive hierarchical fusion (= AHSP blocks); single path, no residual inside a stage",
    ),
    "miniseg-tp": Ablation(
        "MiniSeg_a3",
        "Table II = CSV table 2: +TP",
        (2, "+TP"),
        {"channel_split": False, "short_act": "relu"},
        "AHSP plus the two-path encoder, no channel split: between stages the long path's downsampler reads "
        "out + long and the short path's downsampling block reads out only; residuals inside stages as "
        "released. The file's encoder short path (stage-1 conv blocks, AHSP blocks) uses ReLU; the "
        "downsamplers and the decoder keep PReLU",
    ),
    "miniseg-relu": Ablation(
        "MiniSeg_a5",
        "Table IV (readme) = CSV table 3: PReLU->ReLU",
        (3, "PReLU->ReLU"),
        {"act": "relu"},
        "every PReLU (encoder and decoder) replaced by ReLU",
    ),
    "miniseg-nodecoder": Ablation(
        "MiniSeg_a6",
        "Table IV = CSV table 3: Remove decoder (no-decoder)",
        (3, "no-decoder"),
        {"decoder": False, "aux": False},
        "no decoder: one 1x1 head (the file's `pred`, here `pred1`) on the last encoder stage (stride 16; "
        "the paper's '1/8' is read as the coarsest encoder output), upsampled bilinearly to the input; "
        "no auxiliary heads",
    ),
    "miniseg-nods": Ablation(
        "MiniSeg_a7",
        "Table IV = CSV table 3: Remove DS (no-deep-supervision)",
        (3, "no-deep-supervision"),
        {"aux": False},
        "only pred1 is built and supervised",
    ),
    "miniseg-stage1ahsp": Ablation(
        "MiniSeg_a8",
        "Table IV = CSV table 3: CB->AHSP (stage1-AHSP)",
        (3, "stage1-AHSP"),
        {"stage1_block": "ahsp"},
        "stage 1's conv blocks (down1 and level1) replaced by AHSP blocks",
    ),
    "miniseg-down3x3": Ablation(
        "MiniSeg_a9",
        "Table IV = CSV table 3: 5x5 DB (downsampler-3x3)",
        (3, "downsampler-3x3"),
        {"down_kernel": 3},
        "the downsampler blocks' depthwise kernel 5x5 -> 3x3",
    ),
    "miniseg-ffm": Ablation(
        "MiniSeg_a10",
        "Table IV = CSV table 3: FFM (FFM->AHSP)",
        (3, "FFM->AHSP"),
        {"fusion": "ahsp"},
        "the decoder's feature fusion modules (up{s}_conv{s+1}: 1x1 conv + depthwise 3x3 at dilations 1 and 2 "
        "-> BN) replaced by stride-1 AHSP blocks",
    ),
    "miniseg-singlepath": Ablation(
        "MiniSeg_a11",
        "Table III (readme; not in CSV): Single-path",
        None,
        {"channels": (16, 48, 64, 128), "channel_split": False},
        "despite its name the file keeps both encoder paths: no channel split (between stages the long "
        "downsampler reads out + long, the short downsampling block reads out only, as +TP) and the width "
        "doubled, C1~C4 = (16, 48, 64, 128); PReLU throughout",
    ),
    "miniseg-n4-5-10-8": _blocks_row((4, 5, 10, 8), "MiniSeg_p1", "Table V (readme; not in CSV): N1~N4 {4,5,10,8}"),
    "miniseg-n5-6-11-9": _blocks_row((5, 6, 11, 9), "MiniSeg_p2", "Table V: N1~N4 {5,6,11,9}"),
    "miniseg-n2-3-8-6": _blocks_row((2, 3, 8, 6), "MiniSeg_p3", "Table V: N1~N4 {2,3,8,6}"),
    "miniseg-n2-2-7-5": _blocks_row((2, 2, 7, 5), "MiniSeg_p4", "Table V: N1~N4 {2,2,7,5}"),
    "miniseg-m3-3-6-5": _long_row((3, 3, 6, 5), "MiniSeg_p5", "Table V: M1~M4 {3,3,6,5}"),
    "miniseg-m4-4-7-6": _long_row((4, 4, 7, 6), "MiniSeg_p6", "Table V: M1~M4 {4,4,7,6}"),
    "miniseg-m2-2-4-3": _long_row((2, 2, 4, 3), "MiniSeg_p7", "Table V: M1~M4 {2,2,4,3}"),
    "miniseg-m2-2-3-2": _long_row((2, 2, 3, 2), "MiniSeg_p8", "Table V: M1~M4 {2,2,3,2}"),
    "miniseg-c16-32-64-128": _channels_row((16, 32, 64, 128), "MiniSeg_p9", "Table V: C1~C4 {16,32,64,128}"),
    "miniseg-c16-48-64-192": _channels_row((16, 48, 64, 192), "MiniSeg_p10", "Table V: C1~C4 {16,48,64,192}"),
    "miniseg-c8-16-32-64": _channels_row((8, 16, 32, 64), "MiniSeg_p11", "Table V: C1~C4 {8,16,32,64}"),
    "miniseg-c8-12-24-48": _channels_row((8, 12, 24, 48), "MiniSeg_p12", "Table V: C1~C4 {8,12,24,48}"),
    "miniseg-k2": Ablation(
        "MiniSeg_K2",
        "not in readme/CSV: AHSP with K=2 branches (dilations 1,2)",
        None,
        {"dilations": (1, 2)},
        "every AHSP block with K = 2 branches at dilations 1, 2: 1x1 reduce to out/2, 2-group attention and "
        "fuse, the pooled level kept",
    ),
    "miniseg-k8": Ablation(
        "MiniSeg_K8",
        "not in readme/CSV: AHSP with K=8 branches (dilations 1,2,4,8,8,8,8,8)",
        None,
        {"dilations": (1, 2, 4, 8, 8, 8, 8, 8)},
        "every AHSP block with K = 8 branches at dilations 1, 2, 4, 8, 8, 8, 8, 8: 1x1 reduce to out/8, "
        "8-group attention and fuse. As in the file, branches 5-8 are weighted by attention map 4 (maps "
        "5-8 are computed but unused)",
    ),
}

RELEASED_FILE = "MiniSeg_a4"  # Table 2's +CS row; the file is identical to the release's models/MiniSeg.py


def authors_file_models() -> dict[str, str]:
    """Release path of every ablation file -> the registered model that rebuilds it (MiniSeg_a4 -> miniseg)."""
    files = {f"{ABLATION_DIR}/{a.authors_file}.py": name for name, a in ABLATIONS.items()}
    return {f"{ABLATION_DIR}/{RELEASED_FILE}.py": "miniseg", **files}


def paper_row_models() -> dict[tuple[int, str], str]:
    """(table, variant) of benchmark/paper/table2_3_ablations_P1110.csv -> the registered model of that row."""
    rows = {a.paper_row: name for name, a in ABLATIONS.items() if a.paper_row is not None}
    return {(2, "+CS"): "miniseg", (3, "default"): "miniseg", **rows}


def _register_ablation(name: str, ablation: Ablation) -> None:
    """Register one ablation: `MiniSeg` with the file's options, nothing else changed."""

    def builder(num_classes: int = 2, in_channels: int = 3) -> MiniSeg:
        return MiniSeg(num_classes=num_classes, in_channels=in_channels, **ablation.options)

    builder.__name__ = builder.__qualname__ = name.replace("-", "_")
    builder.__doc__ = f"MiniSeg ablation: the authors' {ablation.authors_file}.py ({ablation.table_row})."
    register_model(
        name,
        family="miniseg-ablation",
        paper_name=None,
        aux_weights=ablation.aux_weights,
        reference=REFERENCE,
        notes=ablation.notes,
        input_multiple=16,
    )(builder)


for _name, _ablation in ABLATIONS.items():
    _register_ablation(_name, _ablation)
