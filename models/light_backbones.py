"""ImageNet classification backbones + MiniSeg's decoder: the paper's Table 4 rows MobileNet,
MobileNetv2, ShuffleNet, ShuffleNetv2 and EfficientNet.

Each backbone is the classification network without its classifier (global pool + fc):
its stride-4, 8 and 16 stage outputs and its final feature map (stride 32, after
`conv_head` / `conv5` where the network has one) feed MiniSeg decoder levels 1, 2, 3, 4.
The decoder keeps MiniSeg's widths (8, 24, 32, 64): its 1x1 lateral convs (`up4_conv4`,
`up{s}_conv{s}`) project the backbone's channels to them. This reading of "MiniSeg's
decoder" reproduces Table 4's params and GFLOPs (the backbone dominates both); a decoder
widened to the backbone's channels would add up to 2M params (MobileNet) and many GMACs.
MiniSeg's three auxiliary heads are kept (aux weights 1/.4/.4/.4). Backbones start from
random weights; `pretrained=True` downloads ImageNet weights (the paper used them, except
for EfficientNet). ShuffleNet (v1) is in neither timm nor torchvision: written here from its paper.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import ConvBNAct, channel_shuffle
from .miniseg import AUX_WEIGHTS, CHANNELS, MiniSegDecoder
from .registry import register_model

FAMILY = "backbone+miniseg-decoder"
DECODER_NOTE = (
    "backbone stride-4/8/16 stages + final stride-32 features -> MiniSeg decoder levels 1-4 "
    "(widths 8/24/32/64, 1x1 lateral projections); aux heads counted"
)


class BackboneMiniSeg(MiniSegDecoder):
    """A backbone returning four maps (strides 4/8/16/32) under MiniSeg's decoder and heads."""

    def __init__(self, encoder: nn.Module, feature_channels: Sequence[int], num_classes: int = 2) -> None:
        super().__init__(CHANNELS, num_classes, aux=True, feature_channels=feature_channels)
        self.encoder = encoder

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.encoder(x))


class TimmTrunk(nn.Module):
    """A timm EfficientNet-family classifier without its head: stride-4/8/16 stage outputs + final features."""

    def __init__(self, name: str, in_channels: int, pretrained: bool) -> None:
        super().__init__()
        import timm

        self.net = timm.create_model(name, pretrained=pretrained, in_chans=in_channels, num_classes=0, global_pool="")
        by_stride = {info["reduction"]: info for info in self.net.feature_info}  # module "blocks.<i>"
        self.taps = [int(by_stride[r]["module"].split(".")[1]) for r in (4, 8, 16)]
        self.channels = [by_stride[r]["num_chs"] for r in (4, 8, 16)] + [self.net.num_features]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.net.bn1(self.net.conv_stem(x))
        feats = []
        for i, stage in enumerate(self.net.blocks):
            x = stage(x)
            if i in self.taps:
                feats.append(x)
        feats.append(self.net.bn2(self.net.conv_head(x)))
        return feats


# ShuffleNet V2 1.0x (Ma et al., ECCV 2018, Table 5): max-pool, stage 2, stage 3, conv5 output channels.
SHUFFLENETV2_CHANNELS = (24, 116, 232, 1024)


class ShuffleNetV2Features(nn.Module):
    """torchvision's ShuffleNetV2 1.0x without classifier: max-pool (s4), stages 2-3 (s8/16), stage 4 + conv5 (s32)."""

    def __init__(self, in_channels: int, pretrained: bool) -> None:
        super().__init__()
        from torchvision.models import shufflenet_v2_x1_0

        net = shufflenet_v2_x1_0(weights="DEFAULT" if pretrained else None)
        if in_channels != 3:
            net.conv1[0] = nn.Conv2d(in_channels, net.conv1[0].out_channels, 3, 2, 1, bias=False)
        self.stem = nn.Sequential(net.conv1, net.maxpool)
        self.stages = nn.ModuleList([net.stage2, net.stage3, nn.Sequential(net.stage4, net.conv5)])
        self.channels = list(SHUFFLENETV2_CHANNELS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


# ShuffleNet (Zhang et al., CVPR 2018), Table 1: output channels of stages 2-4 per group count (1x).
SHUFFLENET_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
SHUFFLENET_REPEATS = (4, 8, 4)
SHUFFLENET_STEM = 24


class ShuffleUnit(nn.Module):
    """ShuffleNet unit: 1x1 GConv -> shuffle -> 3x3 DWConv (stride) -> 1x1 GConv, residual add or avg-pool concat.

    The bottleneck is a quarter of the unit's output channels; stage 2's first unit uses a
    plain 1x1 conv (its input has only 24 channels), as in the paper.
    """

    def __init__(self, in_ch: int, out_ch: int, groups: int, stride: int, group_first: bool = True) -> None:
        super().__init__()
        mid = out_ch // 4
        self.stride = stride
        self.first_groups = groups if group_first else 1
        branch_out = out_ch - in_ch if stride == 2 else out_ch
        self.compress = ConvBNAct(in_ch, mid, 1, groups=self.first_groups, act=nn.ReLU)
        self.depthwise = ConvBNAct(mid, mid, 3, stride, groups=mid, act=None)
        self.expand = ConvBNAct(mid, branch_out, 1, groups=groups, act=None)
        if stride == 2:
            self.shortcut = nn.AvgPool2d(3, 2, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = channel_shuffle(self.compress(x), self.first_groups)
        y = self.expand(self.depthwise(y))
        y = torch.cat([self.shortcut(x), y], 1) if self.stride == 2 else x + y
        return self.act(y)


class ShuffleNetV1Features(nn.Module):
    """ShuffleNet 1x (v1) trunk: 3x3 conv s2 + max-pool (s4), stages 2-4 (s8/16/32)."""

    def __init__(self, in_channels: int = 3, groups: int = 3) -> None:
        super().__init__()
        if groups not in SHUFFLENET_CHANNELS:
            raise ValueError(f"ShuffleNet groups must be one of {sorted(SHUFFLENET_CHANNELS)}, got {groups}")
        widths = list(SHUFFLENET_CHANNELS[groups])
        self.stem = nn.Sequential(ConvBNAct(in_channels, SHUFFLENET_STEM, 3, 2), nn.MaxPool2d(3, 2, 1))
        stages, in_ch = [], SHUFFLENET_STEM
        for i, (width, repeats) in enumerate(zip(widths, SHUFFLENET_REPEATS)):
            units = [ShuffleUnit(in_ch, width, groups, 2, group_first=i > 0)]
            units += [ShuffleUnit(width, width, groups, 1) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            in_ch = width
        self.stages = nn.ModuleList(stages)
        self.channels = [SHUFFLENET_STEM] + widths

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


def _with_timm(name: str, num_classes: int, in_channels: int, pretrained: bool) -> BackboneMiniSeg:
    encoder = TimmTrunk(name, in_channels, pretrained)
    return BackboneMiniSeg(encoder, encoder.channels, num_classes)


_COMMON = dict(family=FAMILY, aux_weights=AUX_WEIGHTS, input_multiple=32, min_input_size=32)
_MINISEG = "decoder: Qiu et al., MiniSeg, AAAI 2021"


@register_model(
    "mobilenet-minisegdec",
    paper_name="MobileNet",
    backbone="mobilenetv1_100 (timm)",
    pretrained_backbone=True,
    reference=f"Howard et al., MobileNets, arXiv 1704.04861, 2017; {_MINISEG}",
    notes=f"{DECODER_NOTE}. Level 4 = the last 1024-channel stage (MobileNetV1 has no conv_head)",
    **_COMMON,
)
def mobilenet_minisegdec(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> BackboneMiniSeg:
    """MobileNetV1 1.0x (timm) + MiniSeg decoder (3.30M params; paper 3.13M)."""
    return _with_timm("mobilenetv1_100", num_classes, in_channels, pretrained)


@register_model(
    "mobilenetv2-minisegdec",
    paper_name="MobileNetv2",
    backbone="mobilenetv2_100 (timm)",
    pretrained_backbone=True,
    reference=f"Sandler et al., MobileNetV2, CVPR 2018; {_MINISEG}",
    notes=f"{DECODER_NOTE}. Level 4 = conv_head output (1280 channels)",
    **_COMMON,
)
def mobilenetv2_minisegdec(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> BackboneMiniSeg:
    """MobileNetV2 1.0x (timm) + MiniSeg decoder (2.31M params; paper 2.17M)."""
    return _with_timm("mobilenetv2_100", num_classes, in_channels, pretrained)


@register_model(
    "efficientnet-minisegdec",
    paper_name="EfficientNet",
    backbone="efficientnet_b2 (timm)",
    pretrained_backbone=False,
    reference=f"Tan and Le, EfficientNet, ICML 2019; {_MINISEG}",
    notes=f"{DECODER_NOTE}. Level 4 = conv_head output (1408 channels). The paper does not name the "
    "variant; B2 is the one whose params fit (7.80M vs 8.37M; B1 6.60M, B3 10.81M). The paper's "
    "13.19 GFLOPs is far above B2's at 512x512 (about 3.9 GMACs); we do not know why",
    **_COMMON,
)
def efficientnet_minisegdec(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> BackboneMiniSeg:
    """EfficientNet-B2 (timm) + MiniSeg decoder (7.80M params; paper 8.37M), trained from scratch in the paper."""
    return _with_timm("efficientnet_b2", num_classes, in_channels, pretrained)


@register_model(
    "shufflenetv2-minisegdec",
    paper_name="ShuffleNetv2",
    backbone="shufflenet_v2_x1_0 (torchvision)",
    pretrained_backbone=True,
    reference=f"Ma et al., ShuffleNet V2, ECCV 2018; {_MINISEG}",
    notes=f"{DECODER_NOTE}. Level 1 = the 24-channel max-pool output, level 4 = conv5 (1024 channels)",
    **_COMMON,
)
def shufflenetv2_minisegdec(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> BackboneMiniSeg:
    """ShuffleNetV2 1.0x (torchvision) + MiniSeg decoder (1.33M params; paper 1.22M)."""
    encoder = ShuffleNetV2Features(in_channels, pretrained)
    return BackboneMiniSeg(encoder, encoder.channels, num_classes)


@register_model(
    "shufflenet-minisegdec",
    paper_name="ShuffleNet",
    backbone="ShuffleNet 1x, g=3 (ours, from the paper)",
    pretrained_backbone=True,
    reference=f"Zhang et al., ShuffleNet, CVPR 2018; {_MINISEG}",
    notes=f"{DECODER_NOTE}. Groups g=3 (0.99M params vs the paper's 0.92M; g=8 gives 1.04M). Level 1 = "
    "the 24-channel max-pool output. No ImageNet weights for it in timm/torchvision: pretrained=True raises ValueError",
    **_COMMON,
)
def shufflenet_minisegdec(
    num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, groups: int = 3
) -> BackboneMiniSeg:
    """ShuffleNet 1x (g=3 by default) written from its paper + MiniSeg decoder (0.99M params; paper 0.92M)."""
    if pretrained:
        raise ValueError("shufflenet-minisegdec: no ImageNet weights for ShuffleNet (v1) in timm or torchvision")
    encoder = ShuffleNetV1Features(in_channels, groups)
    return BackboneMiniSeg(encoder, encoder.channels, num_classes)
