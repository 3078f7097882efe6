"""CGNet (Wu et al., "CGNet: A Light-weight Context Guided Network for Semantic Segmentation",
IEEE TIP 2021 / arXiv 1811.08201), the paper's CGNet_M3N21, written from the paper.

Context guided (CG) block: 1x1 conv to half the channels, then f_loc (3x3 channel-wise
conv) and f_sur (3x3 channel-wise dilated conv) side by side, concatenated -> BN -> PReLU
(the joint feature), refined by f_glo (global average pool -> FC -> FC -> sigmoid channel
weights) and added to the input (global residual learning). The down-sampling CG block
starts with a 3x3 stride-2 conv to the full output width, reduces the 2x-wide joint
feature with a 1x1 conv and has no residual. Stage 1: three 3x3 convs (the first stride 2);
stage 2: M = 3 CG blocks (dilation 2); stage 3: N = 21 CG blocks (dilation 4). Each stage
output concatenates its first and last block outputs and a down-sampled input image (stages
1 and 2). The classifier is a 1x1 conv at 1/8, upsampled bilinearly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .espnet import BNPReLU, image_pyramid
from .layers import ConvBNAct, upsample_to
from .registry import register_model


class GlobalContext(nn.Module):
    """f_glo: global average pool -> FC (c -> c/r) -> ReLU -> FC -> sigmoid, weighting the channels."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction), nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))[:, :, None, None]


class CGBlock(nn.Module):
    """Context guided block: f_loc + f_sur joint feature, refined by f_glo; residual unless down-sampling."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int, down: bool = False) -> None:
        super().__init__()
        inner = out_ch if down else out_ch // 2
        self.down = down
        self.reduce = ConvBNAct(in_ch, inner, 3 if down else 1, 2 if down else 1, act=nn.PReLU)
        self.loc = nn.Conv2d(inner, inner, 3, 1, 1, groups=inner, bias=False)
        self.sur = nn.Conv2d(inner, inner, 3, 1, dilation, dilation, groups=inner, bias=False)
        self.joint = BNPReLU(2 * inner)
        if down:
            self.project = nn.Conv2d(2 * inner, out_ch, 1, bias=False)
        self.glo = GlobalContext(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        joint = self.joint(torch.cat([self.loc(reduced), self.sur(reduced)], 1))
        if self.down:
            return self.glo(self.project(joint))
        return x + self.glo(joint)


class CGNet(nn.Module):
    """CGNet_M3N21: 3 conv layers, M=3 CG blocks at 1/4 (dilation 2), N=21 CG blocks at 1/8 (dilation 4)."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, m: int = 3, n: int = 21) -> None:
        super().__init__()
        c1, c2, c3 = 32 + in_channels, 64 * 2 + in_channels, 128 * 2
        self.stage1 = nn.Sequential(
            ConvBNAct(in_channels, 32, 3, 2, act=nn.PReLU),
            ConvBNAct(32, 32, 3, act=nn.PReLU),
            ConvBNAct(32, 32, 3, act=nn.PReLU),
        )
        self.stage1_post = BNPReLU(c1)
        self.stage2_down = CGBlock(c1, 64, 2, down=True)
        self.stage2 = nn.Sequential(*(CGBlock(64, 64, 2) for _ in range(m - 1)))
        self.stage2_post = BNPReLU(c2)
        self.stage3_down = CGBlock(c2, 128, 4, down=True)
        self.stage3 = nn.Sequential(*(CGBlock(128, 128, 4) for _ in range(n - 1)))
        self.stage3_post = BNPReLU(c3)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(c3, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.stage1_post(torch.cat([self.stage1(x), image_pyramid(x, 1)], 1))
        down2 = self.stage2_down(f1)
        f2 = self.stage2_post(torch.cat([self.stage2(down2), down2, image_pyramid(x, 2)], 1))
        down3 = self.stage3_down(f2)
        f3 = self.stage3_post(torch.cat([down3, self.stage3(down3)], 1))
        return upsample_to(self.classifier(f3), x.shape[-2:])


@register_model(
    "cgnet",
    family="cgnet",
    paper_name="CGNet",
    reference="Wu et al., CGNet: A Light-weight Context Guided Network for Semantic Segmentation, IEEE TIP 2021 (arXiv 1811.08201)",
    notes="written from the paper; CGNet_M3N21",
    input_multiple=8,
    min_input_size=32,
)
def cgnet(num_classes: int = 2, in_channels: int = 3) -> CGNet:
    """CGNet_M3N21."""
    return CGNet(num_classes, in_channels)
