"""Inf-Net (Fan et al., IEEE TMI 2020) on ResNet50, written from the paper (and CPD for its decoder).

- Backbone: ResNet50 (the Inf-Net paper uses Res2Net50; Table 4 names ResNet50).
  Features f2 (layer1, /4), f3 (layer2, /8), f4 (layer3, /16), f5 (layer4, /32).
- Edge attention: low-level f2 -> 64-channel edge features, fed (downsampled) to every
  reverse-attention module. The paper also predicts an edge map supervised by an edge
  loss on edge labels; the benchmark's loss has only masks, so that map is left out.
- Parallel partial decoder (from CPD, Wu et al. 2019): f3, f4, f5 reduced to 32 channels
  by receptive-field blocks, aggregated by upsample-and-multiply, giving the global
  map S_g at /8.
- Reverse attention, coarse to fine: R_i = C(f_i, Dow(e_att)) * A_i with
  A_i = 1 - sigmoid(S_{i+1}), then convs give S_i = conv(R_i) + S_{i+1} (S_6 = S_g).
  Maps carry `num_classes` channels here, and "1 - sigmoid" becomes the softmax
  probability of class 0 (background), which is the same thing for two classes.
- Deep supervision as the paper: train returns (S_3, S_4, S_5, S_g), equal weights;
  eval returns S_3 upsampled to the input.
31.0M params (Table 4: 30.19M).
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import resnet_features
from .layers import ConvBNAct, upsample_to
from .registry import register_model

RFB_CHANNELS = 32
EDGE_CHANNELS = 64
# reverse-attention module per level f5, f4, f3: (reduced channels, kernel size)
RA_SPECS = ((256, 5), (64, 3), (64, 3))


def strip_conv(channels: int, kernel: tuple[int, int]) -> nn.Sequential:
    """A 1xk or kx1 conv with BN (the receptive-field block's factorised convs)."""
    padding = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(nn.Conv2d(channels, channels, kernel, padding=padding, bias=False), nn.BatchNorm2d(channels))


class ReceptiveFieldBlock(nn.Module):
    """RFB: a 1x1 branch and three (1x1, 1xk, kx1, 3x3 at dilation k) branches, k = 3, 5, 7; fused + 1x1 shortcut."""

    KERNELS = (3, 5, 7)

    def __init__(self, in_channels: int, out_channels: int = RFB_CHANNELS) -> None:
        super().__init__()
        c = out_channels
        self.branches = nn.ModuleList([ConvBNAct(in_channels, c, 1, act=None)])
        for k in self.KERNELS:
            self.branches.append(
                nn.Sequential(
                    ConvBNAct(in_channels, c, 1, act=None),
                    strip_conv(c, (1, k)),
                    strip_conv(c, (k, 1)),
                    ConvBNAct(c, c, 3, dilation=k, act=None),
                )
            )
        self.fuse = ConvBNAct(len(self.branches) * c, c, 3, act=None)
        self.shortcut = ConvBNAct(in_channels, c, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))
        return torch.relu(fused + self.shortcut(x))


class ParallelPartialDecoder(nn.Module):
    """CPD's aggregation of the three high-level features (x3 /8, x4 /16, x5 /32) into one map at /8."""

    def __init__(self, num_classes: int, channels: int = RFB_CHANNELS) -> None:
        super().__init__()
        c = channels
        self.x5_for_x4 = ConvBNAct(c, c, act=None)
        self.x5_for_x3 = ConvBNAct(c, c, act=None)
        self.x4_for_x3 = ConvBNAct(c, c, act=None)
        self.x5_for_cat4 = ConvBNAct(c, c, act=None)
        self.cat4_for_cat3 = ConvBNAct(2 * c, 2 * c, act=None)
        self.fuse4 = ConvBNAct(2 * c, 2 * c, act=None)
        self.fuse3 = ConvBNAct(3 * c, 3 * c, act=None)
        self.out = nn.Sequential(ConvBNAct(3 * c, 3 * c, act=None), nn.Conv2d(3 * c, num_classes, 1))

    def forward(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor) -> torch.Tensor:
        s3, s4 = x3.shape[-2:], x4.shape[-2:]
        x4_1 = self.x5_for_x4(upsample_to(x5, s4)) * x4
        x3_1 = self.x5_for_x3(upsample_to(x5, s3)) * self.x4_for_x3(upsample_to(x4, s3)) * x3
        x4_2 = self.fuse4(torch.cat([x4_1, self.x5_for_cat4(upsample_to(x5, s4))], dim=1))
        x3_2 = self.fuse3(torch.cat([x3_1, self.cat4_for_cat3(upsample_to(x4_2, s3))], dim=1))
        return self.out(x3_2)


class ReverseAttention(nn.Module):
    """S_i = convs(C(reduce(f_i), edge) * A_i) + S_{i+1}, with A_i the background probability of S_{i+1}."""

    def __init__(self, in_channels: int, mid_channels: int, kernel_size: int, num_classes: int) -> None:
        super().__init__()
        self.reduce = ConvBNAct(in_channels, mid_channels, 1)
        self.body = nn.Sequential(
            ConvBNAct(mid_channels + EDGE_CHANNELS, mid_channels, kernel_size),
            ConvBNAct(mid_channels, mid_channels, kernel_size),
            ConvBNAct(mid_channels, mid_channels, kernel_size),
            nn.Conv2d(mid_channels, num_classes, kernel_size, padding=kernel_size // 2),
        )

    @staticmethod
    def weights(prior: torch.Tensor) -> torch.Tensor:
        """Reverse attention A = 1 - P(infection) = P(background), one channel."""
        return torch.softmax(prior, dim=1)[:, :1]

    def forward(self, feat: torch.Tensor, edge: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        size = feat.shape[-2:]
        prior = upsample_to(prior, size)
        fused = torch.cat([self.reduce(feat), upsample_to(edge, size)], dim=1) * self.weights(prior)
        return self.body(fused) + prior


class InfNet(nn.Module):
    """ResNet50 -> edge features, partial decoder (S_g), three cascaded reverse-attention refinements."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> None:
        super().__init__()
        self.backbone = resnet_features(50, pretrained=pretrained, in_channels=in_channels, out_indices=(1, 2, 3, 4))
        c2, c3, c4, c5 = self.backbone.channels
        self.edge = nn.Sequential(ConvBNAct(c2, EDGE_CHANNELS, 1), ConvBNAct(EDGE_CHANNELS, EDGE_CHANNELS))
        self.rfbs = nn.ModuleList(ReceptiveFieldBlock(c) for c in (c3, c4, c5))
        self.decoder = ParallelPartialDecoder(num_classes)
        self.reverse = nn.ModuleList(
            ReverseAttention(c, mid, k, num_classes) for c, (mid, k) in zip((c5, c4, c3), RA_SPECS)
        )

    def forward(self, x: torch.Tensor):
        f2, f3, f4, f5 = self.backbone(x)
        edge = self.edge(f2)
        global_map = self.decoder(*(rfb(f) for rfb, f in zip(self.rfbs, (f3, f4, f5))))
        maps = [global_map]
        for module, feat in zip(self.reverse, (f5, f4, f3)):
            maps.append(module(feat, edge, maps[-1]))
        size = x.shape[-2:]
        if not self.training:
            return upsample_to(maps[-1], size)
        return tuple(upsample_to(m, size) for m in reversed(maps))  # S_3, S_4, S_5, S_g


@register_model(
    "infnet-resnet50",
    family="infnet",
    paper_name="Inf-Net",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 1.0, 1.0, 1.0),
    reference="Fan et al., Inf-Net: Automatic COVID-19 Lung Infection Segmentation from CT Images, IEEE TMI 2020",
    notes=(
        "ResNet50 backbone as Table 4 (the Inf-Net paper: Res2Net50); deep supervision on S_3, S_4, S_5, S_g; "
        "the edge map and its edge loss are left out (no edge labels), edge features still feed reverse attention"
    ),
    input_multiple=32,
)
def infnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> InfNet:
    """Inf-Net (no semi-supervision): edge attention, parallel partial decoder, reverse attention."""
    return InfNet(num_classes, in_channels, pretrained)
