"""Library models (segmentation-models-pytorch, torchvision, timm encoders), registered by loop.

Random initialisation by default: nothing downloads at run time. `pretrained=True`
asks the library for ImageNet weights (users with internet only).
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

from .layers import upsample_to
from ._registry import ModelInfo, add_model_info

SMP_REFERENCE = "Iakubovskii, Segmentation Models PyTorch (github.com/qubvel-org/segmentation_models.pytorch)"
TV_REFERENCE = "torchvision.models.segmentation (TorchVision maintainers)"

# (registry name, smp class name, encoder name, min input side)
SMP_MODELS: tuple[tuple[str, str, str, int], ...] = (
    ("smp-unet-resnet34", "Unet", "resnet34", 32),
    ("smp-unetplusplus-resnet34", "UnetPlusPlus", "resnet34", 32),
    ("smp-deeplabv3-resnet34", "DeepLabV3", "resnet34", 32),
    ("smp-deeplabv3plus-resnet34", "DeepLabV3Plus", "resnet34", 32),
    ("smp-fpn-resnet34", "FPN", "resnet34", 32),
    ("smp-pspnet-resnet34", "PSPNet", "resnet34", 32),
    ("smp-linknet-resnet34", "Linknet", "resnet34", 32),
    ("smp-manet-resnet34", "MAnet", "resnet34", 32),
    ("smp-pan-resnet34", "PAN", "resnet34", 128),
    ("smp-upernet-resnet34", "UPerNet", "resnet34", 32),
    ("smp-segformer-mit_b0", "Segformer", "mit_b0", 32),
    ("smp-unet-efficientnet-b0", "Unet", "efficientnet-b0", 32),
    ("smp-unet-tu-convnext_atto", "Unet", "tu-convnext_atto", 32),
    ("smp-fpn-tu-mobilenetv3_large_100", "FPN", "tu-mobilenetv3_large_100", 32),
)

# (registry name, torchvision builder name, torchvision backbone, aux loss weight or None)
TV_MODELS: tuple[tuple[str, str, str, float | None], ...] = (
    ("tv-fcn-resnet50", "fcn_resnet50", "ResNet50", 0.5),
    ("tv-deeplabv3-resnet50", "deeplabv3_resnet50", "ResNet50", 0.5),
    ("tv-deeplabv3-mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "MobileNetV3-Large", 0.5),
    ("tv-lraspp-mobilenet_v3_large", "lraspp_mobilenet_v3_large", "MobileNetV3-Large", None),
)


def build_smp(
    arch: str, encoder: str, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False
) -> nn.Module:
    """An smp model; smp already returns logits at the input size."""
    import segmentation_models_pytorch as smp

    cls = getattr(smp, arch)
    return cls(
        encoder_name=encoder,
        encoder_weights="imagenet" if pretrained else None,
        in_channels=in_channels,
        classes=num_classes,
    )


def replace_first_conv(module: nn.Module, in_channels: int) -> None:
    """Swap the first Conv2d for one taking `in_channels` (same shape otherwise)."""
    for parent in module.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                if child.in_channels != in_channels:
                    setattr(
                        parent,
                        child_name,
                        nn.Conv2d(
                            in_channels, child.out_channels, child.kernel_size, child.stride,
                            child.padding, child.dilation, child.groups, child.bias is not None,
                        ),
                    )
                return


class TorchvisionSegmentation(nn.Module):
    """A torchvision segmentation model under the output contract.

    Calls backbone and heads itself so that the auxiliary classifier runs only in train
    mode (torchvision's own forward computes it in eval mode too, and throws it away).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.classifier = model.classifier
        self.aux_classifier = getattr(model, "aux_classifier", None)

    def forward(self, x: torch.Tensor):
        features = self.backbone(x)
        size = x.shape[-2:]
        main = upsample_to(self.classifier(features) if self._takes_dict() else self.classifier(features["out"]), size)
        if not self.training or self.aux_classifier is None:
            return main
        return main, upsample_to(self.aux_classifier(features["aux"]), size)

    def _takes_dict(self) -> bool:
        """LRASPP's head reads several backbone levels from the feature dict; the others read 'out'."""
        return type(self.classifier).__name__ == "LRASPPHead"


def build_torchvision(
    builder: str, with_aux: bool, num_classes: int = 2, in_channels: int = 3, pretrained: bool = False
) -> nn.Module:
    """A torchvision segmentation model adapted to the output contract ((main, aux) in train mode)."""
    from torchvision.models import segmentation

    kwargs = {"weights": None, "num_classes": num_classes, "weights_backbone": "DEFAULT" if pretrained else None}
    if with_aux:
        kwargs["aux_loss"] = True
    model = getattr(segmentation, builder)(**kwargs)
    if in_channels != 3:
        replace_first_conv(model.backbone, in_channels)
    return TorchvisionSegmentation(model)


def _register_all() -> None:
    for name, arch, encoder, min_size in SMP_MODELS:
        _add(
            name,
            partial(build_smp, arch, encoder),
            family=f"smp-{arch.lower()}",
            source="smp",
            backbone=encoder,
            reference=SMP_REFERENCE,
            min_input_size=min_size,
            input_multiple=32,
        )
    for name, builder, backbone, aux_weight in TV_MODELS:
        _add(
            name,
            partial(build_torchvision, builder, aux_weight is not None),
            family=f"tv-{builder.split('_')[0]}",
            source="torchvision",
            backbone=backbone,
            aux_weights=(1.0, aux_weight) if aux_weight is not None else (1.0,),
            reference=TV_REFERENCE,
            notes="aux head trained with weight 0.5 as in torchvision's reference recipe" if aux_weight else "",
            min_input_size=32,
            input_multiple=8,
        )


def _add(name: str, builder: Callable[..., nn.Module], **fields) -> None:
    def build(num_classes: int = 2, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
        return builder(num_classes=num_classes, in_channels=in_channels, pretrained=pretrained)

    build.__name__ = build.__qualname__ = name.replace("-", "_")
    build.__doc__ = f"{name}: library model ({fields['source']}), random init unless pretrained=True."
    add_model_info(ModelInfo(name=name, builder=build, **fields))


_register_all()
