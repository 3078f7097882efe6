"""DeepLabv3 on a dilated ResNet50 and DeepLabv3+ on aligned Xception, as the MiniSeg authors built them.

DeepLabv3 (Chen et al. 2017) as in the authors' `full_code/models/Baselines/DeepLabs/deeplabv3.py`:
their `resnet50_v1b` (torchvision's ResNet-50 without fc, layer3 / layer4 dilated 2 / 4 with the
first block of each at the previous dilation: output stride 8), ASPP with a 1x1 branch, three 3x3
branches at rates (12, 24, 36) (= (6, 12, 18) at OS 16, doubled at OS 8) and image-level pooling,
all 256 channels with BN and ReLU, concatenated and projected by a 1x1 conv-BN-ReLU (256, dropout
0.5); then a 3x3 conv-BN-ReLU (256), dropout 0.1 and the 1x1 classifier; bilinear upsampling to
the input. No multi-grid, no auxiliary head. 39,633,986 params (Table 4: 38.71M = params / 1,024,000).

DeepLabv3+ (Chen et al. 2018) as the MiniSeg authors built it (`full_code/models/Baselines/
DeepLabs/deeplabv3plus_xception.py`): their modified aligned Xception (entry flow: 3x3 convs
32 /2 and 64, blocks of 128 /4, 256 /8, 728 /16 that end in strided separable convs instead of
max-pools; 16 middle blocks of 728; exit block 728 -> 1024 and separable convs to 1536, 1536,
2048, dilated 2 at output stride 16), ASPP of a 1x1 branch, three 3x3 branches at rates 6, 12,
18 and image pooling (256 channels each, conv-BN-ReLU), a 1x1 projection to 256; decoder: the
stride-4 block-1 feature (128 channels) projected to 48, concatenated with the upsampled
context, two 3x3 conv-BN-ReLU (256) and a 1x1 classifier; all upsampling bilinear with
align_corners=True. 54,607,778 params at 2 classes (Table 4: 53.33M = params / 1,024,000).

DeepLabv3's ASPP module is torchvision's (`torchvision.models.segmentation.deeplabv3.ASPP`), the
same architecture as the paper's (it adds dropout 0.5 after the projection).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet_features
from .layers import ConvBNAct, init_conv_bn, upsample_to
from ._pretrained import imagenet_state_dict
from ._registry import register_model

ASPP_CHANNELS = 256
LOW_LEVEL_CHANNELS = 48
RATES_AT_OS16 = (6, 12, 18)
V3_REFERENCE = "Chen et al., Rethinking Atrous Convolution for Semantic Image Segmentation, arXiv:1706.05587, 2017"
V3PLUS_REFERENCE = (
    "Chen et al., Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation, ECCV 2018"
)


def aspp_rates(output_stride: int) -> tuple[int, ...]:
    """The paper's ASPP rates: (6, 12, 18) at output stride 16, scaled by 16 / output_stride."""
    if output_stride not in (8, 16):
        raise ValueError(f"DeepLab output_stride must be 8 or 16, got {output_stride}")
    return tuple(r * 16 // output_stride for r in RATES_AT_OS16)


class DeepLabV3(nn.Module):
    """Dilated ResNet50 (resnet50_v1b) -> ASPP -> 3x3 conv-BN-ReLU -> dropout -> 1x1 classifier -> upsampling."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 8
    ) -> None:
        # torchvision is imported on first build, not with the registry: it pulls in torch._dynamo (~2 s)
        from torchvision.models.segmentation.deeplabv3 import ASPP

        super().__init__()
        self.backbone = resnet_features(
            50, output_stride, pretrained, in_channels, out_indices=(4,), dilate_first_block=False
        )
        self.aspp = ASPP(self.backbone.channels[-1], list(aspp_rates(output_stride)), ASPP_CHANNELS)
        self.classifier = nn.Sequential(
            ConvBNAct(ASPP_CHANNELS, ASPP_CHANNELS, 3), nn.Dropout(0.1), nn.Conv2d(ASPP_CHANNELS, num_classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top,) = self.backbone(x)
        return upsample_to(self.classifier(self.aspp(top)), x.shape[-2:])


XCEPTION_MIDDLE = 728
XCEPTION_MIDDLE_BLOCKS = 16


def kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal convs and unit BN: the authors' initialisation of the Xception and the ASPP branches."""
    init_conv_bn(module, nn.init.kaiming_normal_)


class SeparableConv2d(nn.Module):
    """Depthwise k x k conv then pointwise 1x1 conv, both bias-free ("same" padding: dilation * (k - 1) / 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, in_channels, 3, stride, padding=dilation, dilation=dilation, groups=in_channels, bias=False
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class XceptionBlock(nn.Module):
    """Aligned-Xception block: `reps` x (ReLU, separable conv, BN), an optional strided separable conv, a skip.

    The channel change happens at the first conv (`grow_first`) or the last; a stride-2 block ends in a
    stride-2 separable conv (no max-pool), and a stride-1 `is_last` block in an extra separable conv.
    The skip is a strided 1x1 conv + BN when the shape changes, else identity. One ReLU module serves
    every activation of the block and is held both by the block and inside `rep`, as the authors'
    file does. With `start_with_relu`, `rep[0]` is that ReLU and its output feeds the skip too (the
    authors' in-place ReLU rectifies the block's input before the skip reads it).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        reps: int,
        stride: int = 1,
        dilation: int = 1,
        start_with_relu: bool = True,
        grow_first: bool = True,
        is_last: bool = False,
    ) -> None:
        super().__init__()
        self.skip: nn.Module | None = None
        if out_channels != in_channels or stride != 1:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.start_with_relu = start_with_relu
        grown = out_channels if grow_first else in_channels
        pairs = [(in_channels, grown)] + [(grown, grown)] * (reps - 1)
        if not grow_first:
            pairs = [(in_channels, in_channels)] * (reps - 1) + [(in_channels, out_channels)]
        layers: list[nn.Module] = []
        for cin, cout in pairs:
            layers += [self.relu, SeparableConv2d(cin, cout, dilation=dilation), nn.BatchNorm2d(cout)]
        if not start_with_relu:
            layers = layers[1:]
        if stride != 1:
            layers.append(SeparableConv2d(out_channels, out_channels, stride=stride))
        elif is_last:
            layers.append(SeparableConv2d(out_channels, out_channels))
        self.rep = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body = self.rep
        if self.start_with_relu:
            x, body = self.rep[0](x), self.rep[1:]
        skip = x if self.skip is None else self.skipbn(self.skip(x))
        return body(x) + skip


def xception_strides(output_stride: int) -> tuple[int, int, tuple[int, int]]:
    """(entry block 3 stride, middle-flow dilation, exit-flow dilations) for output stride 16 or 8."""
    if output_stride == 16:
        return 2, 1, (1, 2)
    if output_stride == 8:
        return 1, 2, (2, 4)
    raise ValueError(f"DeepLabv3+ Xception output_stride must be 8 or 16, got {output_stride}")


class AlignedXception(nn.Module):
    """The authors' modified aligned Xception: entry (3 blocks), middle (16 blocks), exit (block + 3 sep convs).

    Returns (top features, 2048 ch at the output stride; block-1 features, 128 ch at stride 4).
    Module names follow the authors' file, so `load_xception_imagenet` can map ImageNet weights as they did.
    """

    def __init__(self, in_channels: int = 3, output_stride: int = 16) -> None:
        super().__init__()
        entry_stride, middle_dilation, (exit_dilation, top_dilation) = xception_strides(output_stride)
        self.conv1 = nn.Conv2d(in_channels, 32, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = XceptionBlock(64, 128, 2, stride=2, start_with_relu=False)
        self.block2 = XceptionBlock(128, 256, 2, stride=2)
        self.block3 = XceptionBlock(256, XCEPTION_MIDDLE, 2, stride=entry_stride, is_last=True)
        for index in range(4, 4 + XCEPTION_MIDDLE_BLOCKS):
            middle = XceptionBlock(XCEPTION_MIDDLE, XCEPTION_MIDDLE, 3, dilation=middle_dilation)
            self.add_module(f"block{index}", middle)
        self.block20 = XceptionBlock(
            XCEPTION_MIDDLE, 1024, 2, dilation=exit_dilation, grow_first=False, is_last=True
        )
        self.conv3 = SeparableConv2d(1024, 1536, dilation=top_dilation)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, 1536, dilation=top_dilation)
        self.bn4 = nn.BatchNorm2d(1536)
        self.conv5 = SeparableConv2d(1536, 2048, dilation=top_dilation)
        self.bn5 = nn.BatchNorm2d(2048)
        self.out_channels, self.low_level_channels = 2048, 128
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        low_level = self.block1(x)
        x = low_level
        for index in range(2, 21):
            x = getattr(self, f"block{index}")(x)
        for conv, bn in ((self.conv3, self.bn3), (self.conv4, self.bn4), (self.conv5, self.bn5)):
            x = self.relu(bn(conv(x)))
        return x, low_level


# The authors' placement of the original (cadene / timm `legacy_xception`) ImageNet weights:
# key prefix in that model -> prefixes in ours. Other keys load under their own name when ours has it.
XCEPTION_IMAGENET_RENAMES = {
    "block12": ("block20",),
    "block11": ("block12",),
    "bn3": ("bn3", "bn4"),
    "conv4": ("conv5",),
    "bn4": ("bn5",),
}


def xception_imagenet_state(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict:
    """The entries of `source` (legacy Xception weights) placed into `target`'s keys the authors' way.

    A source key is used only when `target` has that same key; it then goes to the renamed key(s).
    """
    placed: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key not in target:
            continue
        prefix, _, rest = key.partition(".")
        for new_prefix in XCEPTION_IMAGENET_RENAMES.get(prefix, (prefix,)):
            placed[f"{new_prefix}.{rest}"] = value.reshape(target[f"{new_prefix}.{rest}"].shape)
    return placed


def load_xception_imagenet(backbone: AlignedXception) -> None:
    """Load timm's `legacy_xception` ImageNet weights (the authors' source) as the authors' file maps them.

    Blocks 1-10, 12 (from the source's 11), 20 (from its exit block, skip excepted), the stem and the exit
    convs get ImageNet weights; block 11, blocks 13-19 and the extra separable convs keep their random init.
    """
    state = backbone.state_dict()
    state.update(xception_imagenet_state(imagenet_state_dict("timm", "legacy_xception"), state))
    backbone.load_state_dict(state)


class ASPPBranch(nn.Sequential):
    """Conv (1x1, or 3x3 at `rate`) -> BN -> ReLU, bias-free: one ASPP branch."""

    def __init__(self, in_channels: int, out_channels: int, rate: int) -> None:
        kernel, padding = (1, 0) if rate == 1 else (3, rate)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, padding=padding, dilation=rate, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class DeepLabV3Plus(nn.Module):
    """The authors' DeepLabv3+: aligned Xception -> ASPP (1x1, three rates, image pooling) -> 1x1 projection;
    decoder fuses a 48-channel projection of the stride-4 feature; convs throughout (no separable ones
    in ASPP or decoder); bilinear upsampling with align_corners=True."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 16
    ) -> None:
        super().__init__()
        self.backbone = AlignedXception(in_channels, output_stride)
        if pretrained:
            load_xception_imagenet(self.backbone)
        top = self.backbone.out_channels
        rates = (1, *aspp_rates(output_stride))
        self.aspp = nn.ModuleList(ASPPBranch(top, ASPP_CHANNELS, rate) for rate in rates)
        kaiming_init(self.aspp)
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(top, ASPP_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(ASPP_CHANNELS),
            nn.ReLU(),
        )
        self.project = nn.Conv2d((len(rates) + 1) * ASPP_CHANNELS, ASPP_CHANNELS, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(ASPP_CHANNELS)
        self.low_level = nn.Conv2d(self.backbone.low_level_channels, LOW_LEVEL_CHANNELS, 1, bias=False)
        self.low_level_bn = nn.BatchNorm2d(LOW_LEVEL_CHANNELS)
        self.relu = nn.ReLU()
        self.decoder = nn.Sequential(
            nn.Conv2d(ASPP_CHANNELS + LOW_LEVEL_CHANNELS, ASPP_CHANNELS, 3, padding=1, bias=False),
            nn.BatchNorm2d(ASPP_CHANNELS),
            nn.ReLU(),
            nn.Conv2d(ASPP_CHANNELS, ASPP_CHANNELS, 3, padding=1, bias=False),
            nn.BatchNorm2d(ASPP_CHANNELS),
            nn.ReLU(),
            nn.Conv2d(ASPP_CHANNELS, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, low = self.backbone(x)
        branches = [branch(top) for branch in self.aspp]
        branches.append(_resize_aligned(self.image_pool(top), top.shape[-2:]))
        context = self.relu(self.project_bn(self.project(torch.cat(branches, dim=1))))
        # the authors' block 2 starts with an in-place ReLU, which also rectifies the low-level feature read here
        low = self.relu(self.low_level_bn(self.low_level(torch.relu(low))))
        quarter = (math.ceil(x.shape[-2] / 4), math.ceil(x.shape[-1] / 4))
        logits = self.decoder(torch.cat([_resize_aligned(context, quarter), low], dim=1))
        return _resize_aligned(logits, x.shape[-2:])


def _resize_aligned(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True (the authors' DeepLabv3+ upsampling)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


@register_model(
    "deeplabv3-resnet50",
    family="deeplab",
    paper_name="DeepLabv3",
    backbone="ResNet50",
    pretrained_backbone=True,
    reference=V3_REFERENCE,
    notes="the authors' build (DeepLabs/deeplabv3.py): resnet50_v1b at output stride 8, ASPP rates (12, 24, 36), "
    "a 3x3 conv-BN-ReLU before the classifier; no multi-grid, no aux head. 39,633,986 params",
    input_multiple=8,
)
def deeplabv3_resnet50(
    num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 8
) -> DeepLabV3:
    """DeepLabv3 with a dilated ResNet50 (`output_stride=16` gives rates 6/12/18)."""
    return DeepLabV3(num_classes, in_channels, pretrained, output_stride)


@register_model(
    "deeplabv3plus-xception",
    family="deeplab",
    paper_name="DeepLabv3+",
    backbone="Xception (authors' modified aligned Xception, 16 middle blocks)",
    pretrained_backbone=True,
    reference=V3PLUS_REFERENCE,
    notes="the authors' build: their modified aligned Xception (no timm/torchvision twin; `pretrained` loads timm "
    "legacy_xception ImageNet weights into it by the authors' renaming, which leaves block 11, blocks 13-19 and the "
    "extra separable convs random; the authors' class defaults to pretrained=False), output stride 16, ASPP rates "
    "1/6/12/18 + image pooling, decoder with regular convs, align_corners=True upsampling",
    input_multiple=16,
)
def deeplabv3plus_xception(
    num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, output_stride: int = 16
) -> DeepLabV3Plus:
    """DeepLabv3+ as the authors built it (54,607,778 params at 2 classes, output stride 16)."""
    return DeepLabV3Plus(num_classes, in_channels, pretrained, output_stride)
