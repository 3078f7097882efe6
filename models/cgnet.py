"""CGNet (Wu et al., "CGNet: A Light-weight Context Guided Network for Semantic Segmentation",
IEEE TIP 2021 / arXiv 1811.08201), CGNet_M3N21 as the MiniSeg release builds it
(`full_code/models/Baselines/CGNet.py`, M=3, N=21, no classifier dropout).

Context guided (CG) block: 1x1 conv-BN-PReLU to half the channels, then f_loc (3x3 channel-wise
conv) and f_sur (3x3 channel-wise dilated conv) side by side, concatenated -> BN -> PReLU
(the joint feature), refined by f_glo (global average pool -> FC -> ReLU -> FC -> sigmoid
channel weights, reduction 8 in stage 2 and 16 in stage 3) and added to the input. The
down-sampling CG block starts with a 3x3 stride-2 conv-BN-PReLU to the full output width,
reduces the 2x-wide joint feature with a 1x1 conv and has no residual. Stage 1: three 3x3
conv-BN-PReLU (the first stride 2); stage 2: M = 3 CG blocks (dilation 2); stage 3: N = 21 CG
blocks (dilation 4). Each stage output concatenates its last and first block outputs and an
average-pooled input image (stages 1 and 2). Classifier: a bias-free 1x1 conv at 1/8,
upsampled bilinearly. Per-channel PReLUs and BN eps 1e-3 throughout, as in the release.
"""
from __future__ import annotations

import torch
from torch import nn

from .espnet import ESPNET_BN_EPS, BNPReLU, ConvBNPReLU, InputPyramid
from .layers import upsample_to
from ._registry import register_model

STAGE2_REDUCTION = 8
STAGE3_REDUCTION = 16


class GlobalContext(nn.Module):
    """f_glo: global average pool -> FC (c -> c/r) -> ReLU -> FC -> sigmoid, weighting the channels."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction), nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(self.pool(x).flatten(1))[:, :, None, None]


class CGBlock(nn.Module):
    """Context guided block: f_loc + f_sur joint feature, refined by f_glo; residual unless down-sampling."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int, reduction: int, down: bool = False) -> None:
        super().__init__()
        inner = out_ch if down else out_ch // 2
        self.down = down
        self.reduce = ConvBNPReLU(in_ch, inner, 3 if down else 1, 2 if down else 1, eps=ESPNET_BN_EPS)
        self.loc = nn.Conv2d(inner, inner, 3, 1, 1, groups=inner, bias=False)
        self.sur = nn.Conv2d(inner, inner, 3, 1, dilation, dilation, groups=inner, bias=False)
        self.joint = BNPReLU(2 * inner, ESPNET_BN_EPS)
        if down:
            self.project = nn.Conv2d(2 * inner, out_ch, 1, bias=False)
        self.glo = GlobalContext(out_ch, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        joint = self.joint(torch.cat([self.loc(reduced), self.sur(reduced)], 1))
        if self.down:
            return self.glo(self.project(joint))
        return x + self.glo(joint)


class CGNet(nn.Module):
    """CGNet_M3N21: 3 conv layers, M CG blocks at 1/4 (dilation 2), N CG blocks at 1/8 (dilation 4)."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, m: int = 3, n: int = 21) -> None:
        super().__init__()
        eps = ESPNET_BN_EPS
        c1, c2, c3 = 32 + in_channels, 64 * 2 + in_channels, 128 * 2
        self.stage1 = nn.Sequential(
            ConvBNPReLU(in_channels, 32, 3, 2, eps=eps),
            ConvBNPReLU(32, 32, 3, eps=eps),
            ConvBNPReLU(32, 32, 3, eps=eps),
        )
        self.sample1, self.sample2 = InputPyramid(1), InputPyramid(2)
        self.stage1_post = BNPReLU(c1, eps)
        self.stage2_down = CGBlock(c1, 64, 2, STAGE2_REDUCTION, down=True)
        self.stage2 = nn.Sequential(*(CGBlock(64, 64, 2, STAGE2_REDUCTION) for _ in range(m - 1)))
        self.stage2_post = BNPReLU(c2, eps)
        self.stage3_down = CGBlock(c2, 128, 4, STAGE3_REDUCTION, down=True)
        self.stage3 = nn.Sequential(*(CGBlock(128, 128, 4, STAGE3_REDUCTION) for _ in range(n - 1)))
        self.stage3_post = BNPReLU(c3, eps)
        self.classifier = nn.Conv2d(c3, num_classes, 1, bias=False)
        self._init_convs()

    def _init_convs(self) -> None:
        """The release's init: He-normal weights (fan_in) for every Conv2d; the FC layers keep torch's default."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.stage1_post(torch.cat([self.stage1(x), self.sample1(x)], 1))
        down2 = self.stage2_down(f1)
        f2 = self.stage2_post(torch.cat([self.stage2(down2), down2, self.sample2(x)], 1))
        down3 = self.stage3_down(f2)
        f3 = self.stage3_post(torch.cat([down3, self.stage3(down3)], 1))
        return upsample_to(self.classifier(f3), x.shape[-2:])


@register_model(
    "cgnet",
    family="cgnet",
    paper_name="CGNet",
    reference="Wu et al., CGNet: A Light-weight Context Guided Network for Semantic Segmentation, IEEE TIP 2021 (arXiv 1811.08201)",
    notes="the release's CGNet.py, CGNet_M3N21 (491,954 params at 2 classes): per-channel PReLUs, f_glo reduction "
    "8 in stage 2 and 16 in stage 3, a bias-free 1x1 classifier without dropout (dropout_flag=False)",
    input_multiple=8,
    min_input_size=32,
)
def cgnet(num_classes: int = 2, in_channels: int = 3) -> CGNet:
    """CGNet_M3N21, the release's build."""
    return CGNet(num_classes, in_channels)
