"""Structure of the classical baselines as the MiniSeg authors built them (Table 4 rows), one or two
facts per family, plus their exact parameter counts and the authors' FLOP counter against
benchmark/paper/table4_authors_builds.csv.

(U-Net, Attention U-Net, UNet++, FCN-8s, SegNet, FRRN, DenseASPP, DeepLabv3+, Inf-Net, and the
shared backbones; PSPNet and DeepLabv3 tests sit here too. The output contract itself is
tests/test_models_contract.py.) Inputs are 64x64; counts are taken on the meta device.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark import paper
from benchmark.profiling.paper_flops import count_paper_flops
from models import create_model, get_model_info
from models.backbones import resnet_features, vgg_features
from models.deeplab import AlignedXception, XceptionBlock, xception_imagenet_state
from models.denseaspp import RATES, DenseASPPNet, DenseLayer, Transition
from models.fcn import LearnedUp2x
from models.frrn import FRRU
from models.infnet import InfNet, background_probability
from models.unet import AttentionGate, UNetPlusPlus

SIDE = 64
# Table 4 row -> the registered authors' build
BUILDS = {
    "U-Net": "unet",
    "Attention U-Net": "attention-unet",
    "UNet++": "unetplusplus",
    "FCN-8s": "fcn-dilated-vgg16bn",
    "SegNet": "segnet",
    "FRRN": "frrn",
    "DenseASPP": "denseaspp",
    "DeepLabv3+": "deeplabv3plus-xception",
    "Inf-Net": "infnet-resnet50",
}


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


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _csv_row(row: str):
    return paper.authors_builds().set_index("method").loc[row]


def _offline_imagenet(monkeypatch, torchvision: dict | None = None, timm: dict | None = None) -> None:
    """Serve the given random reference models as the "ImageNet" weights (stands in for the download)."""
    import models._pretrained as pretrained

    tv, tm = torchvision or {}, timm or {}
    monkeypatch.setattr(pretrained, "_torchvision_state", lambda ref: tv[ref.name].state_dict())
    monkeypatch.setattr(pretrained, "timm_model", lambda name, pretrained=False, **kwargs: tm[name])


# ---- the authors' builds against the CSV ---------------------------------------------------


@pytest.mark.parametrize("row", sorted(BUILDS))
def test_registered_build_has_the_authors_exact_parameter_count(row):
    name = BUILDS[row]
    assert paper.registered_rows()[row] == name
    assert _n_params(_meta_model(name)) == int(_csv_row(row)["params"])


@pytest.mark.parametrize("row", sorted(set(BUILDS) - {"Inf-Net"}))
def test_authors_flop_counter_gives_the_printed_gflops(row):
    count = count_paper_flops(_meta_model(BUILDS[row]), 512)
    assert count.device == "meta"
    assert count.printed == f"{float(_csv_row(row)['authors_counter_gflops']):.2f}"


def test_infnet_flop_count_is_the_authors_less_its_unrun_edge_head():
    model = _meta_model("infnet-resnet50")
    conv = model.edge_head[0]
    side = 512 // 4  # the edge head reads layer1's features
    conv_ops = conv.out_channels * conv.in_channels * 9 * side * side
    edge_head_ops = conv_ops + conv.out_channels * side * side  # conv + its BN
    total = count_paper_flops(model, 512).total
    assert f"{(total + edge_head_ops) / 1e9:.2f}" == f"{float(_csv_row('Inf-Net')['authors_counter_gflops']):.2f}"


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


def test_unet_widths_and_nearest_upsampling_convs():
    model = _meta_model("unet")
    assert [node[1][0].out_channels for node in model.encoder.nodes] == [32, 64, 128, 256, 512]
    assert all(isinstance(up[0], nn.Upsample) and up[0].mode == "nearest" for up in model.ups)
    assert [up[1][0].out_channels for up in model.ups] == [256, 128, 64, 32]
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    wide = _meta_model("unet-w64")
    assert [node[1][0].out_channels for node in wide.encoder.nodes] == [64, 128, 256, 512, 1024]
    assert get_model_info("unet-w64").paper_name is None


def test_attention_gate_scales_the_skip_by_coefficients_in_0_1():
    gate = AttentionGate(gate_channels=16, skip_channels=8, inter_channels=4).eval()
    x, g = torch.randn(2, 8, 16, 16), torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        alpha = gate.coefficients(x, g)
        assert alpha.shape == (2, 1, 16, 16)
        assert alpha.min() >= 0 and alpha.max() <= 1
        torch.testing.assert_close(gate(x, g), x * alpha)
        nn.init.zeros_(gate.psi[0][0].weight)
        nn.init.zeros_(gate.psi[0][0].bias)
        torch.testing.assert_close(gate(x, g), x * 0.5)  # BN in eval with fresh stats keeps 0


def test_attention_unet_gates_every_skip_with_the_upsampled_decoder_feature():
    model = create_model("attention-unet")
    assert [g.w_x[0].in_channels for g in model.gates] == [256, 128, 64, 32]
    assert [g.w_g[0].out_channels for g in model.gates] == [128, 64, 32, 32]  # the finest gate keeps 32
    wide = _meta_model("attention-unet-w64")
    assert [g.w_g[0].out_channels for g in wide.gates] == [256, 128, 64, 32]
    (skip, g) = _capture_inputs(model.gates[-1], model, _image())[0]
    assert skip.shape == g.shape == (1, 32, SIDE, SIDE)


def test_unetplusplus_nested_skips_bilinear_up_and_one_head():
    ids = UNetPlusPlus.node_ids()
    assert len(ids) == 10 and max(i + j for i, j in ids) == 4
    model = create_model("unetplusplus")
    # X(0,4) concatenates X(0,0..3) and the upsampled X(1,3): 4 x 32 + 64 channels
    assert model.nodes["0_4"][0][0].in_channels == 4 * 32 + 64
    assert model.nodes["3_1"][0][0].in_channels == 256 + 512
    assert model.up.mode == "bilinear" and model.up.align_corners
    model.train()
    assert isinstance(model(_image(2)), torch.Tensor)
    assert get_model_info("unetplusplus").aux_weights == (1.0,)


# ---- FCN-8s, SegNet, FRRN -----------------------------------------------------------------


def test_fcn_authors_build_is_a_dilated_vgg16bn_at_output_stride_8():
    model = _meta_model("fcn-dilated-vgg16bn")
    pools = [m for m in model.backbone.modules() if isinstance(m, nn.MaxPool2d)]
    assert [p.stride for p in pools] == [2, 2, 2, 1]  # pool4 at stride 1, no pool5
    conv5 = [m for m in model.backbone[4] if isinstance(m, nn.Conv2d)]
    assert [c.dilation for c in conv5] == [(2, 2)] * 3
    assert model.head[0].kernel_size == (3, 3) and model.head[0].out_channels == 256
    feats = model.backbone(_image().to("meta"))
    assert feats.shape == (1, 512, SIDE // 8 - 1, SIDE // 8 - 1)  # pool4's 2x2 window at stride 1 drops a pixel


def test_fcn_authors_backbone_holds_torchvision_vgg16_bn_weights_one_to_one():
    import torchvision.models as tvm

    with torch.device("meta"):
        reference = [t.shape for t in tvm.vgg16_bn(weights=None).features.state_dict().values()]
    ours = [t.shape for t in _meta_model("fcn-dilated-vgg16bn").backbone.state_dict().values()]
    assert ours == reference


@pytest.mark.slow
def test_classic_fcn8s_fuses_pool4_and_pool3_scores():
    model = create_model("fcn8s-vgg16")
    assert get_model_info("fcn8s-vgg16").paper_name is None
    assert model.backbone.channels == (256, 512, 512) and model.backbone.reductions == (8, 16, 32)
    assert model.fc[0].kernel_size == (7, 7) and model.fc[0].out_channels == 4096
    x = _image()
    model.eval()
    with torch.no_grad():
        before = model(x)
        nn.init.constant_(model.score_pool3.bias, 1.0)  # the pool3 skip now adds 1 to class scores
        after = model(x)
    torch.testing.assert_close(after - before, torch.ones_like(before), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_fcn8s_pretrained_turns_vgg16_fc_layers_into_convs(monkeypatch):
    import torchvision.models as tvm

    torch.manual_seed(0)
    reference = tvm.vgg16(weights=None)
    _offline_imagenet(monkeypatch, torchvision={"vgg16": reference})
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
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.ReLU, nn.MaxPool2d)) for m in model.modules())
    assert [[c[0].out_channels for c in stage] for stage in model.decoder] == [
        [512, 512, 512], [512, 512, 256], [256, 256, 128], [128, 64], [64]
    ]
    assert model.classifier.kernel_size == (3, 3) and model.classifier.in_channels == 64
    (first_decoder_input,) = _capture_inputs(model.decoder[0], model, _image())[0]
    # unpooling puts each of the 2x2 window's max back in place: at most 1 of 4 values is non-zero
    nonzero = (first_decoder_input != 0).float().view(1, 512, SIDE // 32, 2, SIDE // 32, 2).sum(dim=(3, 5))
    assert nonzero.max() == 1


def test_frrn_keeps_a_full_resolution_residual_stream():
    model = create_model("frrn")
    units = [m for m in model.modules() if isinstance(m, FRRU)]
    assert [u.scale for u in units] == [2] * 3 + [4] * 4 + [8] * 2 + [16] * 2 + [8] * 2 + [4] * 2 + [2] * 2
    assert [u.pool.stride for u in units[:3]] == [2, 2, 2] and units[0].pool.kernel_size == 3
    streams: list[tuple] = []
    hooks = [u.register_forward_pre_hook(lambda _m, args: streams.append(args)) for u in units]
    side = 32
    model.eval()
    with torch.no_grad():
        model(_image(side=side))
    for h in hooks:
        h.remove()
    for unit, (y, z) in zip(units, streams):
        assert z.shape == (1, 32, side, side)
        assert y.shape[-1] == side // unit.scale


# ---- DenseASPP ----------------------------------------------------------------------------


def test_denseaspp_authors_densenet_and_dense_atrous_layers():
    with torch.device("meta"):
        net = DenseASPPNet(2, 3)
    assert RATES == (3, 6, 12, 18, 24)
    dilated = [m for m in net.aspp.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [m.dilation[0] for m in dilated] == list(RATES)
    reduce = [next(m for m in layer if isinstance(m, nn.Conv2d)) for layer in net.aspp.layers]
    assert [m.in_channels for m in reduce] == [960 + 240 * i for i in range(5)]
    assert not isinstance(net.aspp.layers[0][0], nn.BatchNorm2d) and isinstance(net.aspp.layers[1][0], nn.BatchNorm2d)
    blocks = [m for m in net.backbone if isinstance(m, nn.Sequential) and isinstance(m[0], DenseLayer)]
    assert [len(b) for b in blocks] == [6, 12, 48, 32]  # DenseNet-201
    assert [b[0][-1].dilation[0] for b in blocks] == [1, 1, 2, 4]
    transitions = [m for m in net.backbone if isinstance(m, Transition)]
    assert [any(isinstance(x, nn.AvgPool2d) for x in t) for t in transitions] == [True, False, False, False]
    assert net.backbone(_image().to("meta")).shape == (1, 960, SIDE // 8, SIDE // 8)
    assert isinstance(net.backbone[-1], nn.BatchNorm2d)  # no ReLU after the final BN


# ---- DeepLabv3+ ----------------------------------------------------------------------------


def test_deeplabv3plus_authors_xception_and_decoder():
    model = _meta_model("deeplabv3plus-xception")
    blocks = [m for m in model.backbone.children() if isinstance(m, XceptionBlock)]
    assert len(blocks) == 20
    assert [m.rep[-1].conv1.stride for m in blocks[:3]] == [(2, 2)] * 3  # strided separable convs, no max-pool
    assert [b[0].dilation[0] for b in model.aspp] == [1, 6, 12, 18]
    assert model.low_level.in_channels == 128 and model.low_level.out_channels == 48
    assert model.decoder[0].in_channels == 256 + 48 and model.decoder[0].kernel_size == (3, 3)
    assert model.backbone.conv5.conv1.dilation == (2, 2)
    top, low = model.backbone(_image().to("meta"))
    assert top.shape == (1, 2048, SIDE // 16, SIDE // 16) and low.shape == (1, 128, SIDE // 4, SIDE // 4)


def test_xception_block_shares_one_relu_and_rectifies_the_skip_input():
    block = XceptionBlock(8, 8, reps=3).eval()
    assert block.rep[0] is block.relu and block.rep[3] is block.relu
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), block.rep(x) + F.relu(x))  # identity skip reads relu(x)
    with torch.device("meta"):
        assert AlignedXception(output_stride=8).block3.rep[-1].conv1.stride == (1, 1)
    with pytest.raises(ValueError, match="output_stride"):
        AlignedXception(output_stride=32)


def test_xception_imagenet_weights_are_placed_as_the_authors_loader_does():
    import timm

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in timm.create_model("legacy_xception", pretrained=False).state_dict().items()}
        target = AlignedXception().state_dict()
    source = {k: torch.full(shape, float(i)) for i, (k, shape) in enumerate(shapes.items())}  # each tensor tagged
    placed = xception_imagenet_state(source, target)

    def came_from(key: str) -> str:
        return list(source)[int(placed[key].flatten()[0])]

    assert came_from("block20.rep.4.pointwise.weight") == "block12.rep.4.pointwise.weight"
    assert came_from("block12.rep.1.conv1.weight") == "block11.rep.1.conv1.weight"
    assert came_from("bn4.weight") == came_from("bn3.weight") == "bn3.weight"
    assert came_from("conv5.pointwise.weight") == "conv4.pointwise.weight"
    assert came_from("block5.rep.1.conv1.weight") == "block5.rep.1.conv1.weight"
    assert "block20.skip.weight" not in placed  # the authors keep a key only if their model has its source name
    assert not any(k.startswith(("block11.", "block13.", "block19.", "fc")) for k in placed)
    assert "block1.rep.5.conv1.weight" not in placed  # the strided conv replaces a max-pool: stays random
    assert all(placed[k].shape == target[k].shape for k in placed)


def test_deeplabv3plus_pretrained_loads_legacy_xception(monkeypatch):
    import timm

    torch.manual_seed(0)
    reference = timm.create_model("legacy_xception", pretrained=False)
    _offline_imagenet(monkeypatch, timm={"legacy_xception": reference})
    model = create_model("deeplabv3plus-xception", pretrained=True)
    torch.testing.assert_close(model.backbone.conv1.weight, reference.conv1.weight)
    torch.testing.assert_close(model.backbone.block20.rep[1].conv1.weight, reference.block12.rep[1].conv1.weight)


# ---- PSPNet, DeepLabv3 (helper B's rows) --------------------------------------------------


def test_pspnet_pyramid_bins_and_no_aux_head():
    model = create_model("pspnet-resnet50")
    assert model.ppm.bins == (1, 2, 3, 6)
    assert [b[0].output_size for b in model.ppm.branches] == [1, 2, 3, 6]
    assert [b[1].out_channels for b in model.ppm.branches] == [512] * 4
    assert model.backbone.reductions == (8,) and get_model_info("pspnet-resnet50").aux_weights == (1.0,)


def _aspp_dilations(model: nn.Module) -> list[int]:
    return [m.dilation[0] for m in model.aspp.convs.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def test_deeplabv3_aspp_rates_follow_the_output_stride():
    model = create_model("deeplabv3-resnet50")
    assert model.backbone.reductions == (8,)
    assert _aspp_dilations(model) == [12, 24, 36]
    assert _aspp_dilations(create_model("deeplabv3-resnet50", output_stride=16)) == [6, 12, 18]
    with pytest.raises(ValueError, match="output_stride"):
        create_model("deeplabv3-resnet50", output_stride=32)


# ---- Inf-Net ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def infnet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("infnet-resnet50")


def test_infnet_two_class_logits_are_zero_and_z_so_cross_entropy_is_sigmoid_bce(infnet):
    model = infnet.eval()
    with torch.no_grad():
        logits = model(_image())
    assert logits.shape == (1, 2, SIDE, SIDE)
    assert torch.equal(logits[:, 0], torch.zeros_like(logits[:, 0]))
    target = (torch.rand(1, SIDE, SIDE) > 0.5).long()
    z = logits[:, 1]
    torch.testing.assert_close(
        F.cross_entropy(logits, target), F.binary_cross_entropy_with_logits(z, target.float())
    )


def test_infnet_reverse_attention_is_one_minus_sigmoid():
    z = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(background_probability(z), 1 - torch.sigmoid(z))
    many = torch.randn(2, 3, 8, 8)
    expected = torch.softmax(torch.cat([torch.zeros_like(many[:, :1]), many], 1), 1)[:, :1]
    torch.testing.assert_close(background_probability(many), expected)


def test_infnet_cascade_and_deep_supervision(infnet):
    model = infnet
    assert [m.reduce[0].in_channels for m in model.reverse] == [2048, 1024, 512]  # f4, f3, f2
    assert [m.convs[0][0].kernel_size for m in model.reverse] == [(5, 5), (3, 3), (3, 3)]
    assert [m.predict[0].kernel_size for m in model.reverse] == [(1, 1), (3, 3), (3, 3)]
    assert model.backbone.reductions == (4, 8, 16, 32)
    x = _image(2)
    model.eval()
    with torch.no_grad():
        maps = model.maps(x)  # S_g, S_4, S_3, S_2
        main = model(x)
    assert [m.shape[-1] for m in maps] == [SIDE // 8, SIDE // 32, SIDE // 16, SIDE // 8]
    torch.testing.assert_close(main[:, 1:], F.interpolate(maps[-1], size=(SIDE, SIDE), mode="bilinear"))
    model.train()
    assert len(model(x)) == len(get_model_info("infnet-resnet50").aux_weights) == 4
    assert get_model_info("infnet-resnet50").aux_weights == (1.0, 0.4, 0.4, 0.4)  # S_2, S_3, S_4, S_g
    with pytest.raises(ValueError, match="num_classes"):
        InfNet(num_classes=1)
