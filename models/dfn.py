"""DFN (Yu et al., CVPR 2018) as the MiniSeg authors built it (release `full_code/models/Baselines/DFN.py`).

Backbone: torchvision's ResNet at stride 32, held whole (its unused avgpool and fc included, so the
fc's 2.05M params count) and ALSO through five stage containers (stem, maxpool + layer1, layer2,
layer3, layer4) that share its modules: a counter that hooks modules by walking the children of
every parent (the release's) counts every backbone layer twice. The file imports ResNet-50, but
only ResNet-101 reproduces Table 4 (which says ResNet50).

Every head width is the class count (the file's choice), built from the paper's blocks: the
Refinement Residual Block (RRB: 1x1 conv, then a residual 3x3 conv-BN-ReLU-3x3 conv branch, ReLU of
the sum; all convs with bias) and the Channel Attention Block (CAB: concat deep and shallow, global
average pool, 1x1-ReLU-1x1-sigmoid, shallow * weights + deep).
- Smooth network (main output): a global context (1x1 conv 2048 -> classes on layer4, average pool,
  broadcast), then from layer4 down to layer1: RRB(stage) -> CAB with the deeper result (upsampled
  x2) -> RRB; the stride-4 result is upsampled to the input.
- Border network (auxiliary output, loss weight 0.4 in the authors' training with the same CE):
  RRB(layer1), then + RRB(layer2/3/4) upsampled to stride 4, each sum refined by an RRB; upsampled
  to the input. Its output is dropped in eval mode, but, as in the file's forward, it still runs.
44,569,940 params at ResNet-101 (42,512,674 feed the main output: no fc, no border network).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet_extractor, torchvision_resnet
from .layers import ChannelGate, ConvBNAct, upsample_to
from ._registry import register_model

REFERENCE = "Yu et al., Learning a Discriminative Feature Network for Semantic Segmentation, CVPR 2018"


class RRB(nn.Module):
    """Refinement residual block: 1x1 conv to `channels`, plus a 3x3-BN-ReLU-3x3 residual branch, ReLU."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.unify = nn.Conv2d(in_channels, channels, 1)
        self.residual = nn.Sequential(
            ConvBNAct(channels, channels, 3, bias=True), nn.Conv2d(channels, channels, 3, padding=1)
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.unify(x)
        return self.relu(x + self.residual(x))


class CAB(nn.Module):
    """Channel attention block: the deeper stage picks the shallow stage's channels, then is added."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = ChannelGate(2 * channels, channels, hidden=channels)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        high = upsample_to(high, low.shape[-2:])
        return low * self.gate(torch.cat([high, low], dim=1)) + high


class DFN(nn.Module):
    """torchvision ResNet (stride 32, held twice) -> smooth network (main) and border network (train-mode aux)."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, depth: int = 101) -> None:
        super().__init__()
        self.resnet = torchvision_resnet(depth, pretrained, in_channels)
        self.backbone = resnet_extractor(self.resnet, depth, 32, out_indices=(1, 2, 3, 4))
        stage_channels = self.backbone.channels
        self.global_context = nn.Conv2d(stage_channels[-1], num_classes, 1)
        self.smooth_in = nn.ModuleList(RRB(c, num_classes) for c in stage_channels)
        self.cab = nn.ModuleList(CAB(num_classes) for _ in stage_channels)
        self.smooth_out = nn.ModuleList(RRB(num_classes, num_classes) for _ in stage_channels)
        self.border_in = nn.ModuleList(RRB(c, num_classes) for c in stage_channels)
        self.border_out = nn.ModuleList(RRB(num_classes, num_classes) for _ in stage_channels[1:])

    def smooth(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Smooth network, top-down from the global context to the stride-4 logits."""
        high = F.adaptive_avg_pool2d(self.global_context(feats[-1]), 1).expand(-1, -1, *feats[-1].shape[-2:])
        for i in reversed(range(len(feats))):
            high = self.smooth_out[i](self.cab[i](self.smooth_in[i](feats[i]), high))
        return high

    def border(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Border network: every stage's RRB added at stride 4, each sum refined (stride-4 logits)."""
        out = self.border_in[0](feats[0])
        size = out.shape[-2:]
        for rrb_in, rrb_out, f in zip(self.border_in[1:], self.border_out, feats[1:]):
            out = rrb_out(out + upsample_to(rrb_in(f), size))
        return out

    def forward(self, x: torch.Tensor):
        feats = self.backbone(x)
        border = self.border(feats)  # the release's forward runs it in eval mode too
        size = x.shape[-2:]
        main = upsample_to(self.smooth(feats), size)
        return (main, upsample_to(border, size)) if self.training else main


@register_model(
    "dfn-resnet101",
    family="dfn",
    paper_name="DFN",
    backbone="ResNet-101",
    pretrained_backbone=True,
    aux_weights=(1.0, 0.4),
    reference=REFERENCE,
    notes="the authors' build (DFN.py on torchvision resnet101): Table 4 says ResNet50; only ResNet-101 "
    "reproduces its params/GFLOPs. Head widths = class count; main = smooth network, aux = border network "
    "(weight 0.4, same CE). Params 44,569,940 include the unused ImageNet fc (2.05M) and the border network; "
    "backbone modules held by two parents as in the file, so the authors' counter counts them twice (its "
    "81.88G is about twice fvcore's 41G)",
    input_multiple=32,
)
def dfn_resnet101(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> DFN:
    """The authors' DFN on torchvision's ResNet-101."""
    return DFN(num_classes, in_channels, pretrained, depth=101)


@register_model(
    "dfn-resnet50",
    family="dfn",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 0.4),
    reference=REFERENCE,
    notes="not the paper's build: the authors' DFN (dfn-resnet101) on the ResNet50 the file imports and "
    "Table 4 names (25.6M params incl. the unused fc)",
    input_multiple=32,
)
def dfn_resnet50(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> DFN:
    """The authors' DFN on torchvision's ResNet-50."""
    return DFN(num_classes, in_channels, pretrained, depth=50)
