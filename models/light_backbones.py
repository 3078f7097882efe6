"""ImageNet classification backbones under the release's light decoder: the paper's Table 4 rows
MobileNet, MobileNetv2, ShuffleNet, ShuffleNetv2 and EfficientNet, as the MiniSeg release builds
them (`full_code/models/Baselines/MobileNetV1.py`, `MobileNetV2.py`, `ShuffleNetV1.py`,
`ShuffleNetV2.py`, `Others/EfficientNet.py`).

Each backbone returns its stage outputs, finest first. The decoder (`BackboneWidthDecoder`, the
release's "FastSal" head) works at the backbone's own widths: from the deepest stage up, the
previous map is upsampled to stage k's size, passed through MiniSeg's FFM block (1x1 conv to
stage k's width, depthwise 3x3 convs at dilations 1 and 2, summed, BN) and added to a 1x1 conv
(with bias) + BN of stage k, then a per-channel PReLU; dropout 0.1 and a 1x1 classifier on the
finest stage, upsampled to the input. No auxiliary heads.

Table 4's params and GFLOPs for MobileNet, MobileNetv2, ShuffleNet and ShuffleNetv2 are the
backbone's alone (`model.backbone`); the trained networks registered here hold backbone + decoder.

Where a torchvision or timm ImageNet twin exists the backbone has its exact parameter layout:
MobileNetV2 and ShuffleNetV2 are torchvision's modules (`features`, `conv1` ... `conv5`);
MobileNetV1 is written with plain modules under timm `mobilenetv1_100`'s parameter names (timm's
BatchNormAct2d would hide the BN from the release's FLOP counter) and loads its ImageNet weights
strictly. ShuffleNet (v1, g=3) and the release's EfficientNet-B0 variant have no such twin.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import adapt_first_conv
from .layers import ConvBNAct, channel_shuffle, upsample_to
from .miniseg import DecoderBlock
from ._pretrained import PretrainedShapeError, imagenet_state_dict, torchvision_model
from ._registry import register_model
from ._weights import load_checked

FAMILY = "light-backbone"
DECODER_DROPOUT = 0.1
TABLE4_NOTE = "Table 4 counted the backbone alone"


class BackboneWidthDecoder(nn.Module):
    """The release's light-backbone decoder: top-down FFM fusion at each stage's own width, then a 1x1 classifier."""

    def __init__(self, channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        widths = list(channels)
        self.fuse = nn.ModuleList(DecoderBlock(deeper, width) for width, deeper in zip(widths, widths[1:]))
        self.lateral = nn.ModuleList(nn.Conv2d(width, width, 1) for width in widths[:-1])
        self.lateral_bn = nn.ModuleList(nn.BatchNorm2d(width) for width in widths[:-1])
        self.act = nn.ModuleList(nn.PReLU(width) for width in widths[:-1])
        self.classifier = nn.Sequential(nn.Dropout2d(DECODER_DROPOUT), nn.Conv2d(widths[0], num_classes, 1))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        y = feats[-1]
        for k in reversed(range(len(feats) - 1)):
            y = upsample_to(y, feats[k].shape[-2:])
            y = self.act[k](self.fuse[k](y) + self.lateral_bn[k](self.lateral[k](feats[k])))
        return self.classifier(y)


class BackboneSeg(nn.Module):
    """A backbone (stage outputs, finest first, widths in `.channels`) under `BackboneWidthDecoder`."""

    def __init__(self, backbone: nn.Module, num_classes: int = 2) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = BackboneWidthDecoder(backbone.channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.decoder(self.backbone(x)), x.shape[-2:])


def _run_stages(x: torch.Tensor, stages: Sequence[nn.Module]) -> list[torch.Tensor]:
    """Apply `stages` in turn and keep every stage's output."""
    feats = []
    for stage in stages:
        x = stage(x)
        feats.append(x)
    return feats


# ---------------------------------------------------------------- MobileNetV1 (Howard et al., 2017)
# (width, units, stride of the first unit) of the release's stages 1-5 (stage 1 also holds the stem).
MOBILENETV1_STAGES = ((64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2))
MOBILENETV1_STEM = 32


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 unit: 3x3 depthwise conv-BN-ReLU -> 1x1 conv-BN-ReLU (parameter names as timm's)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_pw = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.bn2(self.conv_pw(self.act1(self.bn1(self.conv_dw(x))))))


class MobileNetV1Features(nn.Module):
    """MobileNetV1 1.0x without classifier, ReLU as in the release; stage outputs at strides 2-32.

    Its state_dict keys and shapes equal timm `mobilenetv1_100`'s without the classifier.
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(in_channels, MOBILENETV1_STEM, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(MOBILENETV1_STEM)
        self.act1 = nn.ReLU(inplace=True)
        stages, in_ch = [], MOBILENETV1_STEM
        for width, units, stride in MOBILENETV1_STAGES:
            first = DepthwiseSeparable(in_ch, width, stride)
            stages.append(nn.Sequential(first, *(DepthwiseSeparable(width, width, 1) for _ in range(units - 1))))
            in_ch = width
        self.blocks = nn.Sequential(*stages)
        self.channels = tuple(width for width, _, _ in MOBILENETV1_STAGES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return _run_stages(self.act1(self.bn1(self.conv_stem(x))), self.blocks)

    def load_timm_imagenet(self) -> None:
        """Copy timm `mobilenetv1_100`'s ImageNet weights in (models._pretrained; strict: every key must match)."""
        state = imagenet_state_dict("timm", "mobilenetv1_100")
        load_checked(self, {k: v for k, v in state.items() if not k.startswith("classifier.")}, "timm mobilenetv1_100",
                     error=PretrainedShapeError)


def mobilenetv1_features(in_channels: int = 3, pretrained: bool = False) -> MobileNetV1Features:
    """MobileNetV1 features; `pretrained` loads timm's ImageNet weights (then adapts the stem to `in_channels`)."""
    if not pretrained:
        return MobileNetV1Features(in_channels)
    net = MobileNetV1Features(3)
    net.load_timm_imagenet()
    net.conv_stem = adapt_first_conv(net.conv_stem, in_channels)
    return net


# ---------------------------------------------------------------- MobileNetV2 (Sandler et al., 2018)
# Last index in torchvision's `features` of each of the release's stages 1-5 (strides 2-32).
MOBILENETV2_TAPS = (1, 3, 6, 13, 18)
MOBILENETV2_CHANNELS = (16, 24, 32, 96, 1280)


class MobileNetV2Features(nn.Module):
    """torchvision's MobileNetV2 1.0x `features` (no classifier), tapped after each of the release's five stages."""

    def __init__(self, in_channels: int = 3, pretrained: bool = False) -> None:
        super().__init__()
        net = torchvision_model("mobilenet_v2", pretrained)
        net.features[0][0] = adapt_first_conv(net.features[0][0], in_channels)
        self.features = net.features
        self.channels = MOBILENETV2_CHANNELS

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in MOBILENETV2_TAPS:
                feats.append(x)
        return feats


# ---------------------------------------------------------------- ShuffleNet (Zhang et al., CVPR 2018)
SHUFFLENET_GROUPS = 3
SHUFFLENET_G3_WIDTHS = (240, 480, 960)  # stages 2-4 at g = 3 (paper Table 1, 1x)
SHUFFLENET_UNITS = (4, 8, 4)
SHUFFLENET_STEM = 24


class ShuffleUnit(nn.Module):
    """ShuffleNet unit as the release builds it: 1x1 (G)conv-BN-ReLU -> shuffle -> 3x3 depthwise conv-BN ->
    1x1 GConv-BN; residual add, or (stride 2) concat after a 3x3 avg-pool of the input; ReLU. Convs carry a bias.

    The bottleneck is a quarter of the unit's output channels; stage 2's first unit uses a plain
    1x1 conv (its input has only 24 channels) but still shuffles in `groups`, as the release does.
    """

    def __init__(self, in_ch: int, out_ch: int, groups: int, stride: int, group_first: bool = True) -> None:
        super().__init__()
        mid = out_ch // 4
        self.stride = stride
        self.groups = groups
        branch_out = out_ch - in_ch if stride == 2 else out_ch
        self.compress = nn.Sequential(
            nn.Conv2d(in_ch, mid, 1, groups=groups if group_first else 1), nn.BatchNorm2d(mid), nn.ReLU()
        )
        self.depthwise = nn.Sequential(nn.Conv2d(mid, mid, 3, stride, 1, groups=mid), nn.BatchNorm2d(mid))
        self.expand = nn.Sequential(nn.Conv2d(mid, branch_out, 1, groups=groups), nn.BatchNorm2d(branch_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self.depthwise(channel_shuffle(self.compress(x), self.groups)))
        y = torch.cat([F.avg_pool2d(x, 3, 2, 1), y], 1) if self.stride == 2 else x + y
        return F.relu(y)


class ShuffleNetV1Features(nn.Module):
    """ShuffleNet 1x, g=3, no classifier: 3x3 stride-2 conv (bias, no BN) + max-pool (s4), stages 2-4 (s8/16/32)."""

    def __init__(self, in_channels: int = 3, groups: int = SHUFFLENET_GROUPS) -> None:
        super().__init__()
        if groups != SHUFFLENET_GROUPS:
            raise ValueError(f"ShuffleNetV1Features: the release builds g={SHUFFLENET_GROUPS} only, got g={groups}")
        self.conv1 = nn.Conv2d(in_channels, SHUFFLENET_STEM, 3, 2, 1)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, in_ch = [], SHUFFLENET_STEM
        for i, (width, units) in enumerate(zip(SHUFFLENET_G3_WIDTHS, SHUFFLENET_UNITS)):
            first = ShuffleUnit(in_ch, width, groups, 2, group_first=i > 0)
            stages.append(nn.Sequential(first, *(ShuffleUnit(width, width, groups, 1) for _ in range(units - 1))))
            in_ch = width
        self.stages = nn.ModuleList(stages)
        self.channels = (SHUFFLENET_STEM, *SHUFFLENET_G3_WIDTHS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.conv1(x))
        return [x, *_run_stages(x, self.stages)]


# ---------------------------------------------------------------- ShuffleNetV2 (Ma et al., ECCV 2018)
SHUFFLENETV2_CHANNELS = (24, 116, 232, 1024)  # 1.0x: max-pool, stage 2, stage 3, conv5


class ShuffleNetV2Features(nn.Module):
    """torchvision's ShuffleNetV2 1.0x without `fc` (same module names): max-pool (s4), stages 2-3, stage 4 + conv5."""

    def __init__(self, in_channels: int = 3, pretrained: bool = False) -> None:
        super().__init__()
        net = torchvision_model("shufflenet_v2_x1_0", pretrained)
        net.conv1[0] = adapt_first_conv(net.conv1[0], in_channels)
        self.conv1, self.maxpool = net.conv1, net.maxpool
        self.stage2, self.stage3, self.stage4, self.conv5 = net.stage2, net.stage3, net.stage4, net.conv5
        self.channels = SHUFFLENETV2_CHANNELS

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.maxpool(self.conv1(x))
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        return [f1, f2, f3, self.conv5(self.stage4(f3))]


# ---------------------------------------------------------------- EfficientNet-B0, the release's dilated variant
# Per release layer 1-6: (kernel, width, units, stride, expansion) rows. Unlike Tan & Le's B0, the
# 80-wide row has stride 1 and the 112-wide row stride 2; layers 4-5 are dilated (output stride 8).
EFFICIENTNET_B0_LAYERS = (
    ((3, 16, 1, 1, 1),),
    ((3, 24, 2, 2, 6),),
    ((5, 40, 2, 2, 6), (3, 80, 3, 1, 6)),
    ((5, 112, 3, 2, 6),),
    ((5, 192, 4, 2, 6),),
    ((3, 320, 1, 1, 6),),
)
EFFICIENTNET_DILATED = (False, False, False, True, True, False)
EFFICIENTNET_STEM, EFFICIENTNET_HEAD, IMAGENET_CLASSES = 32, 1280, 1000
SE_RATIO = 0.25
DROP_CONNECT = 0.2


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 conv (bias-free) -> swish -> 1x1 conv (bias-free) -> sigmoid, weighting the channels."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, squeezed, 1, bias=False), nn.SiLU(), nn.Conv2d(squeezed, channels, 1, bias=False),
            nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(self.pool(x))


class MBConv(nn.Module):
    """The release's MBConv: [1x1 expand conv-BN-hswish] -> kxk depthwise conv-BN-hswish -> SE (a quarter of the
    EXPANDED width) -> 1x1 conv-BN; residual (after channel dropout 0.2) where shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expansion: int, dilation: int = 1) -> None:
        super().__init__()
        inner = int(round(in_ch * expansion))
        layers: list[nn.Module] = [ConvBNAct(in_ch, inner, 1, act=nn.Hardswish)] if expansion != 1 else []
        layers += [
            ConvBNAct(inner, inner, kernel, stride, dilation, groups=inner, act=nn.Hardswish),
            SqueezeExcite(inner, max(1, int(inner * SE_RATIO))),
            nn.Conv2d(inner, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch
        if self.residual:
            self.dropout = nn.Dropout2d(DROP_CONNECT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + self.dropout(y) if self.residual else y


class DilatedEfficientNetB0(nn.Module):
    """The release's EfficientNet-B0 (dilated=True): stem + six layers (strides 2, 4, 8, 8, 8, 8), and its
    1000-class classifier (1x1 conv-BN-hswish to 1280, pool, dropout, 1x1 conv) built but never called."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, EFFICIENTNET_STEM, 3, 2, act=nn.Hardswish)
        layers, in_ch = [], EFFICIENTNET_STEM
        for rows, dilated in zip(EFFICIENTNET_B0_LAYERS, EFFICIENTNET_DILATED):
            blocks: list[nn.Module] = []
            for kernel, width, units, stride, expansion in rows:
                # a dilated layer: the first unit gets stride 1 and dilation 2, the others dilation 1 (as released)
                blocks.append(MBConv(in_ch, width, kernel, 1 if dilated else stride, expansion, 2 if dilated else 1))
                blocks += [MBConv(width, width, kernel, 1, expansion) for _ in range(units - 1)]
                in_ch = width
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.ModuleList(layers)
        self.classifier = nn.Sequential(
            ConvBNAct(in_ch, EFFICIENTNET_HEAD, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1),
            nn.Dropout2d(DROP_CONNECT), nn.Conv2d(EFFICIENTNET_HEAD, IMAGENET_CLASSES, 1),
        )  # fmt: skip
        self.channels = tuple(rows[-1][1] for rows in EFFICIENTNET_B0_LAYERS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return _run_stages(self.conv1(x), self.layers)


# ---------------------------------------------------------------- registered networks
_COMMON = dict(family=FAMILY, input_multiple=32, min_input_size=32)


def _backbone_note(backbone_params: int, trained_params: int) -> str:
    return (
        f"{TABLE4_NOTE}: backbone-only count {backbone_params:,} params (`model.backbone`, the CSV's params); "
        f"this trained network (backbone + the release's decoder, no aux heads) has {trained_params:,} at 2 classes"
    )


@register_model(
    "mobilenet",
    paper_name="MobileNet",
    backbone="MobileNetV1 1.0x (timm mobilenetv1_100 parameter layout, ReLU)",
    pretrained_backbone=True,
    reference="Howard et al., MobileNets, arXiv 1704.04861, 2017; decoder: the MiniSeg release's MobileNetV1.py",
    notes=f"the release's MobileNetV1.py. {_backbone_note(3_206_976, 4_274_626)}. ReLU as in the release "
    "(timm's ImageNet weights were trained with ReLU6)",
    **_COMMON,
)
def mobilenet(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> BackboneSeg:
    """MobileNetV1 1.0x + the release's decoder (stages at 64/128/256/512/1024 channels)."""
    return BackboneSeg(mobilenetv1_features(in_channels, pretrained), num_classes)


@register_model(
    "mobilenetv2",
    paper_name="MobileNetv2",
    backbone="mobilenet_v2 (torchvision) features",
    pretrained_backbone=True,
    reference="Sandler et al., MobileNetV2, CVPR 2018; decoder: the MiniSeg release's MobileNetV2.py",
    notes=f"the release's MobileNetV2.py. {_backbone_note(2_223_872, 2_366_114)}",
    **_COMMON,
)
def mobilenetv2(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> BackboneSeg:
    """MobileNetV2 1.0x (torchvision) + the release's decoder (stages at 16/24/32/96/1280 channels)."""
    return BackboneSeg(MobileNetV2Features(in_channels, pretrained), num_classes)


@register_model(
    "shufflenet-g3",
    paper_name="ShuffleNet",
    backbone="ShuffleNet 1x, g=3 (ours, as the release builds it)",
    pretrained_backbone=True,
    reference="Zhang et al., ShuffleNet, CVPR 2018; decoder: the MiniSeg release's ShuffleNetV1.py",
    notes=f"the release's ShuffleNetV1.py. {_backbone_note(916_920, 1_805_162)}. The release loads its own "
    "ImageNet weights; timm and torchvision have no ShuffleNet (v1): pretrained=True raises ValueError",
    **_COMMON,
)
def shufflenet_g3(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> BackboneSeg:
    """ShuffleNet 1x, g=3 + the release's decoder (stages at 24/240/480/960 channels)."""
    if pretrained:
        raise ValueError("shufflenet-g3: no ImageNet weights for ShuffleNet (v1) in timm or torchvision")
    return BackboneSeg(ShuffleNetV1Features(in_channels), num_classes)


@register_model(
    "shufflenetv2",
    paper_name="ShuffleNetv2",
    backbone="shufflenet_v2_x1_0 (torchvision) without fc",
    pretrained_backbone=True,
    reference="Ma et al., ShuffleNet V2, ECCV 2018; decoder: the MiniSeg release's ShuffleNetV2.py",
    notes=f"the release's ShuffleNetV2.py. {_backbone_note(1_253_604, 1_597_702)}",
    **_COMMON,
)
def shufflenetv2(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> BackboneSeg:
    """ShuffleNetV2 1.0x (torchvision) + the release's decoder (stages at 24/116/232/1024 channels)."""
    return BackboneSeg(ShuffleNetV2Features(in_channels, pretrained), num_classes)


@register_model(
    "efficientnet-b0-dilated",
    paper_name="EfficientNet",
    backbone="EfficientNet-B0, the release's dilated variant (ours; output stride 8)",
    pretrained_backbone=False,
    reference="Tan and Le, EfficientNet, ICML 2019; the MiniSeg release's Others/EfficientNet.py and "
    "Others/base_model/efficientnet.py (efficientnet_b0, dilated=True)",
    notes="the release's EfficientNet.py: 8,573,706 params at 2 classes, including the backbone's 1000-class "
    "classifier (1,693,160) that is never called (6,880,546 on the forward path); decoder at the widths "
    "16/24/80/112/192/320. Not timm's B0: hard-swish instead of swish, SE squeezing a quarter of the expanded "
    "width without biases, the 80-wide row at stride 1 and the 112-wide row at stride 2, layers 4-5 dilated "
    "(first unit only). Trained from scratch in the paper (the release's variant has no ImageNet weights)",
    family=FAMILY,
    input_multiple=8,
    min_input_size=32,
)
def efficientnet_b0_dilated(num_classes: int = 2, in_channels: int = 3) -> BackboneSeg:
    """The release's dilated EfficientNet-B0 + its decoder."""
    return BackboneSeg(DilatedEfficientNetB0(in_channels), num_classes)
