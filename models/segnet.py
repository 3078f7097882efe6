"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017), written from the paper.

Encoder: VGG16's 13 conv layers (conv-BN-ReLU) in 5 stages, each ending in a 2x2
max-pool whose argmax indices are kept. Decoder: the mirror image; each stage first
upsamples by max-unpooling with the matching encoder stage's indices (a sparse map, no
learned upsampling), then densifies it with convs; the last conv maps to the classes.
Random init (Table 4: no ImageNet pretraining). 29.4M params (Table 4: 28.75M).
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNAct
from .registry import register_model

# (convs per stage, channels) of VGG16's conv layers
VGG16_STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def conv_stack(channels: list[int]) -> nn.Sequential:
    """3x3 conv-BN-ReLU layers along the channel list [c0, c1, ..., cn]."""
    return nn.Sequential(*(ConvBNAct(a, b) for a, b in zip(channels[:-1], channels[1:])))


def max_unpool2x(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """2x2 max-unpooling: each value goes back to its argmax position, zeros elsewhere.

    A scatter instead of `F.max_unpool2d`, which torch's tracer (fvcore) rejects.
    """
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, 4 * h * w)
    return out.scatter(2, indices.flatten(2), x.flatten(2)).view(n, c, 2 * h, 2 * w)


class SegNet(nn.Module):
    """VGG16-shaped encoder-decoder with pooling-index unpooling."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = nn.ModuleList()
        previous = in_channels
        for n_convs, width in VGG16_STAGES:
            self.encoder.append(conv_stack([previous] + [width] * n_convs))
            previous = width
        self.decoder = nn.ModuleList()
        outs = [c for _, c in VGG16_STAGES[-2::-1]] + [VGG16_STAGES[0][1]]  # 512, 256, 128, 64, 64
        for (n_convs, width), out in zip(VGG16_STAGES[::-1], outs):
            self.decoder.append(conv_stack([width] * n_convs + [out]))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.classifier = nn.Conv2d(outs[-1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        all_indices = []
        for stage in self.encoder:
            x, indices = self.pool(stage(x))
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
    notes="VGG16-BN-shaped encoder from scratch (Table 4: no pretraining); decoder convs mirror the encoder",
    input_multiple=32,
)
def segnet(num_classes: int = 2, in_channels: int = 3) -> SegNet:
    """SegNet with max-unpooling by the encoder's pooling indices."""
    return SegNet(num_classes, in_channels)
