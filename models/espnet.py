"""ESPNet (Mehta et al., ECCV 2018) and ESPNetv2 (Mehta et al., CVPR 2019) as the MiniSeg release builds them
(`full_code/models/Baselines/ESPNet.py` with p=2, q=8 and `ESPNetv2.py` with s=1).

ESP module: a 1x1 conv (3x3 stride 2 when down-sampling) reduces the input to d = N/5
channels, five 3x3 convs with dilations 1, 2, 4, 8, 16 follow (the dilation-1 branch gives
the remainder N - 4d), hierarchical feature fusion (HFF: each dilated output adds the sum of
the smaller dilations' outputs; the dilation-1 branch stays out of the sums), concatenation,
a residual add (non-strided) and BN + per-channel PReLU. ESPNet's decoder (the paper's
Fig. 4d, "RUM") projects levels 3 and 2 to the classes, upsamples with 2x2 transposed convs
and merges level 1 with a 3x3 conv-BN-PReLU before a bias-free 2x2 transposed-conv classifier.

ESPNetv2's EESP unit: grouped 1x1 reduction (K = 4 groups) to d = N/K, K depthwise 3x3 convs
whose dilations follow the stage's receptive-field limit, HFF over all K branches, BN + PReLU,
a grouped 1x1 expansion (K groups) + BN, a residual where shapes allow, and a PReLU. The
strided unit (inside the down-sampler) returns before that PReLU, which the release still
builds. Down-sampler: average pool of the input beside a strided EESP, concatenated, plus a
projection of the average-pooled input image, then PReLU. The segmentation head merges levels
4 -> 3 (EESP + pyramid of pooled depthwise convs) -> 2 -> 1 at the classes' width.

Every PReLU has one slope per channel, as in the release (issue 16: a single shared slope in
front of a bias-free classifier can trap a 2-class output in one class).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import upsample_to
from ._registry import register_model

ESP_DILATIONS = (1, 2, 4, 8, 16)
ESPNET_BN_EPS = 1e-3  # ESPNet's and CGNet's release files use BN eps 1e-3 throughout


class ConvBNPReLU(nn.Sequential):
    """k x k conv (bias-free, size-preserving padding) -> BN -> PReLU with one slope per output channel."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1, eps: float = 1e-5
    ) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch, eps=eps),
            nn.PReLU(out_ch),
        )


class BNPReLU(nn.Sequential):
    """BN -> per-channel PReLU, applied after concatenations."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__(nn.BatchNorm2d(channels, eps=eps), nn.PReLU(channels))


class InputPyramid(nn.Sequential):
    """The input image average-pooled `times` times by 3x3 stride 2 (input reinforcement / injection).

    Pooling modules (not functional pools), as in the release, so that its FLOP counter sees them.
    """

    def __init__(self, times: int) -> None:
        super().__init__(*(nn.AvgPool2d(3, 2, 1) for _ in range(times)))


def cumulative_sums(branches: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Hierarchical feature fusion: output k is the sum of branches 1..k."""
    fused = [branches[0]]
    for b in branches[1:]:
        fused.append(fused[-1] + b)
    return fused


class ESPModule(nn.Module):
    """ESP: reduce -> 5 dilated 3x3 convs -> HFF -> concat (+ input when not strided) -> BN -> PReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        d = out_ch // len(ESP_DILATIONS)
        first = out_ch - (len(ESP_DILATIONS) - 1) * d
        self.residual = stride == 1 and in_ch == out_ch
        kernel = 3 if stride == 2 else 1
        self.reduce = nn.Conv2d(in_ch, d, kernel, stride, kernel // 2, bias=False)
        self.branches = nn.ModuleList(
            nn.Conv2d(d, first if i == 0 else d, 3, 1, r, r, bias=False) for i, r in enumerate(ESP_DILATIONS)
        )
        self.post = BNPReLU(out_ch, ESPNET_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        branches = [conv(reduced) for conv in self.branches]
        out = torch.cat([branches[0], *cumulative_sums(branches[1:])], 1)
        return self.post(out + x if self.residual else out)


def _deconv2x(channels: int) -> nn.ConvTranspose2d:
    """A bias-free 2x2 stride-2 transposed conv (ESPNet's upsampling)."""
    return nn.ConvTranspose2d(channels, channels, 2, 2, bias=False)


class ESPNet(nn.Module):
    """ESPNet (p, q): ESPNet-C encoder at 1/8 with input reinforcement, the RUM decoder to full size."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, p: int = 2, q: int = 8) -> None:
        super().__init__()
        eps = ESPNET_BN_EPS
        c1, c2, c3 = 16 + in_channels, 64 * 2 + in_channels, 128 * 2
        self.level1 = ConvBNPReLU(in_channels, 16, 3, 2, eps=eps)
        self.sample1, self.sample2 = InputPyramid(1), InputPyramid(2)
        self.b1 = BNPReLU(c1, eps)
        self.level2_0 = ESPModule(c1, 64, 2)
        self.level2 = nn.Sequential(*(ESPModule(64, 64) for _ in range(p)))
        self.b2 = BNPReLU(c2, eps)
        self.level3_0 = ESPModule(c2, 128, 2)
        self.level3 = nn.Sequential(*(ESPModule(128, 128) for _ in range(q)))
        self.b3 = BNPReLU(c3, eps)
        # Decoder: level 3 -> classes (conv, BN) -> 2x up; level 2 -> classes (conv); merge (BR, 1x1 conv, BR) -> 2x up.
        self.proj3 = nn.Conv2d(c3, num_classes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(num_classes, eps=eps)
        self.up3 = _deconv2x(num_classes)
        self.proj2 = nn.Conv2d(c2, num_classes, 1, bias=False)
        self.merge2 = nn.Sequential(
            BNPReLU(2 * num_classes, eps), nn.Conv2d(2 * num_classes, num_classes, 1), BNPReLU(num_classes, eps)
        )
        self.up2 = nn.Sequential(_deconv2x(num_classes), BNPReLU(num_classes, eps))
        # The last conv-BN-PReLU before the bias-free classifier: one PReLU slope per class channel.
        self.merge1 = ConvBNPReLU(c1 + num_classes, num_classes, 3, eps=eps)
        self.classifier = _deconv2x(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.b1(torch.cat([self.level1(x), self.sample1(x)], 1))
        down2 = self.level2_0(f1)
        f2 = self.b2(torch.cat([self.level2(down2), down2, self.sample2(x)], 1))
        down3 = self.level3_0(f2)
        f3 = self.b3(torch.cat([down3, self.level3(down3)], 1))
        y = self.up3(self.bn3(self.proj3(f3)))
        y = self.up2(self.merge2(torch.cat([self.proj2(f2), y], 1)))
        y = self.classifier(self.merge1(torch.cat([y, f1], 1)))
        return upsample_to(y, x.shape[-2:])


@register_model(
    "espnet",
    family="espnet",
    paper_name="ESPNet",
    reference="Mehta et al., ESPNet: Efficient Spatial Pyramid of Dilated Convolutions for Semantic Segmentation, ECCV 2018",
    notes="the release's ESPNet.py (p=2, q=8): ESPNet-C encoder + RUM decoder, 345,573 params at 2 classes; "
    "BN eps 1e-3 and per-channel PReLUs as there (an earlier build of ours had shared single-slope PReLUs in "
    "level 1 and in the last conv-BN-PReLU, and an ESP module in the decoder: 345,565 params; issue 16)",
    input_multiple=8,
    min_input_size=32,
)
def espnet(num_classes: int = 2, in_channels: int = 3) -> ESPNet:
    """ESPNet with its RUM decoder (p=2, q=8), the release's build."""
    return ESPNet(num_classes, in_channels)


# ESPNetv2 at s = 1 (release EESPNet config): widths of levels 1-4 (strides 2/4/8/16).
ESPNETV2_WIDTHS = (32, 64, 128, 256)
ESPNETV2_RLIMS = (13, 11, 9, 7)  # receptive-field limit of EESP dilations per spatial level (levels 2-5)
ESPNETV2_REPEATS = (3, 7)  # EESP units after the down-samplers of levels 3 and 4
EESP_BRANCHES = 4
ESPNETV2_DROPOUT = 0.2  # the release's p for s > 0.5
PYRAMID_LEVELS = 4


def eesp_dilations(branches: int, r_lim: int) -> list[int]:
    """EESP branch dilations: kernel sizes 3, 5, 7, ... capped by r_lim (else 3), as dilations of a 3x3, sorted."""
    sizes = [3 + 2 * k if 3 + 2 * k <= r_lim else 3 for k in range(branches)]
    return sorted((s - 1) // 2 for s in sizes)


def _up_aligned(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True (ESPNetv2 upsamples x2 this way; equal at multiples of 16)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class EESP(nn.Module):
    """EESP unit: grouped 1x1 reduce -> K depthwise dilated 3x3 -> HFF -> BN/PReLU -> grouped 1x1 expand + BN
    -> (+ input when shapes match) -> PReLU; the strided unit returns before the final PReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, r_lim: int = 7, branches: int = EESP_BRANCHES) -> None:
        super().__init__()
        d = out_ch // branches
        if d * branches != out_ch:
            raise ValueError(f"EESP: {out_ch} output channels do not split into {branches} branches")
        self.stride = stride
        self.reduce = ConvBNPReLU(in_ch, d, 1, groups=branches)
        self.branches = nn.ModuleList(
            nn.Conv2d(d, d, 3, stride, r, r, groups=d, bias=False) for r in eesp_dilations(branches, r_lim)
        )
        self.post = BNPReLU(out_ch)
        self.expand = nn.Sequential(nn.Conv2d(out_ch, out_ch, 1, groups=branches, bias=False), nn.BatchNorm2d(out_ch))
        self.act = nn.PReLU(out_ch)  # built for strided units too (unused there), as in the release

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        y = self.expand(self.post(torch.cat(cumulative_sums([conv(reduced) for conv in self.branches]), 1)))
        if self.stride == 2:
            return y
        return self.act(y + x if y.shape == x.shape else y)


class EESPDownSampler(nn.Module):
    """Average pool of the input beside a stride-2 EESP (out - in channels), concatenated, plus a
    projection (3x3 conv-BN-PReLU, 1x1 conv-BN) of the input image pooled to the new size, -> PReLU."""

    def __init__(self, in_ch: int, out_ch: int, r_lim: int, image_channels: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, 2, 1)
        self.eesp = EESP(in_ch, out_ch - in_ch, 2, r_lim)
        self.image = nn.Sequential(
            ConvBNPReLU(image_channels, image_channels, 3),
            nn.Sequential(nn.Conv2d(image_channels, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)),
        )
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.pool(x), self.eesp(x)], 1)
        return self.act(y + self.image(_pool_to(image, y.shape[-1])))


def _pool_to(image: torch.Tensor, width: int) -> torch.Tensor:
    """Average-pool (3x3, stride 2) the image at least once, until its width is `width`."""
    image = F.avg_pool2d(image, 3, 2, 1)
    while image.shape[-1] > width:
        image = F.avg_pool2d(image, 3, 2, 1)
    if image.shape[-1] != width:
        raise ValueError(f"ESPNetv2: cannot pool the input image to width {width} (got {image.shape[-1]})")
    return image


class PooledDepthwisePyramid(nn.Module):
    """ESPNetv2's segmentation pyramid: the input, repeatedly average-pooled (3x3 stride 2), a depthwise 3x3
    conv at each level, resized back, all concatenated -> 1x1 conv-BN-PReLU."""

    def __init__(self, channels: int, out_ch: int, levels: int = PYRAMID_LEVELS) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False) for _ in range(levels)
        )
        self.project = ConvBNPReLU(channels * (levels + 1), out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs, pooled = [x], x
        for conv in self.stages:
            pooled = F.avg_pool2d(pooled, 3, 2, 1)
            outs.append(_up_aligned(conv(pooled), x.shape[-2:]))
        return self.project(torch.cat(outs, 1))


class ESPNetv2(nn.Module):
    """ESPNetv2 (s = 1): EESP encoder to 1/16 with input reinforcement, the release's segmentation head to 1/2."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        w1, w2, w3, w4 = ESPNETV2_WIDTHS
        r2, r3, r4, r5 = ESPNETV2_RLIMS
        self.level1 = ConvBNPReLU(in_channels, w1, 3, 2)
        self.level2_0 = EESPDownSampler(w1, w2, r2, in_channels)
        self.level3_0 = EESPDownSampler(w2, w3, r3, in_channels)
        self.level3 = nn.Sequential(*(EESP(w3, w3, 1, r4) for _ in range(ESPNETV2_REPEATS[0])))
        self.level4_0 = EESPDownSampler(w3, w4, r4, in_channels)
        self.level4 = nn.Sequential(*(EESP(w4, w4, 1, r5) for _ in range(ESPNETV2_REPEATS[1])))
        psp = 2 * w3
        self.proj_l4 = ConvBNPReLU(w4, w3, 1)
        self.psp = nn.Sequential(EESP(psp, psp // 2, 1, r5), PooledDepthwisePyramid(psp // 2, psp // 2))
        self.project_l3 = nn.Sequential(nn.Dropout2d(ESPNETV2_DROPOUT), nn.Conv2d(psp // 2, num_classes, 1, bias=False))
        self.act_l3 = BNPReLU(num_classes)
        self.project_l2 = ConvBNPReLU(w2 + num_classes, num_classes, 1)
        self.project_l1 = nn.Sequential(
            nn.Dropout2d(ESPNETV2_DROPOUT), nn.Conv2d(w1 + num_classes, num_classes, 1, bias=False)
        )
        self._init_encoder()

    def _init_encoder(self) -> None:
        """The release initialises its EESPNet encoder (not the head): He-normal (fan_out) convs, BN 1/0."""
        for module in (self.level1, self.level2_0, self.level3_0, self.level3, self.level4_0, self.level4):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Level 1-4 outputs (strides 2, 4, 8, 16)."""
        l1 = self.level1(x)
        l2 = self.level2_0(l1, x)
        l3 = self.level3(self.level3_0(l2, x))
        l4 = self.level4(self.level4_0(l3, x))
        return [l1, l2, l3, l4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1, l2, l3, l4 = self.encode(x)
        y = self.psp(torch.cat([l3, _up_aligned(self.proj_l4(l4), l3.shape[-2:])], 1))
        y = self.act_l3(self.project_l3(y))
        y = self.project_l2(torch.cat([l2, _up_aligned(y, l2.shape[-2:])], 1))
        y = self.project_l1(torch.cat([l1, _up_aligned(y, l1.shape[-2:])], 1))
        return _up_aligned(y, x.shape[-2:])


@register_model(
    "espnetv2",
    family="espnet",
    paper_name="ESPNetv2",
    reference="Mehta et al., ESPNetv2: A Light-weight, Power Efficient, and General Purpose CNN, CVPR 2019",
    notes="the release's ESPNetv2.py (s=1): EESPNet encoder (levels 1-4, r_lim 13/11/9/7) + its segmentation "
    "head; 335,850 params at 2 classes, of which the three strided EESP units' final PReLUs (224) are built "
    "but never called, as in the release (335,626 on the forward path). The release's forward also returns "
    "the level-3 class map upsampled x8, which its loss (train_bl.py) ignores: we return the main output only",
    input_multiple=16,
    min_input_size=32,
)
def espnetv2(num_classes: int = 2, in_channels: int = 3) -> ESPNetv2:
    """ESPNetv2 segmentation network (s=1), the release's build."""
    return ESPNetv2(num_classes, in_channels)
