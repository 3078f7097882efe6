"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017) as the MiniSeg authors built it.

Encoder: VGG16's 13 conv layers (3x3 conv with bias -> BN -> ReLU) in 5 stages, each ending
in a 2x2 max-pool whose argmax indices are kept. Decoder: the mirror image; each stage first
upsamples by max-unpooling with the matching encoder stage's indices (a sparse map, no
learned upsampling), then densifies it with conv-BN-ReLU layers, the last of which maps to
the next stage's width. In the first stage's mirror the last conv is the 3x3 classifier
(with bias, no BN), as in the authors' `full_code/models/Baselines/SegNet.py`; their ReLUs
and pools are functional calls, kept so here. Random init (trained from scratch).
29,444,162 params at 2 classes (Table 4: 28.75M = params / 1,024,000).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model

# (convs per stage, channels) of VGG16's conv layers
VGG16_STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


class ConvBN(nn.Sequential):
    """3x3 conv (with bias) -> BN; the ReLU is applied by the caller (functional, as the authors)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels))


class ConvStack(nn.ModuleList):
    """3x3 conv-BN-ReLU layers along the channel list [c0, c1, ..., cn]."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__(ConvBN(a, b) for a, b in zip(channels[:-1], channels[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = F.relu(layer(x))
        return x


def max_unpool2x(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """2x2 max-unpooling: each value goes back to its argmax position, zeros elsewhere.

    A scatter instead of `F.max_unpool2d`, which torch's tracer (fvcore) rejects.
    """
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, 4 * h * w)
    return out.scatter(2, indices.flatten(2), x.flatten(2)).view(n, c, 2 * h, 2 * w)


def decoder_channels() -> list[list[int]]:
    """Channel lists of the decoder stages, coarse to fine: the mirror of each encoder stage.

    Stage k keeps its width for all but its last conv, which maps to stage k-1's width; the finest
    stage's last conv is the classifier, so its list stops before it.
    """
    widths = [w for _, w in VGG16_STAGES]
    stacks = []
    for k in range(len(VGG16_STAGES) - 1, 0, -1):
        n_convs, width = VGG16_STAGES[k]
        stacks.append([width] * n_convs + [widths[k - 1]])
    n_convs, width = VGG16_STAGES[0]
    stacks.append([width] * n_convs)
    return stacks


class SegNet(nn.Module):
    """VGG16-shaped encoder-decoder with pooling-index unpooling."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = nn.ModuleList()
        previous = in_channels
        for n_convs, width in VGG16_STAGES:
            self.encoder.append(ConvStack([previous] + [width] * n_convs))
            previous = width
        self.decoder = nn.ModuleList(ConvStack(channels) for channels in decoder_channels())
        self.classifier = nn.Conv2d(VGG16_STAGES[0][1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        all_indices = []
        for stage in self.encoder:
            x, indices = F.max_pool2d(stage(x), 2, 2, return_indices=True)
            all_indices.append(indices)
        for stage, indices in zip(self.decoder, reversed(all_indices)):
            x = stage(max_unpool2x(x, indices))
        return self.classifier(x)


@register_model(
    "segnet",
    family="segnet",
    paper_name="SegNet",
    reference="Badrinarayanan, Kendall & Cipolla, SegNet: A Deep Convolutional Encoder-Decoder Architecture "
    "for Image Segmentation, TPAMI 2017",
    notes="the authors' build: VGG16-BN-shaped encoder from scratch, convs with bias; the decoder mirrors the "
    "encoder and its last conv is the 3x3 classifier",
    input_multiple=32,
)
def segnet(num_classes: int = 2, in_channels: int = 3) -> SegNet:
    """SegNet with max-unpooling by the encoder's pooling indices (29,444,162 params at 2 classes)."""
    return SegNet(num_classes, in_channels)
