"""FCN-8s on VGG16 (Long, Shelhamer & Darrell, CVPR 2015), written from the paper.

VGG16's 13 conv layers, then fc6/fc7 "convolutionalised" (7x7 conv 512->4096 and 1x1
4096->4096, ReLU, dropout 0.5), a 1x1 score layer on fc7, and two skips: the /32 score
is upsampled 2x by a learned deconvolution (initialised to bilinear) and summed with a
1x1 score of pool4, again 2x and summed with a score of pool3 (the skip scores start at
zero, as the paper), then a fixed bilinear 8x upsampling to the input. fc6 is padded
(the paper padded the input by 100 px and cropped instead). With `pretrained=True`, the
convs and fc6/fc7 come from torchvision's ImageNet VGG16, fc weights reshaped to convs.

Parameter count: 134.3M, against Table 4's 15.53M. The FCN paper keeps fc6/fc7
(119.5M of the total); Table 4's figure matches VGG16's conv layers (14.7M) with a
small head instead of fc6/fc7, i.e. the MiniSeg authors used a lighter FCN-8s variant.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import vgg_features
from .layers import upsample_to
from .registry import register_model

FC_CHANNELS = 4096
FC6_KERNEL = 7


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights of a per-channel bilinear-interpolation deconvolution (channels, channels, k, k)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(kernel_size, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = ramp[:, None] * ramp[None, :]
    return weight


class LearnedUp2x(nn.ConvTranspose2d):
    """2x deconvolution initialised to bilinear upsampling, then learned (the paper's upscore layers)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, kernel_size=4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            self.weight.copy_(bilinear_kernel(channels, 4))


def zero_conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1x1 conv with zero weights and bias (skip scores start from the coarser net's output)."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class FCN8s(nn.Module):
    """VGG16 -> fc6/fc7 -> score; fused with pool4 and pool3 scores; bilinear 8x to the input."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> None:
        super().__init__()
        self.backbone = vgg_features(16, pretrained=pretrained, in_channels=in_channels, out_indices=(2, 3, 4))
        self.fc = nn.Sequential(
            nn.Conv2d(512, FC_CHANNELS, FC6_KERNEL, padding=FC6_KERNEL // 2),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.5),
            nn.Conv2d(FC_CHANNELS, FC_CHANNELS, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.5),
        )
        if pretrained:
            self._load_fc_from_vgg16()
        self.score_fr = nn.Conv2d(FC_CHANNELS, num_classes, 1)
        self.score_pool4 = zero_conv1x1(512, num_classes)
        self.score_pool3 = zero_conv1x1(256, num_classes)
        self.up_fr = LearnedUp2x(num_classes)
        self.up_pool4 = LearnedUp2x(num_classes)

    def _load_fc_from_vgg16(self) -> None:
        """Copy torchvision's ImageNet VGG16 fc6/fc7 into the conv layers (reshaped)."""
        from torchvision.models import vgg16

        classifier = vgg16(weights="IMAGENET1K_V1").classifier
        fc6, fc7 = classifier[0], classifier[3]
        with torch.no_grad():
            for conv, fc in ((self.fc[0], fc6), (self.fc[3], fc7)):
                conv.weight.copy_(fc.weight.view_as(conv.weight))
                conv.bias.copy_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3, pool4, pool5 = self.backbone(x)
        score = self.up_fr(self.score_fr(self.fc(pool5)))
        score = upsample_to(score, pool4.shape[-2:]) + self.score_pool4(pool4)
        score = upsample_to(self.up_pool4(score), pool3.shape[-2:]) + self.score_pool3(pool3)
        return upsample_to(score, x.shape[-2:])


@register_model(
    "fcn8s-vgg16",
    family="fcn",
    paper_name="FCN-8s",
    backbone="VGG16",
    pretrained_backbone=True,
    reference="Long, Shelhamer & Darrell, Fully Convolutional Networks for Semantic Segmentation, CVPR 2015",
    notes=(
        "the FCN paper's fc6/fc7 (7x7 and 1x1 convs, 4096 ch) make 134.3M params; Table 4's 15.53M "
        "matches VGG16 convs plus a small head (the authors' lighter variant)"
    ),
    input_multiple=32,
)
def fcn8s_vgg16(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> FCN8s:
    """FCN-8s with the paper's VGG16 fc6/fc7 (random init unless `pretrained`)."""
    return FCN8s(num_classes, in_channels, pretrained)
