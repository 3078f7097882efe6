"""ENet (Paszke et al., "ENet: A Deep Neural Network Architecture for Real-Time Semantic
Segmentation", arXiv 1606.02147, 2016) as the MiniSeg release builds it
(`full_code/models/Baselines/ENet.py`).

Initial block: a 3x3 stride-2 conv (13 filters for RGB, with bias) -> BN -> PReLU beside a 2x2
max-pool of the input, concatenated to 16 channels. Bottlenecks: a projection to a quarter of
the OUTPUT channels (1x1, or 2x2 stride 2 when down-sampling), a middle conv (3x3 regular or
dilated, 5x1 + 1x5 asymmetric, or a 3x3 stride-2 transposed conv when up-sampling) and a 1x1
expansion, each -> BN -> activation (PReLU in the encoder, ReLU in the decoder), added to the
main branch (identity; max-pool + zero channels when down-sampling; 1x1 conv-BN + max-unpool
with the pooling indices when up-sampling), then a (functional) ReLU. The middle convs carry a
bias (the 5x1 of the asymmetric pair does not); BN eps 1e-3. The release builds a spatial
dropout in each bottleneck but never applies it, so there is none here. Output: a 2x2
stride-2 transposed conv (with bias) to the classes at full resolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model

ENET_BN_EPS = 1e-3
# Stages 2 and 3 (Table 1): (middle conv kind, dilation) of bottlenecks x.1 .. x.8.
STAGE2_3 = (
    ("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
    ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16),
)  # fmt: skip


def _act(channels: int, relu: bool) -> nn.Module:
    """PReLU (one slope per channel) in the encoder, ReLU in the decoder."""
    return nn.ReLU() if relu else nn.PReLU(channels)


def _conv_bn_act(conv: nn.Module, channels: int, relu: bool) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels, eps=ENET_BN_EPS), _act(channels, relu))


def _middle(kind: str, channels: int, dilation: int = 1) -> nn.Module:
    """The bottleneck's middle conv for `kind` in regular / dilated / asymmetric / down / up."""
    if kind == "asymmetric":
        return nn.Sequential(
            nn.Conv2d(channels, channels, (5, 1), padding=(2, 0), bias=False),
            nn.Conv2d(channels, channels, (1, 5), padding=(0, 2)),
        )
    if kind == "up":
        return nn.ConvTranspose2d(channels, channels, 3, 2, 1, output_padding=1)
    if kind in ("regular", "dilated", "down"):
        return nn.Conv2d(channels, channels, 3, 1, dilation, dilation)
    raise ValueError(f"unknown ENet bottleneck kind {kind!r}")


class Extension(nn.Sequential):
    """The bottleneck's extension branch: projection -> middle conv -> 1x1 expansion, each -> BN -> activation."""

    def __init__(self, in_ch: int, out_ch: int, kind: str, dilation: int = 1, relu: bool = False) -> None:
        internal = out_ch // 4
        stride = 2 if kind == "down" else 1
        super().__init__(
            _conv_bn_act(nn.Conv2d(in_ch, internal, stride, stride, bias=False), internal, relu),
            _conv_bn_act(_middle(kind, internal, dilation), internal, relu),
            _conv_bn_act(nn.Conv2d(internal, out_ch, 1, bias=False), out_ch, relu),
        )


class InitialBlock(nn.Module):
    """3x3 stride-2 conv (out - in filters) -> BN -> PReLU, beside a 2x2 max-pool of the input, concatenated."""

    def __init__(self, in_ch: int, out_ch: int = 16) -> None:
        super().__init__()
        if in_ch >= out_ch:
            raise ValueError(f"ENet's initial block needs fewer than {out_ch} input channels, got {in_ch}")
        self.conv = nn.Conv2d(in_ch, out_ch - in_ch, 3, 2, 1)
        self.bn = nn.BatchNorm2d(out_ch - in_ch, eps=ENET_BN_EPS)
        self.act = nn.PReLU(out_ch - in_ch)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.act(self.bn(self.conv(x))), self.pool(x)], 1)


class Bottleneck(nn.Module):
    """Regular / dilated / asymmetric bottleneck: ReLU(input + extension)."""

    def __init__(self, channels: int, kind: str = "regular", dilation: int = 1, relu: bool = False) -> None:
        super().__init__()
        self.branch = Extension(channels, channels, kind, dilation, relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.branch(x))


class DownBottleneck(nn.Module):
    """Down-sampling bottleneck: 2x2 stride-2 projection; main branch max-pool (indices kept) + zero channels."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.branch = Extension(in_ch, out_ch, "down")
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the output and the max-pool's flat indices into the input's H x W."""
        main, indices = self.pool(x)
        ext = self.branch(x)
        main = F.pad(main, (0, 0, 0, 0, 0, ext.shape[1] - main.shape[1]))
        return F.relu(main + ext), indices


class UpBottleneck(nn.Module):
    """Up-sampling bottleneck (decoder, ReLU): 3x3 stride-2 transposed conv; main branch 1x1 conv-BN + max-unpool."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.branch = Extension(in_ch, out_ch, "up", relu=True)
        self.main = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch, eps=ENET_BN_EPS))

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        ext = self.branch(x)
        return F.relu(max_unpool(self.main(x), indices, ext.shape[-2:]) + ext)


def max_unpool(x: torch.Tensor, indices: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Place each value at its max-pool index in a zero map of `size` (MaxUnpool2d, but traceable by fvcore)."""
    n, c = x.shape[:2]
    out = x.new_zeros(n, c, size[0] * size[1])
    return out.scatter(2, indices.flatten(2), x.flatten(2)).view(n, c, size[0], size[1])


class ENet(nn.Module):
    """ENet: initial block, stages 1-3 (encoder, 1/8), stages 4-5 (decoder), full-resolution transposed conv."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.initial = InitialBlock(in_channels, 16)
        self.down1 = DownBottleneck(16, 64)
        self.stage1 = nn.Sequential(*(Bottleneck(64) for _ in range(4)))
        self.down2 = DownBottleneck(64, 128)
        self.stage2 = nn.Sequential(*(Bottleneck(128, kind, d) for kind, d in STAGE2_3))
        self.stage3 = nn.Sequential(*(Bottleneck(128, kind, d) for kind, d in STAGE2_3))
        self.up4 = UpBottleneck(128, 64)
        self.stage4 = nn.Sequential(Bottleneck(64, relu=True), Bottleneck(64, relu=True))
        self.up5 = UpBottleneck(64, 16)
        self.stage5 = Bottleneck(16, relu=True)
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, indices1 = self.down1(self.initial(x))
        x, indices2 = self.down2(self.stage1(x))
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.up4(x, indices2))
        x = self.stage5(self.up5(x, indices1))
        return self.fullconv(x)


@register_model(
    "enet",
    family="enet",
    paper_name="ENet",
    reference="Paszke et al., ENet: A Deep Neural Network Architecture for Real-Time Semantic Segmentation, arXiv 1606.02147, 2016",
    notes="the release's ENet.py (363,197 params at 2 classes): bottleneck width = output channels / 4, biased "
    "middle convs, ReLU decoder, no spatial dropout (built but never applied there), 2x2 transposed-conv output",
    input_multiple=8,
    min_input_size=32,
)
def enet(num_classes: int = 2, in_channels: int = 3) -> ENet:
    """ENet, the release's build."""
    return ENet(num_classes, in_channels)
