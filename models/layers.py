"""Building blocks shared by several model files (no block is written twice)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def upsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to `size` (H, W) with align_corners=False; a no-op when already there."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvBNAct(nn.Sequential):
    """k x k conv (bias-free unless `bias`) -> BN -> activation; padding keeps the size at stride 1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
        bias: bool = False,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6) else act())
        super().__init__(*layers)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: (g, C/g) channel grid transposed, so each group sees every group."""
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"channel_shuffle: {c} channels do not split into {groups} groups")
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelGate(nn.Module):
    """Global average pool -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid: squeeze-excite channel weights (N, out, 1, 1)
    (DFN's channel attention block)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, out_channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Non-local aggregation: out[:, :, q] = sum_k softmax_k(scale * query_q . key_k) value_k.

    query (N, Ck, Lq), key (N, Ck, Lk), value (N, Cv, Lk) -> (N, Cv, Lq); shared by DANet's position
    attention, OCNet's object context and ANN's asymmetric blocks.
    """
    weights = torch.softmax(torch.bmm(query.transpose(1, 2), key) * scale, dim=-1)
    return torch.bmm(value, weights.transpose(1, 2))


def pyramid_sample(x: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Adaptive average pools to s x s for each s, flattened and joined: (N, C, sum s^2) anchor points."""
    return torch.cat([F.adaptive_avg_pool2d(x, s).flatten(2) for s in sizes], dim=2)


def resize_to(
    x: torch.Tensor, size: Sequence[int], mode: str = "bilinear", align_corners: bool | None = None
) -> torch.Tensor:
    """Resize to `size` (H, W) with the given mode; a no-op when already there.

    For decoders whose papers upsample by exactly 2 (bilinear with align_corners=True, or nearest):
    resizing to the skip's size gives the same result at multiples of the stride and still works
    at other input sizes.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=align_corners)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an (N, C, H, W) map, with per-channel affine (ConvNeXt's channels_first)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).square().mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def init_conv_bn(
    module: nn.Module,
    conv_init: Callable[[torch.Tensor], object],
    bn_weight_init: Callable[[torch.Tensor], object] = nn.init.ones_,
) -> None:
    """The release files' init loop: `conv_init` on every Conv2d weight, `bn_weight_init` on every
    BatchNorm2d weight and zero BN biases (conv biases keep torch's), in module order."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            conv_init(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            bn_weight_init(m.weight)
            nn.init.zeros_(m.bias)
