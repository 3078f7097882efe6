"""Inf-Net (Fan et al., IEEE TMI 2020) as the MiniSeg authors built it: the original code's
`Inf_Net(channel=32, n_class=1)` on ResNet-50 (`full_code/models/Baselines/InfNet/
model_lung_infection/InfNet_ResNet.py`), without semi-supervision.

- Backbone: ResNet-50 at output stride 32 (torchvision's layout; ImageNet-initialised by the
  authors). Features f1 (layer1, /4, 256 ch), f2 (/8, 512), f3 (/16, 1024), f4 (/32, 2048).
- "Conv" below is conv (bias-free) -> BN, with no activation (the original's BasicConv2d).
- Receptive-field blocks (RFB) reduce f2, f3, f4 to 32 channels; CPD's parallel partial decoder
  aggregates them (x2 bilinear upsampling with align_corners=True, multiply, concatenate) into
  the global map S_g at /8 (a 1x1 conv with bias).
- Edge guidance: three convs on f1 (1x1 to 64, 3x3, 3x3) give 64-channel edge features that feed
  every reverse-attention branch. A fourth conv (3x3 to the map channels) predicts the edge map;
  it is built (its 578 parameters are in Table 4's count) but not run here: its output needs
  edge labels, and the authors' Table 4 training (`trainInfNet.py`) uses only the four mask maps.
- Reverse attention, coarse to fine on f4, f3, f2: the previous map S is resized to the level,
  A = 1 - sigmoid(S) scales the backbone feature, a 1x1 conv reduces it (256 at f4, 64 at f3/f2),
  the resized edge features are concatenated, then convs with F.relu between (5x5 at f4, 3x3
  below) predict a residual added to S.
- Outputs: train mode returns (S_2, S_3, S_4, S_g) at the input size with the authors' loss
  weights 1.0 / 0.4 / 0.4 / 0.4; eval mode returns S_2.

Two classes from one logit: the original predicts one infection logit z per pixel, trained with
sigmoid binary cross-entropy. The maps here carry `num_classes - 1` foreground logits (one at two
classes, so the parameter count is the authors' 30,911,401), and the model returns logits
[0, z]: background fixed at 0. Softmax over [0, z] is [1 - sigmoid(z), sigmoid(z)], so
cross-entropy on it equals the authors' sigmoid BCE on z, argmax is their z > 0, and no parameter
is added. With more classes the same reference-class softmax applies, and the reverse attention
weight A = P(background) = 1 / (1 + sum exp z) (which is 1 - sigmoid(z) for one logit).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet_features
from .layers import upsample_to
from ._registry import register_model

CHANNEL = 32  # the original's `channel` argument
EDGE_CHANNELS = 64
RFB_KERNELS = (3, 5, 7)
# reverse-attention branch per backbone level f4, f3, f2:
# (reduced channels, kernel of its hidden convs, number of hidden convs, kernel of the predicting conv)
RA_SPECS = ((256, 5, 3, 1), (64, 3, 2, 3), (64, 3, 2, 3))


def conv_bn(
    in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 1, dilation: int = 1
) -> nn.Sequential:
    """Bias-free conv (padding keeps the size) -> BN, no activation: the original's BasicConv2d."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    padding = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
    conv = nn.Conv2d(in_channels, out_channels, (kh, kw), padding=padding, dilation=dilation, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels))


class ReceptiveFieldBlock(nn.Module):
    """RFB: a 1x1 branch and three (1x1, 1xk, kx1, 3x3 at dilation k) branches, k = 3, 5, 7;
    their concatenation fused by a 3x3 conv, plus a 1x1 shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int = CHANNEL) -> None:
        super().__init__()
        c = out_channels
        self.branches = nn.ModuleList([conv_bn(in_channels, c)])
        for k in RFB_KERNELS:
            self.branches.append(
                nn.Sequential(
                    conv_bn(in_channels, c), conv_bn(c, c, (1, k)), conv_bn(c, c, (k, 1)), conv_bn(c, c, 3, dilation=k)
                )
            )
        self.fuse = conv_bn(len(self.branches) * c, c, 3)
        self.shortcut = conv_bn(in_channels, c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))
        return self.relu(fused + self.shortcut(x))


class ParallelPartialDecoder(nn.Module):
    """CPD's aggregation of x4 (/32), x3 (/16), x2 (/8) into one map at /8 (x2 upsampling, align_corners=True)."""

    def __init__(self, out_channels: int, channels: int = CHANNEL) -> None:
        super().__init__()
        c = channels
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.x4_for_x3 = conv_bn(c, c, 3)
        self.x4_for_x2 = conv_bn(c, c, 3)
        self.x3_for_x2 = conv_bn(c, c, 3)
        self.x4_for_cat3 = conv_bn(c, c, 3)
        self.cat3_for_cat2 = conv_bn(2 * c, 2 * c, 3)
        self.fuse3 = conv_bn(2 * c, 2 * c, 3)
        self.fuse2 = conv_bn(3 * c, 3 * c, 3)
        self.out = nn.Sequential(conv_bn(3 * c, 3 * c, 3), nn.Conv2d(3 * c, out_channels, 1))

    def forward(self, x4: torch.Tensor, x3: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        up = self.up
        x3_1 = self.x4_for_x3(up(x4)) * x3
        x2_1 = self.x4_for_x2(up(up(x4))) * self.x3_for_x2(up(x3)) * x2
        x3_2 = self.fuse3(torch.cat([x3_1, self.x4_for_cat3(up(x4))], dim=1))
        x2_2 = self.fuse2(torch.cat([x2_1, self.cat3_for_cat2(up(x3_2))], dim=1))
        return self.out(x2_2)


def background_probability(logits: torch.Tensor) -> torch.Tensor:
    """P(background) under softmax over [0, logits]: 1 / (1 + sum exp z), i.e. 1 - sigmoid(z) for one logit."""
    return torch.sigmoid(-torch.logsumexp(logits, dim=1, keepdim=True))


class ReverseAttention(nn.Module):
    """S_i = convs(cat(reduce(A * f_i), edge)) + S, with A = 1 - sigmoid(S) and S the coarser map resized."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        kernel_size: int,
        n_convs: int,
        predict_kernel: int,
        out_channels: int,
    ) -> None:
        super().__init__()
        self.reduce = conv_bn(in_channels, mid_channels)
        widths = [mid_channels + EDGE_CHANNELS] + [mid_channels] * n_convs
        self.convs = nn.ModuleList(conv_bn(a, b, kernel_size) for a, b in zip(widths[:-1], widths[1:]))
        self.predict = conv_bn(mid_channels, out_channels, predict_kernel)

    def forward(self, feat: torch.Tensor, edge: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        size = feat.shape[-2:]
        prior = upsample_to(prior, size)
        x = torch.cat([self.reduce(background_probability(prior) * feat), upsample_to(edge, size)], dim=1)
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.predict(x) + prior


class InfNet(nn.Module):
    """ResNet-50 -> edge features, partial decoder (S_g), three cascaded reverse-attention refinements."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"InfNet: num_classes must be >= 2 (background + foreground), got {num_classes}")
        maps = num_classes - 1  # foreground logits; the background logit is fixed at 0
        self.backbone = resnet_features(50, pretrained=pretrained, in_channels=in_channels, out_indices=(1, 2, 3, 4))
        c1, c2, c3, c4 = self.backbone.channels
        self.rfbs = nn.ModuleList(ReceptiveFieldBlock(c) for c in (c2, c3, c4))
        self.decoder = ParallelPartialDecoder(maps)
        self.reverse = nn.ModuleList(
            ReverseAttention(c, *spec, maps) for c, spec in zip((c4, c3, c2), RA_SPECS)
        )
        e = EDGE_CHANNELS
        self.edge = nn.Sequential(conv_bn(c1, e), conv_bn(e, e, 3), conv_bn(e, e, 3))
        self.edge_head = conv_bn(EDGE_CHANNELS, maps, 3)  # built as the original; not run (see the module docstring)

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Foreground logits S_g (/8), S_4 (/32), S_3 (/16), S_2 (/8), coarse to fine."""
        f1, f2, f3, f4 = self.backbone(x)
        edge = self.edge(f1)
        x2, x3, x4 = (rfb(f) for rfb, f in zip(self.rfbs, (f2, f3, f4)))
        out = [self.decoder(x4, x3, x2)]
        for module, feat in zip(self.reverse, (f4, f3, f2)):
            out.append(module(feat, edge, out[-1]))
        return out

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        maps = [with_background(upsample_to(m, size)) for m in reversed(self.maps(x))]  # S_2, S_3, S_4, S_g
        return tuple(maps) if self.training else maps[0]


def with_background(foreground: torch.Tensor) -> torch.Tensor:
    """Class logits [0, z]: a zero background logit before the foreground ones (softmax = sigmoid for one z)."""
    return torch.cat([torch.zeros_like(foreground[:, :1]), foreground], dim=1)


@register_model(
    "infnet-resnet50",
    family="infnet",
    paper_name="Inf-Net",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 0.4, 0.4, 0.4),
    reference="Fan et al., Inf-Net: Automatic COVID-19 Lung Infection Segmentation from CT Images, IEEE TMI 2020",
    notes=(
        "the authors' build: the original Inf_Net(channel=32, n_class=1) on ResNet-50 at output stride 32 (the "
        "Inf-Net paper uses Res2Net-50); one foreground logit z returned as logits [0, z], so cross-entropy equals "
        "the authors' sigmoid BCE; deep supervision on S_2, S_3, S_4, S_g weighted 1.0/0.4/0.4/0.4 as trainInfNet.py; "
        "the edge head is built (counted) but not run, having no edge labels"
    ),
    input_multiple=32,
)
def infnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> InfNet:
    """Inf-Net (no semi-supervision): 30,911,401 params at 2 classes."""
    return InfNet(num_classes, in_channels, pretrained)
