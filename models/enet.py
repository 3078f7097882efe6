"""ENet (Paszke et al., "ENet: A Deep Neural Network Architecture for Real-Time Semantic
Segmentation", arXiv 1606.02147, 2016), written from the paper's Table 1 and Figure 2.

Initial block: a 3x3 stride-2 conv with 13 filters beside a 2x2 max-pool of the input,
concatenated to 16 channels. Bottlenecks: 1x1 projection (2x2 stride-2 conv when
downsampling) to a quarter of the input channels, a main conv (3x3 regular or dilated,
5x1 + 1x5 asymmetric, or a 3x3 stride-2 transposed conv when upsampling), 1x1 expansion,
spatial dropout, added to the main branch (max-pool with zero-padded channels when
downsampling; 1x1 conv + max-unpool with the pooling indices when upsampling). PReLU
everywhere; no bias in the convs. Output: a full-resolution transposed conv to the classes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model

# Stages 2 and 3 (Table 1): (main conv kind, dilation) of bottlenecks x.1 .. x.8.
STAGE2_3 = (
    ("conv", 1), ("conv", 2), ("asymmetric", 1), ("conv", 4),
    ("conv", 1), ("conv", 8), ("asymmetric", 1), ("conv", 16),
)  # fmt: skip


class InitialBlock(nn.Module):
    """3x3 stride-2 conv (out - in filters: 13 for RGB) beside a 2x2 max-pool of the input -> concat -> BN -> PReLU."""

    def __init__(self, in_ch: int, out_ch: int = 16) -> None:
        super().__init__()
        if in_ch >= out_ch:
            raise ValueError(f"ENet's initial block needs fewer than {out_ch} input channels, got {in_ch}")
        self.conv = nn.Conv2d(in_ch, out_ch - in_ch, 3, 2, 1, bias=False)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


def _branch(first: nn.Module, middle: nn.Module, internal: int, out_ch: int, dropout: float) -> nn.Sequential:
    """The bottleneck's extension branch: projection -> main conv -> 1x1 expansion -> spatial dropout."""
    return nn.Sequential(
        first, nn.BatchNorm2d(internal), nn.PReLU(internal),
        middle, nn.BatchNorm2d(internal), nn.PReLU(internal),
        nn.Conv2d(internal, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.Dropout2d(dropout),
    )  # fmt: skip


def _middle(kind: str, channels: int, dilation: int) -> nn.Module:
    """The bottleneck's main conv: 3x3 (dilated) or asymmetric 5x1 then 1x5."""
    if kind == "asymmetric":
        return nn.Sequential(
            nn.Conv2d(channels, channels, (5, 1), padding=(2, 0), bias=False),
            nn.Conv2d(channels, channels, (1, 5), padding=(0, 2), bias=False),
        )
    return nn.Conv2d(channels, channels, 3, 1, dilation, dilation, bias=False)


class Bottleneck(nn.Module):
    """Regular / dilated / asymmetric bottleneck with an identity main branch."""

    def __init__(self, channels: int, kind: str = "conv", dilation: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        internal = channels // 4
        first = nn.Conv2d(channels, internal, 1, bias=False)
        self.branch = _branch(first, _middle(kind, internal, dilation), internal, channels, dropout)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.branch(x))


class DownBottleneck(nn.Module):
    """Downsampling bottleneck: 2x2 stride-2 projection; main branch max-pool (indices kept) + zero channels."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float) -> None:
        super().__init__()
        internal = in_ch // 4
        first = nn.Conv2d(in_ch, internal, 2, 2, bias=False)
        self.branch = _branch(first, _middle("conv", internal, 1), internal, out_ch, dropout)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the output and the max-pool's flat indices into the input's H x W."""
        main, indices = self.pool(x)
        ext = self.branch(x)
        main = F.pad(main, (0, 0, 0, 0, 0, ext.shape[1] - main.shape[1]))
        return self.act(main + ext), indices


class UpBottleneck(nn.Module):
    """Upsampling bottleneck: 3x3 stride-2 transposed conv; main branch 1x1 conv + max-unpool with the saved indices."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float) -> None:
        super().__init__()
        internal = in_ch // 4
        up = nn.ConvTranspose2d(internal, internal, 3, 2, 1, output_padding=1, bias=False)
        self.branch = _branch(nn.Conv2d(in_ch, internal, 1, bias=False), up, internal, out_ch, dropout)
        self.main = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        ext = self.branch(x)
        return self.act(max_unpool(self.main(x), indices, ext.shape[-2:]) + ext)


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
        self.down1 = DownBottleneck(16, 64, 0.01)
        self.stage1 = nn.Sequential(*(Bottleneck(64, dropout=0.01) for _ in range(4)))
        self.down2 = DownBottleneck(64, 128, 0.1)
        self.stage2 = nn.Sequential(*(Bottleneck(128, kind, d) for kind, d in STAGE2_3))
        self.stage3 = nn.Sequential(*(Bottleneck(128, kind, d) for kind, d in STAGE2_3))
        self.up4 = UpBottleneck(128, 64, 0.1)
        self.stage4 = nn.Sequential(Bottleneck(64), Bottleneck(64))
        self.up5 = UpBottleneck(64, 16, 0.1)
        self.stage5 = Bottleneck(16)
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 3, 2, 1, output_padding=1)

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
    notes="written from the paper; output at input size via the final stride-2 transposed conv",
    input_multiple=8,
    min_input_size=32,
)
def enet(num_classes: int = 2, in_channels: int = 3) -> ENet:
    """ENet (359,361 params with 2 classes; paper 0.36M)."""
    return ENet(num_classes, in_channels)
