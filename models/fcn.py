"""FCN rows: the MiniSeg authors' FCN-8s build (a dilated VGG16-BN FCN) and the classic FCN-8s.

`fcn-dilated-vgg16bn`, Table 4's "FCN-8s" as the authors built it (`full_code/models/Baselines/
FCN_VGG16.py`): VGG16-BN's 13 conv-BN-ReLU layers with pool4 at stride 1 (2x2 window, so each
side loses one pixel) and no pool5, the three conv5 layers dilated by 2: output stride 8. Head: a
3x3 conv (with bias) to 256 -> BN -> ReLU -> dropout 0.1 -> 1x1 classifier, bilinear upsampling to
the input. No skip fusion and no fc6/fc7. 15,904,066 params at 2 classes (Table 4: 15.53M =
params / 1,024,000). The backbone is torchvision's vgg16_bn conv stack, so ImageNet weights load.

`fcn8s-vgg16`, FCN-8s of Long, Shelhamer & Darrell (CVPR 2015), written from the paper:
VGG16's 13 conv layers, then fc6/fc7 "convolutionalised" (7x7 conv 512->4096 and 1x1
4096->4096, ReLU, dropout 0.5), a 1x1 score layer on fc7, and two skips: the /32 score
is upsampled 2x by a learned deconvolution (initialised to bilinear) and summed with a
1x1 score of pool4, again 2x and summed with a score of pool3 (the skip scores start at
zero, as the paper), then a fixed bilinear 8x upsampling to the input. fc6 is padded
(the paper padded the input by 100 px and cropped instead). With `pretrained=True`, the
convs and fc6/fc7 come from torchvision's ImageNet VGG16, fc weights reshaped to convs.
134.3M params, 119.5M of them in fc6/fc7.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import vgg_features
from .layers import upsample_to
from ._pretrained import imagenet_state_dict
from ._registry import register_model

FC_CHANNELS = 4096
FC6_KERNEL = 7
HEAD_CHANNELS = 256
CONV5_DILATION = 2
FCN_REFERENCE = "Long, Shelhamer & Darrell, Fully Convolutional Networks for Semantic Segmentation, CVPR 2015"


def dilated_vgg16_bn(pretrained: bool = False, in_channels: int = 3) -> nn.Sequential:
    """VGG16-BN conv layers at output stride 8: pool4 at stride 1, pool5 removed, conv5 dilated by 2."""
    stages = list(vgg_features(16, batch_norm=True, pretrained=pretrained, in_channels=in_channels).stages)
    pool4 = stages[3][-1]
    pool4.stride = 1
    conv5 = nn.Sequential(*list(stages[4])[:-1])
    for layer in conv5:
        if isinstance(layer, nn.Conv2d):
            layer.dilation = (CONV5_DILATION, CONV5_DILATION)
            layer.padding = (CONV5_DILATION, CONV5_DILATION)
    return nn.Sequential(*stages[:4], conv5)


class DilatedFCN(nn.Module):
    """Dilated VGG16-BN (output stride 8) -> 3x3 conv-BN-ReLU to 256 -> dropout -> 1x1 -> bilinear up."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> None:
        super().__init__()
        self.backbone = dilated_vgg16_bn(pretrained, in_channels)
        self.head = nn.Sequential(
            nn.Conv2d(512, HEAD_CHANNELS, 3, padding=1),
            nn.BatchNorm2d(HEAD_CHANNELS),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.1),
            nn.Conv2d(HEAD_CHANNELS, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.head(self.backbone(x)), x.shape[-2:])


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
        state = imagenet_state_dict("torchvision", "vgg16", "IMAGENET1K_V1")
        with torch.no_grad():
            for conv, fc in ((self.fc[0], "classifier.0"), (self.fc[3], "classifier.3")):
                conv.weight.copy_(state[f"{fc}.weight"].view_as(conv.weight))
                conv.bias.copy_(state[f"{fc}.bias"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3, pool4, pool5 = self.backbone(x)
        score = self.up_fr(self.score_fr(self.fc(pool5)))
        score = upsample_to(score, pool4.shape[-2:]) + self.score_pool4(pool4)
        score = upsample_to(self.up_pool4(score), pool3.shape[-2:]) + self.score_pool3(pool3)
        return upsample_to(score, x.shape[-2:])


@register_model(
    "fcn-dilated-vgg16bn",
    family="fcn",
    paper_name="FCN-8s",
    backbone="VGG16-BN",
    pretrained_backbone=True,
    reference=FCN_REFERENCE,
    notes=(
        "the authors' build of Table 4's FCN-8s: dilated VGG16-BN (pool4 stride 1, no pool5, conv5 dilation 2, "
        "output stride 8), 3x3 conv to 256 + 1x1 classifier, no skip fusion, no fc6/fc7; the classic FCN-8s "
        "with skips is fcn8s-vgg16"
    ),
    input_multiple=8,
)
def fcn_dilated_vgg16bn(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> DilatedFCN:
    """The authors' FCN-8s: 15,904,066 params at 2 classes (random init unless `pretrained`)."""
    return DilatedFCN(num_classes, in_channels, pretrained)


@register_model(
    "fcn8s-vgg16",
    family="fcn",
    backbone="VGG16",
    pretrained_backbone=True,
    reference=FCN_REFERENCE,
    notes=(
        "not the paper's build: the FCN paper's FCN-8s (fc6/fc7 as 7x7 and 1x1 convs of 4096 ch, pool4 and "
        "pool3 skips), 134.3M params; Table 4's FCN-8s is fcn-dilated-vgg16bn"
    ),
    input_multiple=32,
)
def fcn8s_vgg16(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> FCN8s:
    """FCN-8s with the paper's VGG16 fc6/fc7 (random init unless `pretrained`)."""
    return FCN8s(num_classes, in_channels, pretrained)
