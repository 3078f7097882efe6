"""DFN (Yu et al., CVPR 2018): Smooth Network + Border Network on ResNet50, written from the paper.

Smooth Network, top-down from a global-average-pooled stage 5: at each stage (conv2_x..conv5_x,
strides 4..32) a Refinement Residual Block (RRB: 1x1 conv to unify channels, then a residual
3x3-BN-ReLU-3x3 branch, ReLU) cleans the stage's features, a Channel Attention Block (CAB:
concat with the upsampled deeper features, global pool, 1x1-ReLU-1x1-sigmoid) reweights them
and adds the deeper features, and a second RRB refines the sum. Every stage has a 1x1
classifier (deep supervision, each loss weight 1.0 as the paper sums them); the stride-4 one
is the main output.

Border Network: an RRB per stage on the first RRBs' outputs, top-down with upsampling, ending in
a one-channel border logit (`DFN.border_logits`). The paper trains it with a focal loss on
semantic-boundary labels (lambda = 0.1); those labels are not segmentation maps, so the trainer's
per-output CE cannot supervise it and it is not in the train tuple (ModelInfo.notes).

Width: the paper unifies channels to 512; Table 4's 43.53M / 81.9 GMACs fit 256 (ours 40.5M),
so 256 is the default (`channels=512` gives about 88M).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet_features
from .layers import ChannelGate, ConvBNAct, ResizeOutputs, SegmentationHead, upsample_to
from .registry import register_model


class RRB(nn.Module):
    """Refinement residual block: 1x1 conv to `channels`, plus a 3x3-BN-ReLU-3x3 residual branch, ReLU."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.unify = nn.Conv2d(in_channels, channels, 1)
        self.residual = nn.Sequential(ConvBNAct(channels, channels, 3), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.unify(x)
        return F.relu(x + self.residual(x))


class CAB(nn.Module):
    """Channel attention block: the deeper stage picks the shallow stage's channels, then is added."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = ChannelGate(2 * channels, channels, hidden=channels)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        high = upsample_to(high, low.shape[-2:])
        return low * self.gate(torch.cat([low, high], dim=1)) + high


class DFN(nn.Module):
    """ResNet50 (stride 32) -> Smooth Network (main + 3 deep-supervision outputs); Border Network on the side."""

    def __init__(self, num_classes: int, in_channels: int, pretrained: bool, channels: int = 256) -> None:
        super().__init__()
        self.backbone = resnet_features(50, 32, pretrained, in_channels, out_indices=(1, 2, 3, 4))
        stage_channels = self.backbone.channels
        self.global_context = ConvBNAct(stage_channels[-1], channels, 1)
        self.rrb_in = nn.ModuleList(RRB(c, channels) for c in stage_channels)
        self.cab = nn.ModuleList(CAB(channels) for _ in stage_channels)
        self.rrb_out = nn.ModuleList(RRB(channels, channels) for _ in stage_channels)
        self.classifiers = nn.ModuleList(SegmentationHead(channels, num_classes) for _ in stage_channels)
        self.border_rrb = nn.ModuleList(RRB(channels, channels) for _ in stage_channels)
        self.border_classifier = nn.Conv2d(channels, 1, 1)

    def _refine(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """First-RRB outputs of each stage, fine to coarse (shared by both networks)."""
        return [rrb(f) for rrb, f in zip(self.rrb_in, feats)]

    def forward(self, x: torch.Tensor):
        feats = self.backbone(x)
        high = self.global_context(F.adaptive_avg_pool2d(feats[-1], 1))
        outputs = []
        for i, stage in reversed(list(enumerate(self._refine(feats)))):
            high = self.rrb_out[i](self.cab[i](stage, high))
            outputs.append(self.classifiers[i](high))
        main = outputs[-1]
        return (main, *reversed(outputs[:-1])) if self.training else main

    def border_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Border Network: one-channel semantic-boundary logits at the input size (focal loss in the paper)."""
        stages = self._refine(self.backbone(x))
        border = self.border_rrb[-1](stages[-1])
        for i in reversed(range(len(stages) - 1)):
            border = self.border_rrb[i](stages[i] + upsample_to(border, stages[i].shape[-2:]))
        return upsample_to(self.border_classifier(border), x.shape[-2:])


@register_model(
    "dfn-resnet50",
    family="dfn",
    paper_name="DFN",
    backbone="ResNet50",
    pretrained_backbone=True,
    aux_weights=(1.0, 1.0, 1.0, 1.0),
    reference="Yu et al., Learning a Discriminative Feature Network for Semantic Segmentation, CVPR 2018",
    notes="Smooth Network with deep supervision at strides 4 (main), 8, 16, 32, weights 1.0. Border Network "
    "built (its params are counted) but not in the train outputs: it needs boundary labels and a focal loss "
    "(model.model.border_logits). Width 256 instead of the paper's 512 to match Table 4's params and GMACs.",
)
def dfn_resnet50(
    num_classes: int = 2, in_channels: int = 3, pretrained: bool = False, channels: int = 256
) -> nn.Module:
    """DFN with a ResNet50 (Smooth Network outputs through the output contract)."""
    return ResizeOutputs(DFN(num_classes, in_channels, pretrained, channels))
