"""ESPNet (Mehta et al., ECCV 2018) and ESPNetv2 (Mehta et al., CVPR 2019), written from the papers.

ESP module: a 1x1 conv reduces N input channels to d = N/K (K = 5; the first branch takes
the remainder, N - (K-1)d), K parallel 3x3 convs with dilations 1, 2, 4, 8, 16, then
hierarchical feature fusion (HFF: each dilated output adds the sum of the smaller
dilations' outputs; the dilation-1 branch stays out of the sums) before concatenation, a residual add
(non-strided) and BN + PReLU. The strided ESP replaces the 1x1 reduction by a 3x3
stride-2 conv and has no residual.

ESPNetv2's EESP unit: grouped 1x1 reduction (K = 4 groups) to d = N/K, K depthwise 3x3
convs whose dilations map the receptive field limit of the stage, HFF (all K branches
in the running sum), BN + PReLU, a
grouped 1x1 expansion (K groups) and a residual; its strided form concatenates an average
pool of the input and adds a projection of the down-sampled input image.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBNAct, upsample_to
from .registry import register_model

ESP_DILATIONS = (1, 2, 4, 8, 16)


class BNPReLU(nn.Sequential):
    """BN -> PReLU, applied after concatenations."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), nn.PReLU(channels))


def cumulative_sums(branches: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Hierarchical feature fusion: output k is the sum of branches 1..k."""
    fused = [branches[0]]
    for b in branches[1:]:
        fused.append(fused[-1] + b)
    return fused


class ESPModule(nn.Module):
    """ESP: reduce -> split -> 5 dilated 3x3 convs -> HFF -> concat (+ input) -> BN -> PReLU.

    With fewer than 5 output channels (the decoder's ESP at 2 classes) only the first
    `out_ch` dilations get a branch, one channel each.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        branches = min(len(ESP_DILATIONS), out_ch)
        d = out_ch // branches
        first = out_ch - (branches - 1) * d
        self.residual = stride == 1 and in_ch == out_ch
        kernel = 3 if stride == 2 else 1
        self.reduce = nn.Conv2d(in_ch, d, kernel, stride, kernel // 2, bias=False)
        self.branches = nn.ModuleList(
            nn.Conv2d(d, first if i == 0 else d, 3, 1, r, r, bias=False)
            for i, r in enumerate(ESP_DILATIONS[:branches])
        )
        self.post = BNPReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        branches = [conv(reduced) for conv in self.branches]
        out = torch.cat([branches[0], *cumulative_sums(branches[1:])], 1) if len(branches) > 1 else branches[0]
        return self.post(out + x if self.residual else out)


def image_pyramid(x: torch.Tensor, times: int) -> torch.Tensor:
    """The input image average-pooled `times` times by 3x3 stride 2 (ESPNet's input reinforcement)."""
    for _ in range(times):
        x = F.avg_pool2d(x, 3, 2, 1)
    return x


class ESPNet(nn.Module):
    """ESPNet (p = 2, q = 8): encoder at 1/8 with input reinforcement, light decoder with ESP fusion."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, p: int = 2, q: int = 8) -> None:
        super().__init__()
        c1, c2, c3 = 16 + in_channels, 64 * 2 + in_channels, 128 * 2
        self.level1 = ConvBNAct(in_channels, 16, 3, 2, act=nn.PReLU)
        self.level1_post = BNPReLU(c1)
        self.level2_down = ESPModule(c1, 64, 2)
        self.level2 = nn.Sequential(*(ESPModule(64, 64) for _ in range(p)))
        self.level2_post = BNPReLU(c2)
        self.level3_down = ESPModule(c2, 128, 2)
        self.level3 = nn.Sequential(*(ESPModule(128, 128) for _ in range(q)))
        self.level3_post = BNPReLU(c3)
        # Decoder (paper Fig. 4d): project to classes, upsample with deconvs, fuse with levels 2 and 1.
        self.proj3 = nn.Conv2d(c3, num_classes, 1, bias=False)
        self.up3 = self._deconv(num_classes)
        self.proj2 = nn.Sequential(nn.Conv2d(c2, num_classes, 1, bias=False), BNPReLU(num_classes))
        self.fuse2 = ESPModule(2 * num_classes, num_classes)
        self.up2 = self._deconv(num_classes)
        self.fuse1 = ConvBNAct(c1 + num_classes, num_classes, 3, act=nn.PReLU)
        self.classifier = nn.ConvTranspose2d(num_classes, num_classes, 2, 2, bias=False)

    @staticmethod
    def _deconv(channels: int) -> nn.Sequential:
        return nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, 2, bias=False), BNPReLU(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.level1_post(torch.cat([self.level1(x), image_pyramid(x, 1)], 1))
        down2 = self.level2_down(f1)
        f2 = self.level2_post(torch.cat([down2, self.level2(down2), image_pyramid(x, 2)], 1))
        down3 = self.level3_down(f2)
        f3 = self.level3_post(torch.cat([down3, self.level3(down3)], 1))
        y = self.up3(self.proj3(f3))
        y = self.up2(self.fuse2(torch.cat([y, self.proj2(f2)], 1)))
        y = self.classifier(self.fuse1(torch.cat([f1, y], 1)))
        return upsample_to(y, x.shape[-2:])


@register_model(
    "espnet",
    family="espnet",
    paper_name="ESPNet",
    reference="Mehta et al., ESPNet: Efficient Spatial Pyramid of Dilated Convolutions for Semantic Segmentation, ECCV 2018",
    notes="written from the paper; p=2, q=8 (the paper's ESPNet); the decoder's ESP keeps only 2 branches at 2 classes",
    input_multiple=8,
    min_input_size=32,
)
def espnet(num_classes: int = 2, in_channels: int = 3) -> ESPNet:
    """ESPNet with its decoder (p=2, q=8)."""
    return ESPNet(num_classes, in_channels)


# ESPNetv2 (Mehta et al., CVPR 2019). Table 1 widths at s = 1.0: levels 1-4 at strides 2/4/8/16.
ESPNETV2_WIDTHS = (32, 64, 128, 256)
ESPNETV2_REPEATS = (0, 3, 7)  # EESP units after the strided unit of levels 2, 3, 4 (level 1 is a conv)
ESPNETV2_RLIMS = (13, 11, 9)  # receptive-field limit of the EESP dilations of levels 2, 3, 4
EESP_GROUPS = 4
# Not given in the paper: chosen so that the model's params match the paper table's 0.34M.
ESPNETV2_DECODER_WIDTHS = (160, 80)


def eesp_dilations(branches: int, r_lim: int) -> list[int]:
    """EESP branch dilations: kernel sizes 3, 5, 7, ... capped by r_lim (else 3), as dilations of a 3x3, sorted."""
    sizes = [3 + 2 * k if 3 + 2 * k <= r_lim else 3 for k in range(branches)]
    return sorted((s - 1) // 2 for s in sizes)


class EESP(nn.Module):
    """EESP unit: grouped 1x1 reduce -> K depthwise dilated 3x3 -> HFF -> BN/PReLU -> grouped 1x1 expand (-> + input)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, r_lim: int = 13, groups: int = EESP_GROUPS) -> None:
        super().__init__()
        d = out_ch // groups
        if d * groups != out_ch:
            raise ValueError(f"EESP: {out_ch} output channels do not split into {groups} groups")
        self.reduce = ConvBNAct(in_ch, d, 1, groups=groups, act=nn.PReLU)
        self.branches = nn.ModuleList(
            nn.Conv2d(d, d, 3, stride, r, r, groups=d, bias=False) for r in eesp_dilations(groups, r_lim)
        )
        self.post = BNPReLU(out_ch)
        self.expand = ConvBNAct(out_ch, out_ch, 1, groups=groups, act=None)
        self.act = nn.PReLU(out_ch) if stride == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        branches = [conv(reduced) for conv in self.branches]
        y = self.expand(self.post(torch.cat(cumulative_sums(branches), 1)))
        return self.act(y + x) if self.act is not None else y


class StridedEESP(nn.Module):
    """Down-sampling unit: stride-2 EESP (out - in channels) beside an avg-pool of the input,
    plus a projection of the input image (3x3 conv -> 1x1 conv) at the new size."""

    def __init__(self, in_ch: int, out_ch: int, r_lim: int, image_channels: int) -> None:
        super().__init__()
        self.eesp = EESP(in_ch, out_ch - in_ch, 2, r_lim)
        self.image = nn.Sequential(
            ConvBNAct(image_channels, image_channels, 3, act=nn.PReLU), ConvBNAct(image_channels, out_ch, 1, act=None)
        )
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.eesp(x), F.avg_pool2d(x, 3, 2, 1)], 1)
        image = F.adaptive_avg_pool2d(image, y.shape[-2:])
        return self.act(y + self.image(image))


class PyramidPool(nn.Module):
    """Efficient pyramid pooling (our reading of ESPNetv2's decoder): 1x1 projection, depthwise 3x3
    convs at 1, 1/2, 1/4 and 1/8 of the size, resized back, concatenated -> BN/PReLU -> grouped 1x1."""

    SCALES = (1, 2, 4, 8)

    def __init__(self, in_ch: int, proj_ch: int, out_ch: int) -> None:
        super().__init__()
        self.project = ConvBNAct(in_ch, proj_ch, 1, act=nn.PReLU)
        self.levels = nn.ModuleList(nn.Conv2d(proj_ch, proj_ch, 3, 1, 1, groups=proj_ch, bias=False) for _ in self.SCALES)
        self.post = BNPReLU(proj_ch * len(self.SCALES))
        groups = len(self.SCALES) if out_ch % len(self.SCALES) == 0 else 1
        self.fuse = nn.Conv2d(proj_ch * len(self.SCALES), out_ch, 1, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        size = x.shape[-2:]
        outs = []
        for scale, conv in zip(self.SCALES, self.levels):
            pooled = x if scale == 1 else F.adaptive_avg_pool2d(x, (max(size[0] // scale, 1), max(size[1] // scale, 1)))
            outs.append(upsample_to(conv(pooled), size))
        return self.fuse(self.post(torch.cat(outs, 1)))


class ESPNetv2(nn.Module):
    """ESPNetv2 (s = 1): EESP encoder to 1/16, pyramid-pooling decoder merged with levels 3 and 2, output at 1/4."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, decoder_widths: Sequence[int] = ESPNETV2_DECODER_WIDTHS
    ) -> None:
        super().__init__()
        w1, w2, w3, w4 = ESPNETV2_WIDTHS
        self.level1 = ConvBNAct(in_channels, w1, 3, 2, act=nn.PReLU)
        self.downs = nn.ModuleList(
            StridedEESP(cin, cout, r, in_channels) for cin, cout, r in zip((w1, w2, w3), (w2, w3, w4), ESPNETV2_RLIMS)
        )
        self.levels = nn.ModuleList(
            nn.Sequential(*(EESP(w, w, 1, r) for _ in range(n)))
            for w, n, r in zip((w2, w3, w4), ESPNETV2_REPEATS, ESPNETV2_RLIMS)
        )
        d1, d2 = decoder_widths
        self.pool4 = PyramidPool(w4, d1, d1)
        self.merge3 = nn.Sequential(nn.Conv2d(w3, d1, 1, bias=False), nn.BatchNorm2d(d1))
        self.pool3 = PyramidPool(d1, d2, d2)
        self.merge2 = nn.Sequential(nn.Conv2d(w2, d2, 1, bias=False), nn.BatchNorm2d(d2))
        self.pool2 = PyramidPool(d2, d2 // 2, num_classes)
        self.act3, self.act2 = nn.PReLU(d1), nn.PReLU(d2)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Level 2-4 outputs (strides 4, 8, 16)."""
        y = self.level1(x)
        feats = []
        for down, level in zip(self.downs, self.levels):
            y = level(down(y, x))
            feats.append(y)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f2, f3, f4 = self.encode(x)
        y = upsample_to(self.pool4(f4), f3.shape[-2:])
        y = upsample_to(self.pool3(self.act3(y + self.merge3(f3))), f2.shape[-2:])
        y = self.pool2(self.act2(y + self.merge2(f2)))
        return upsample_to(y, x.shape[-2:])


@register_model(
    "espnetv2",
    family="espnet",
    paper_name="ESPNetv2",
    reference="Mehta et al., ESPNetv2: A Light-weight, Power Efficient, and General Purpose CNN, CVPR 2019",
    notes="written from the paper: EESP encoder (s=1, levels 1-4, r_lim 13/11/9); the segmentation decoder "
    "(pyramid pooling, merges with levels 3 and 2) is our reading of the paper's short description, its "
    "widths (160, 80) chosen to match the table's 0.34M params",
    input_multiple=16,
    min_input_size=32,
)
def espnetv2(num_classes: int = 2, in_channels: int = 3) -> ESPNetv2:
    """ESPNetv2 segmentation network (s=1)."""
    return ESPNetv2(num_classes, in_channels)
