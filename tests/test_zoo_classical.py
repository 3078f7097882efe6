"""One structural fact per family of the classical baselines, from each network's paper.

(U-Net, Attention U-Net, UNet++, FCN-8s, SegNet, FRRN, PSPNet, DeepLabv3, DeepLabv3+,
Inf-Net; the output contract itself is tests/test_models_contract.py.) Inputs are 64x64.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from models import create_model, get_model_info
from models.backbones import resnet_features, vgg_features
from models.fcn import LearnedUp2x
from models.frrn import FRRU
from models.infnet import ReverseAttention
from models.layers import upsample_to
from models.unet import AttentionGate, UNetPlusPlus

SIDE = 64


def _image(batch: int = 1, side: int = SIDE) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch, 3, side, side)


def _capture_inputs(module: nn.Module, model: nn.Module, x: torch.Tensor) -> list[tuple]:
    """Run `model(x)` in eval mode and return the positional inputs `module` received."""
    seen: list[tuple] = []
    handle = module.register_forward_pre_hook(lambda _m, args: seen.append(args))
    model.eval()
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen


# ---- backbones ---------------------------------------------------------------------------


def test_resnet_features_dilate_to_the_output_stride():
    feats = resnet_features(18, output_stride=8)
    maps = feats(_image())
    assert feats.channels == (64, 128, 256, 512)
    assert feats.reductions == (4, 8, 8, 8)
    assert feats.stages[3][0].conv1.dilation == (2, 2) and feats.stages[4][0].conv1.dilation == (4, 4)
    assert [m.shape[1:] for m in maps] == [(c, SIDE // r, SIDE // r) for c, r in zip(feats.channels, feats.reductions)]


def test_resnet_features_build_only_the_requested_stages():
    full = sum(p.numel() for p in resnet_features(18, out_indices=(0, 1, 2, 3, 4)).parameters())
    upto_layer2 = sum(p.numel() for p in resnet_features(18, out_indices=(1, 2)).parameters())
    assert upto_layer2 < full / 5  # layer3 + layer4 hold most of ResNet18's weights


def test_backbones_reject_bad_arguments():
    with pytest.raises(ValueError, match="output_stride"):
        resnet_features(50, output_stride=4)
    with pytest.raises(ValueError, match="depth"):
        vgg_features(15)
    with pytest.raises(ValueError, match="out_indices"):
        resnet_features(18, out_indices=(3, 1))


def test_backbones_take_other_input_channel_counts():
    maps = resnet_features(18, in_channels=1, out_indices=(4,))(torch.randn(1, 1, SIDE, SIDE))
    assert maps[0].shape == (1, 512, 2, 2)


# ---- U-Net family ------------------------------------------------------------------------


def test_unet_has_four_down_four_up_with_doubling_widths():
    model = create_model("unet")
    assert [node[1][0].out_channels for node in model.encoder.nodes] == [32, 64, 128, 256, 512]
    assert [up.out_channels for up in model.ups] == [256, 128, 64, 32]
    wide = create_model("unet", base_channels=64)
    assert [node[1][0].out_channels for node in wide.encoder.nodes] == [64, 128, 256, 512, 1024]
    assert sum(p.numel() for p in wide.parameters()) == pytest.approx(31.04e6, rel=0.01)


def test_attention_gate_scales_the_skip_by_coefficients_in_0_1():
    gate = AttentionGate(skip_channels=8, gate_channels=16, inter_channels=4)
    x, g = torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8)
    alpha = gate.coefficients(x, g)
    assert alpha.shape == (2, 1, 16, 16)
    assert alpha.min() >= 0 and alpha.max() <= 1
    torch.testing.assert_close(gate(x, g), x * alpha)
    nn.init.zeros_(gate.psi.weight)
    nn.init.zeros_(gate.psi.bias)
    torch.testing.assert_close(gate(x, g), x * 0.5)


def test_attention_unet_gates_every_skip_with_the_coarser_decoder_feature():
    model = create_model("attention-unet")
    assert [(g.theta_x.in_channels, g.phi_g.in_channels) for g in model.gates] == [
        (256, 512), (128, 256), (64, 128), (32, 64)
    ]


def test_unetplusplus_nested_skips():
    ids = UNetPlusPlus.node_ids()
    assert len(ids) == 10 and max(i + j for i, j in ids) == 4
    model = create_model("unetplusplus")
    # X(0,4) concatenates X(0,0..3) and the up-convolved X(1,3): 5 inputs of 32 channels
    assert model.nodes["0_4"][0][0].in_channels == 5 * 32
    assert model.nodes["3_1"][0][0].in_channels == 2 * 256
    model.train()
    outs = model(_image(2))
    assert len(outs) == len(get_model_info("unetplusplus").aux_weights) == 4


# ---- FCN-8s, SegNet, FRRN -----------------------------------------------------------------


def test_fcn8s_fuses_pool4_and_pool3_scores():
    model = create_model("fcn8s-vgg16")
    assert model.backbone.channels == (256, 512, 512) and model.backbone.reductions == (8, 16, 32)
    assert model.score_pool3.in_channels == 256 and model.score_pool4.in_channels == 512
    assert model.fc[0].kernel_size == (7, 7) and model.fc[0].out_channels == 4096
    x = _image()
    model.eval()
    with torch.no_grad():
        before = model(x)
        nn.init.constant_(model.score_pool3.bias, 1.0)  # the pool3 skip now adds 1 to class scores
        after = model(x)
    torch.testing.assert_close(after - before, torch.ones_like(before), rtol=0, atol=1e-4)


def test_fcn8s_pretrained_turns_vgg16_fc_layers_into_convs(monkeypatch):
    import torchvision.models as tvm

    torch.manual_seed(0)
    reference = tvm.vgg16(weights=None)
    monkeypatch.setattr(tvm, "vgg16", lambda weights=None: reference)  # stands in for the download
    model = create_model("fcn8s-vgg16", pretrained=True)
    torch.testing.assert_close(model.fc[0].weight.flatten(1), reference.classifier[0].weight)
    torch.testing.assert_close(model.fc[3].weight.flatten(1), reference.classifier[3].weight)
    torch.testing.assert_close(model.backbone.stages[0][0].weight, reference.features[0].weight)


def test_fcn_upsampling_starts_as_bilinear_interpolation():
    up = LearnedUp2x(2)
    out = up(torch.ones(1, 2, 4, 4))
    assert out.shape == (1, 2, 8, 8)
    torch.testing.assert_close(out[..., 1:-1, 1:-1], torch.ones(1, 2, 6, 6))


def test_segnet_decoder_upsamples_by_pooling_indices():
    model = create_model("segnet")
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    x = _image()
    (first_decoder_input,) = _capture_inputs(model.decoder[0], model, x)[0]
    # unpooling puts each of the 2x2 window's max back in place: at most 1 of 4 values is non-zero
    nonzero = (first_decoder_input != 0).float().view(1, 512, SIDE // 32, 2, SIDE // 32, 2).sum(dim=(3, 5))
    assert nonzero.max() == 1
    assert len(model.encoder) == len(model.decoder) == 5


def test_frrn_keeps_a_full_resolution_residual_stream():
    model = create_model("frrn")
    units = [m for m in model.modules() if isinstance(m, FRRU)]
    assert [u.scale for u in units] == [2] * 3 + [4] * 4 + [8] * 2 + [16] * 2 + [8] * 2 + [4] * 2 + [2] * 2
    streams: list[tuple] = []
    hooks = [u.register_forward_pre_hook(lambda _m, args: streams.append(args)) for u in units]
    side = 32
    model.eval()
    with torch.no_grad():
        model(_image(side=side))
    for h in hooks:
        h.remove()
    for unit, (z, y) in zip(units, streams):
        assert y.shape == (1, 32, side, side)
        assert z.shape[-1] == side // unit.scale


# ---- PSPNet, DeepLab ---------------------------------------------------------------------


def test_pspnet_pyramid_bins_and_aux_head():
    model = create_model("pspnet-resnet50")
    assert model.ppm.bins == (1, 2, 3, 6)
    assert [b[0].output_size for b in model.ppm.branches] == [1, 2, 3, 6]
    assert [b[1][0].out_channels for b in model.ppm.branches] == [512] * 4
    assert model.backbone.reductions == (8, 8) and model.aux_head[0].in_channels == 1024
    assert get_model_info("pspnet-resnet50").aux_weights == (1.0, 0.4)


def _aspp_dilations(model: nn.Module) -> list[int]:
    return [m.dilation[0] for m in model.aspp.convs.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def test_deeplabv3_aspp_rates_follow_the_output_stride():
    model = create_model("deeplabv3-resnet50")
    assert model.backbone.reductions == (8,)
    assert _aspp_dilations(model) == [12, 24, 36]
    assert _aspp_dilations(create_model("deeplabv3-resnet50", output_stride=16)) == [6, 12, 18]
    with pytest.raises(ValueError, match="output_stride"):
        create_model("deeplabv3-resnet50", output_stride=32)


def test_deeplabv3plus_projects_stride4_features_to_48_channels():
    model = create_model("deeplabv3plus-xception")
    assert model.backbone.channels == (256, 2048) and model.backbone.reductions == (4, 16)
    assert model.low_level[0].in_channels == 256 and model.low_level[0].out_channels == 48
    assert model.decoder[0][0].in_channels == 256 + 48
    assert _aspp_dilations(model) == [6, 12, 18]
    with torch.no_grad():
        maps = model.backbone.eval()(_image())
    assert [m.shape[1:] for m in maps] == [(256, SIDE // 4, SIDE // 4), (2048, SIDE // 16, SIDE // 16)]


# ---- Inf-Net ------------------------------------------------------------------------------


def test_infnet_reverse_attention_erases_the_predicted_foreground():
    prior = torch.randn(2, 2, 8, 8)
    expected = 1 - torch.sigmoid(prior[:, 1:] - prior[:, :1])  # 1 - P(infection)
    torch.testing.assert_close(ReverseAttention.weights(prior), expected)


def test_infnet_cascade_and_deep_supervision():
    model = create_model("infnet-resnet50")
    assert [m.reduce[0].in_channels for m in model.reverse] == [2048, 1024, 512]  # f5, f4, f3
    assert [m.body[0][0].kernel_size for m in model.reverse] == [(5, 5), (3, 3), (3, 3)]
    x = _image()
    finest: list[torch.Tensor] = []
    hook = model.reverse[-1].register_forward_hook(lambda _m, _args, out: finest.append(out))
    model.eval()
    with torch.no_grad():
        main = model(x)
    hook.remove()
    torch.testing.assert_close(main, upsample_to(finest[0], (SIDE, SIDE)))  # eval returns S_3
    assert get_model_info("infnet-resnet50").aux_weights == (1.0, 1.0, 1.0, 1.0)  # S_3, S_4, S_5, S_g
