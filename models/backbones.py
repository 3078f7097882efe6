"""Classification backbones as multi-scale feature extractors (shared by the paper's baselines).

Every builder returns a `FeatureExtractor`: `forward(x)` gives a list of feature maps,
fine to coarse, and `.channels` / `.reductions` say each map's channel count and its
stride relative to the input. Random initialisation by default; `pretrained=True`
loads ImageNet weights through models._pretrained (torchvision's / timm's caches, offline-safe).

    feats = resnet_features(depth=50, output_stride=8)   # dilated ResNet50 (PSPNet, DeepLabv3)
    feats.channels   -> (256, 512, 1024, 2048)
    feats.reductions -> (4, 8, 8, 8)
    c1, c2, c3, c4 = feats(x)

Stage indices of `resnet_features`: 0 = stem (conv1-bn-relu, /2, 64 ch), 1 = maxpool +
layer1 (/4), 2 = layer2 (/8), 3 = layer3 (/16), 4 = layer4 (/32); `output_stride` 16 or 8
turns the stride of layer4 (and layer3) into dilation 2 (and 4): by default every 3x3 conv of
a dilated layer gets the dilation, for basic (ResNet18/34) and bottleneck blocks alike;
`dilate_first_block=False` keeps the first block of each dilated layer at half the dilation
(torchvision's `replace_stride_with_dilation`, gluon-cv's `resnetXX_v1b`).
Stages past the last requested index are not built, so they add no parameters.

The MiniSeg authors' baselines use three ResNet layouts, all with torchvision's parameters:
`resnet_v1b_features` (their `resnetXX_v1b`: output stride 8, no fc), `caffe_resnet_features`
(PSPNet's file: stride in the first 1x1 conv, ceil-mode max-pool, every block dilated) and
`torchvision_resnet` (the whole classifier, fc included: DFN holds it and counts its fc).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ._pretrained import timm_model, torchvision_model

__all__ = [
    "FeatureExtractor",
    "torchvision_resnet",
    "resnet_extractor",
    "resnet_features",
    "resnet_v1b_features",
    "caffe_resnet_features",
    "vgg_features",
    "timm_features",
    "adapt_first_conv",
    "dilate_layer",
]

RESNET_DEPTHS = (18, 34, 50, 101, 152)
VGG_DEPTHS = (11, 13, 16, 19)
# dilation of layer3 and layer4 for each output stride (their stride-2 convs become stride 1)
_DILATION_FOR_STRIDE = {32: (1, 1), 16: (1, 2), 8: (2, 4)}


class FeatureExtractor(nn.Module):
    """Runs `stages` in sequence and returns the outputs of the stages in `out_indices`."""

    def __init__(
        self,
        stages: Sequence[nn.Module],
        channels: Sequence[int],
        reductions: Sequence[int],
        out_indices: Sequence[int],
    ) -> None:
        super().__init__()
        _check_indices(out_indices, len(channels))
        last = max(out_indices)
        self.stages = nn.ModuleList(stages[: last + 1])
        self.out_indices = tuple(out_indices)
        self.channels = tuple(channels[i] for i in out_indices)
        self.reductions = tuple(reductions[i] for i in out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                feats.append(x)
        return feats


class _TimmFeatures(nn.Module):
    """A timm `features_only` model behind the `FeatureExtractor` interface."""

    def __init__(self, model: nn.Module, reductions: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        self.channels = tuple(model.feature_info.channels())
        self.reductions = tuple(reductions)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x))


def _check_indices(out_indices: Sequence[int], n_stages: int) -> None:
    """Reject empty, unsorted or out-of-range stage indices."""
    if not out_indices or list(out_indices) != sorted(set(out_indices)):
        raise ValueError(f"out_indices must be increasing and non-empty, got {tuple(out_indices)}")
    if out_indices[0] < 0 or out_indices[-1] >= n_stages:
        raise ValueError(f"out_indices {tuple(out_indices)} outside 0..{n_stages - 1}")


def adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of `conv` taking `in_channels`; weights are the RGB mean, rescaled, so pretrained stems still fit."""
    if in_channels == conv.in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.repeat(1, in_channels, 1, 1) * (conv.in_channels / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def dilate_layer(layer: nn.Module, dilation: int, first_dilation: int | None = None) -> None:
    """Replace the stride-2 downsampling of a ResNet layer by `dilation` in its 3x3 convs (in place).

    The first block's 3x3 convs get `first_dilation` (default: `dilation`, every block alike).
    """
    if dilation == 1:
        return
    for index, block in enumerate(layer.children()):
        rate = dilation if index or first_dilation is None else first_dilation
        for module in block.modules():
            if isinstance(module, nn.Conv2d):
                module.stride = (1, 1)
                if module.kernel_size == (3, 3):
                    module.dilation = (rate, rate)
                    module.padding = (rate, rate)


def _stage_reductions(base: Sequence[int], output_stride: int) -> tuple[int, ...]:
    """Nominal strides capped at the output stride (dilated stages keep the resolution)."""
    return tuple(min(r, output_stride) for r in base)


def torchvision_resnet(depth: int = 50, pretrained: bool = False, in_channels: int = 3) -> nn.Module:
    """The whole torchvision ResNet-`depth` (avgpool and fc included), its stem taking `in_channels`."""
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"ResNet depth must be one of {RESNET_DEPTHS}, got {depth}")
    net = torchvision_model(f"resnet{depth}", pretrained, "IMAGENET1K_V1")
    net.conv1 = adapt_first_conv(net.conv1, in_channels)
    return net


def _check_output_stride(output_stride: int) -> None:
    """Reject output strides the dilation table does not know."""
    if output_stride not in _DILATION_FOR_STRIDE:
        raise ValueError(f"output_stride must be one of {sorted(_DILATION_FOR_STRIDE)}, got {output_stride}")


def resnet_extractor(net: nn.Module, depth: int, output_stride: int, out_indices: Sequence[int]) -> FeatureExtractor:
    """A torchvision ResNet's stem and layer1..4 as a `FeatureExtractor` holding the same module instances
    (the fc is left out; `net` can keep holding them, as the release's DFN does)."""
    stages = [
        nn.Sequential(net.conv1, net.bn1, net.relu),
        nn.Sequential(net.maxpool, net.layer1),
        net.layer2,
        net.layer3,
        net.layer4,
    ]
    expansion = 4 if depth >= 50 else 1
    channels = (64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion)
    reductions = _stage_reductions((2, 4, 8, 16, 32), output_stride)
    return FeatureExtractor(stages, channels, reductions, out_indices)


def resnet_features(
    depth: int = 50,
    output_stride: int = 32,
    pretrained: bool = False,
    in_channels: int = 3,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    *,
    dilate_first_block: bool = True,
) -> FeatureExtractor:
    """torchvision ResNet-`depth` split into stem/layer1..4, dilated to `output_stride` (32, 16 or 8).

    `dilate_first_block=False`: the first block of a dilated layer keeps half the layer's dilation
    (torchvision's and gluon-cv's pattern) instead of the full one.
    """
    _check_output_stride(output_stride)
    net = torchvision_resnet(depth, pretrained, in_channels)
    for layer, dilation in zip((net.layer3, net.layer4), _DILATION_FOR_STRIDE[output_stride]):
        dilate_layer(layer, dilation, None if dilate_first_block else max(dilation // 2, 1))
    return resnet_extractor(net, depth, output_stride, out_indices)


def resnet_v1b_features(
    depth: int = 50, pretrained: bool = False, in_channels: int = 3, out_indices: Sequence[int] = (1, 2, 3, 4)
) -> FeatureExtractor:
    """The release's `resnetXX_v1b` (Others/resnetv1b.py): torchvision's ResNet without fc, layer3 / layer4
    dilated 2 / 4 (output stride 8), the first block of each at the previous layer's dilation."""
    return resnet_features(depth, 8, pretrained, in_channels, out_indices, dilate_first_block=False)


def caffe_resnet_features(
    depth: int = 101, pretrained: bool = False, in_channels: int = 3, out_indices: Sequence[int] = (1, 2, 3, 4)
) -> FeatureExtractor:
    """The ResNet of the release's PSPNet.py (Caffe/MSRA layout) at output stride 8, with torchvision's parameters.

    Unlike torchvision's: layer2's stride 2 sits in its first block's 1x1 conv (not the 3x3), the max-pool
    rounds up (ceil mode: 512 px give 65 x 65 maps), and every block of layer3 / layer4 is dilated 2 / 4.
    """
    net = torchvision_resnet(depth, pretrained, in_channels)
    for layer, dilation in zip((net.layer3, net.layer4), _DILATION_FOR_STRIDE[8]):
        dilate_layer(layer, dilation)
    net.maxpool.ceil_mode = True
    first = net.layer2[0]
    first.conv1.stride, first.conv2.stride = (2, 2), (1, 1)
    return resnet_extractor(net, depth, 8, out_indices)


def vgg_features(
    depth: int = 16,
    batch_norm: bool = False,
    pretrained: bool = False,
    in_channels: int = 3,
    out_indices: Sequence[int] = (0, 1, 2, 3, 4),
) -> FeatureExtractor:
    """torchvision VGG-`depth` conv layers split after each max-pool: pool1..pool5 (/2../32)."""
    if depth not in VGG_DEPTHS:
        raise ValueError(f"VGG depth must be one of {VGG_DEPTHS}, got {depth}")
    name = f"vgg{depth}_bn" if batch_norm else f"vgg{depth}"
    net = torchvision_model(name, pretrained, "IMAGENET1K_V1")
    layers = list(net.features)
    layers[0] = adapt_first_conv(layers[0], in_channels)
    stages, current = [], []
    for layer in layers:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
    return FeatureExtractor(stages, (64, 128, 256, 512, 512), (2, 4, 8, 16, 32), out_indices)


def timm_features(
    name: str,
    output_stride: int = 32,
    pretrained: bool = False,
    in_channels: int = 3,
    out_indices: Sequence[int] | None = None,
) -> nn.Module:
    """Any timm model with `features_only=True` (e.g. 'xception65'), same interface as above."""
    kwargs = {"out_indices": tuple(out_indices)} if out_indices is not None else {}
    if output_stride != 32:
        kwargs["output_stride"] = output_stride
    model = timm_model(name, pretrained, features_only=True, in_chans=in_channels, **kwargs)
    return _TimmFeatures(model, _stage_reductions(model.feature_info.reduction(), output_stride))
