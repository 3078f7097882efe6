"""ANNNet (Zhu et al., ICCV 2019) as the MiniSeg authors built it (release `Others/ANN.py`).

Backbone: the release's `resnet50_v1b` (dilated ResNet-50, output stride 8, no fc); the file's
`super().__init__()` ignores its backbone argument, so it is always ResNet-50. AFNB fuses layer3
(keys/values, 1024 ch) into layer4 (queries, 2048 ch); a 3x3 conv (bias) + BN + ReLU reduces to
512 and APNB adds context within those features. In both blocks keys and values are sampled by
pyramid pooling with bins 1, 3, 6, 8 (S = 110 anchors instead of all H x W pixels), key/value
channels 256 (1x1 convs with bias; keys and queries through conv + BN + ReLU, APNB sharing one
transform for both), and the attended values pass through W (a plain 1x1 conv with bias,
zero-initialised); the result is concatenated with the block's input and fused by a 1x1 conv (bias)
+ BN (AFNB: no ReLU; APNB: ReLU) and dropout 0.05. A deep-supervision head on layer3 (3x3 conv 1024
-> 512 + BN + ReLU, dropout, 1x1) gives the auxiliary output (loss weight 0.4); it holds 4.72M of the
48,560,964 params (43,839,810 feed the main output). As in the file's forward, it runs in eval mode too
(its output dropped), so MACs match Table 4 (203 G; 184 G without it), and so does the shared APNB
key/query transform, once per role.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import resnet_v1b_features
from .layers import ConvBNAct, attend, pyramid_sample, upsample_to
from ._registry import register_model

PYRAMID_SIZES = (1, 3, 6, 8)
KEY_CHANNELS = 256
CHANNELS = 512


class AsymmetricNonLocal(nn.Module):
    """Queries from `x`, keys/values from pyramid-pooled `source`; W (1x1 conv, zero init) to `out_channels`."""

    def __init__(
        self,
        query_channels: int,
        source_channels: int,
        out_channels: int,
        key_channels: int = KEY_CHANNELS,
        value_channels: int = KEY_CHANNELS,
        shared_key_query: bool = False,
    ) -> None:
        """`shared_key_query`: one transform makes keys and queries (self-attention: `x` is `source`)."""
        super().__init__()
        self.key_channels = key_channels
        self.key = ConvBNAct(source_channels, key_channels, 1, bias=True)
        self.query = self.key if shared_key_query else ConvBNAct(query_channels, key_channels, 1, bias=True)
        self.value = nn.Conv2d(source_channels, value_channels, 1)
        self.out = nn.Conv2d(value_channels, out_channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        query = self.query(x)  # a shared transform runs once per role, as in the release
        key = pyramid_sample(self.key(source), PYRAMID_SIZES)
        value = pyramid_sample(self.value(source), PYRAMID_SIZES)
        context = attend(query.flatten(2), key, value, self.key_channels**-0.5)
        return self.out(context.view(x.shape[0], -1, *x.shape[2:]))


class AFNB(nn.Module):
    """Asymmetric fusion non-local block: high-level queries, low-level sampled keys/values, concat + 1x1 fuse."""

    def __init__(self, low_channels: int, high_channels: int) -> None:
        super().__init__()
        self.attention = AsymmetricNonLocal(high_channels, low_channels, high_channels)
        self.fuse = nn.Sequential(ConvBNAct(2 * high_channels, high_channels, 1, act=None, bias=True), nn.Dropout2d(0.05))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.attention(high, low), high], dim=1))


class APNB(nn.Module):
    """Asymmetric pyramid non-local block: self-attention against 110 pyramid-pooled anchors, concat + 1x1 fuse."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attention = AsymmetricNonLocal(channels, channels, channels, shared_key_query=True)
        self.fuse = nn.Sequential(ConvBNAct(2 * channels, channels, 1, bias=True), nn.Dropout2d(0.05))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.attention(x, x), x], dim=1))


class ANNNet(nn.Module):
    """Dilated ResNet-50 -> AFNB(layer3, layer4) -> 3x3 conv -> APNB -> classifier; layer3 head in train mode."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, channels: int = CHANNELS) -> None:
        super().__init__()
        self.backbone = resnet_v1b_features(50, pretrained, in_channels, out_indices=(3, 4))
        c3, c4 = self.backbone.channels
        self.fusion = AFNB(c3, c4)
        self.context = nn.Sequential(ConvBNAct(c4, channels, 3, bias=True), APNB(channels))
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.aux = nn.Sequential(
            ConvBNAct(c3, channels, 3, bias=True), nn.Dropout2d(0.05), nn.Conv2d(channels, num_classes, 1)
        )

    def forward(self, x: torch.Tensor):
        c3, c4 = self.backbone(x)
        aux = self.aux(c3)  # the release's forward runs it in eval mode too (its MACs are in Table 4)
        size = x.shape[-2:]
        main = upsample_to(self.classifier(self.context(self.fusion(c3, c4))), size)
        return (main, upsample_to(aux, size)) if self.training else main


@register_model(
    "annnet-resnet50",
    family="annnet",
    paper_name="ANNNet",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 0.4),
    reference="Zhu et al., Asymmetric Non-local Neural Networks for Semantic Segmentation, ICCV 2019",
    notes="the authors' build (Others/ANN.py, always resnet50_v1b: the file ignores its backbone argument): "
    "AFNB + APNB with pyramid sampling (1, 3, 6, 8 -> 110 anchors); params 48,560,964 include the 4.72M "
    "layer3 deep-supervision head (loss weight 0.4; 43,839,810 feed the main output); like the file's forward "
    "it runs that head in eval mode too (output dropped), so MACs match Table 4's 203G (184G without it)",
    input_multiple=8,
)
def annnet_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> ANNNet:
    """The authors' ANNNet on a dilated ResNet-50."""
    return ANNNet(num_classes, in_channels, pretrained)
