"""Structural facts of the context-module rows (PSPNet .. GFF) as the authors built them, one or two per family.

Whole ResNet-101 models are built on the meta device (no memory, no arithmetic) for counts and
structure; real forwards run on small blocks or small inputs only.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision import models as tvm

from benchmark import paper
from benchmark.profiling.paper_flops import count_paper_flops, leaf_registrations
from models import create_model, get_model_info
from models.annnet import AFNB, APNB, PYRAMID_SIZES
from models.backbones import caffe_resnet_features, resnet_v1b_features
from models.bisenet import BiSeNet
from models.ccnet import CrissCrossAttention, RCCAHead
from models.danet import ChannelAttention, DANetHead, PositionAttention
from models.dupsampling import DUpsample
from models.encnet import ContextEncoding, Encoding
from models.gff import GatedFullyFusion
from models.layers import attend, pyramid_sample
from models.ocnet import ObjectContext
from models.pspnet import PyramidPooling

# Table 4 row -> our registered build of it (the authors' build, exact counts).
BUILDS = {
    "PSPNet": "pspnet-resnet101",
    "DeepLabv3": "deeplabv3-resnet50",
    "DFN": "dfn-resnet101",
    "EncNet": "encnet-resnet101",
    "OCNet": "ocnet-resnet101",
    "DUpsampling": "dupsampling-resnet50",
    "DANet": "danet-resnet101",
    "CCNet": "ccnet-resnet50",
    "ANNNet": "annnet-resnet50",
    "GFF": "gff-resnet101",
    "BiSeNet": "bisenet-resnet18",
}
# The ResNet-50 versions of the ResNet-101 rows (and CCNet's two-pass version): variants, no paper row.
VARIANTS = {
    "pspnet-resnet50": "pspnet-resnet101",
    "dfn-resnet50": "dfn-resnet101",
    "encnet-resnet50": "encnet-resnet101",
    "ocnet-resnet50": "ocnet-resnet101",
    "danet-resnet50": "danet-resnet101",
    "gff-resnet50": "gff-resnet101",
    "ccnet-r2-resnet50": "ccnet-resnet50",
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _perturbed(x: torch.Tensor, row: int, col: int) -> torch.Tensor:
    """A copy of `x` with one pixel (all channels) changed."""
    y = x.clone()
    y[:, :, row, col] += 5.0
    return y


def _on_meta(name: str, **kwargs) -> nn.Module:
    """The registered model built on the meta device."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# The authors' builds: exact counts ----------------------------------------------------------------
@pytest.mark.parametrize("row", sorted(BUILDS))
def test_build_has_the_authors_exact_parameter_count(row):
    name = BUILDS[row]
    assert paper.registered_rows()[row] == name
    expected = int(paper.authors_builds().set_index("method").loc[row, "params"])
    assert _params(_on_meta(name)) == expected


@pytest.mark.parametrize("row", sorted(BUILDS))
def test_build_reproduces_the_authors_counter(row):
    expected = float(paper.authors_builds().set_index("method").loc[row, "authors_counter_gflops"])
    ours = count_paper_flops(_on_meta(BUILDS[row])).gflops
    assert ours == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_have_no_paper_row_and_share_the_build_family(variant):
    info, build = get_model_info(variant), get_model_info(VARIANTS[variant])
    assert info.paper_name is None and build.paper_name is not None
    assert info.family == build.family and info.notes.startswith("not the paper's build")


# Backbones ------------------------------------------------------------------------------------------
def _convs(module: nn.Module) -> list[tuple]:
    return [(m.weight.shape, m.stride, m.dilation, m.padding) for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_v1b_backbone_is_torchvisions_dilated_resnet_without_fc():
    with torch.device("meta"):
        ours = resnet_v1b_features(101)
        reference = tvm.resnet101(replace_stride_with_dilation=[False, True, True])
    assert _convs(ours) == _convs(nn.Sequential(*list(reference.children())[:-2]))
    assert [p.shape for p in ours.parameters()] == [p.shape for n, p in reference.named_parameters() if "fc" not in n]
    assert ours.reductions == (4, 8, 8, 8)


def _dilations(stage: nn.Module) -> set[int]:
    return {m.dilation[0] for m in stage.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)}


def test_caffe_backbone_strides_in_the_1x1_rounds_up_and_dilates_every_block():
    feats = caffe_resnet_features(50, out_indices=(1, 2, 4)).eval()
    first = feats.stages[2][0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)
    assert _dilations(feats.stages[3]) == {2} and _dilations(feats.stages[4]) == {4}
    with torch.no_grad():
        c1, c2, c4 = feats(torch.randn(1, 3, 64, 64))
    assert c1.shape[-1] == 17 and c2.shape[-1] == c4.shape[-1] == 9, "ceil-mode pool: 32 -> 17 -> 9"


# PSPNet --------------------------------------------------------------------------------------------
@torch.no_grad()
def test_pyramid_pooling_concatenates_four_bins_and_shrinks_by_its_unpadded_conv():
    ppm = PyramidPooling(16, out_channels=8).eval()
    assert [b[0].output_size for b in ppm.branches] == [1, 2, 3, 6]
    assert [b[1].out_channels for b in ppm.branches] == [4] * 4 and ppm.branches[0][1].bias is None
    conv, _, act = ppm.bottleneck
    assert conv.in_channels == 32 and conv.padding == (0, 0) and isinstance(act, nn.PReLU)
    assert ppm(torch.randn(1, 16, 9, 11)).shape == (1, 8, 7, 9)


def test_pspnet_build_has_no_aux_head():
    model = _on_meta("pspnet-resnet101")
    assert get_model_info("pspnet-resnet101").aux_weights == (1.0,)
    assert [len(stage) for stage in model.backbone.stages[2:]] == [4, 23, 3], "ResNet-101 layout"


# DFN -----------------------------------------------------------------------------------------------
def test_dfn_holds_its_backbone_twice_and_the_authors_counter_sees_it_twice():
    model = _on_meta("dfn-resnet101")
    assert model.backbone.stages[4] is model.resnet.layer4 and model.backbone.stages[0][0] is model.resnet.conv1
    paths = [path for path, leaf in leaf_registrations(model) if leaf is model.resnet.conv1]
    assert sorted(paths) == ["backbone.stages.0.0", "resnet.conv1"]
    assert isinstance(model.resnet.fc, nn.Linear), "the unused ImageNet fc is counted, as in the file"
    counted = count_paper_flops(model)
    assert counted.by_module["backbone.stages.0.0"] == counted.by_module["resnet.conv1"] > 0


def test_dfn_main_and_border_outputs_in_train_mode():
    model = create_model("dfn-resnet50", num_classes=3).train()
    main, border = model(torch.randn(2, 3, 64, 64))
    assert main.shape == border.shape == (2, 3, 64, 64)
    assert model.smooth_in[0].unify.out_channels == 3, "head widths are the class count"
    assert get_model_info("dfn-resnet101").aux_weights == (1.0, 0.4)


# CCNet ---------------------------------------------------------------------------------------------
@torch.no_grad()
def test_criss_cross_attention_sees_exactly_its_row_and_column():
    cca = CrissCrossAttention(16).eval()
    cca.gamma.fill_(1.0)
    x = torch.randn(1, 16, 7, 9)
    out = cca(x)[:, :, 3, 4]
    assert torch.allclose(cca(_perturbed(x, 5, 6))[:, :, 3, 4], out, atol=1e-6), "off-cross pixel leaked in"
    assert not torch.allclose(cca(_perturbed(x, 3, 8))[:, :, 3, 4], out, atol=1e-4), "same row ignored"
    assert not torch.allclose(cca(_perturbed(x, 0, 4))[:, :, 3, 4], out, atol=1e-4), "same column ignored"
    twice = cca(cca(x))[:, :, 3, 4]
    assert not torch.allclose(cca(cca(_perturbed(x, 5, 6)))[:, :, 3, 4], twice, atol=1e-4), "R=2 must reach everywhere"


@torch.no_grad()
def test_criss_cross_weights_are_uniform_over_h_plus_w_minus_1_pixels_when_energies_tie():
    cca = CrissCrossAttention(8)
    assert torch.equal(cca(torch.ones(1, 8, 3, 3)), torch.ones(1, 8, 3, 3)), "gamma starts at 0"
    cca.gamma.fill_(1.0)
    for conv in (cca.query, cca.key):
        nn.init.zeros_(conv.weight), nn.init.zeros_(conv.bias)
    nn.init.zeros_(cca.value.bias)
    cca.value.weight.copy_(torch.eye(8).view(8, 8, 1, 1))
    x = torch.randn(2, 8, 5, 6)
    cross = x[:, :, 2, :].sum(-1) + x[:, :, :, 3].sum(-1) - x[:, :, 2, 3]
    expected = x[:, :, 2, 3] + cross / (5 + 6 - 1)
    assert torch.allclose(cca(x)[:, :, 2, 3], expected, atol=1e-5)


def test_ccnet_build_makes_one_pass_and_the_variant_two():
    calls: list[int] = []
    head = RCCAHead(16, 2, recurrence=1).eval()
    head.attention.register_forward_hook(lambda *_: calls.append(1))
    head(torch.randn(1, 16, 5, 5))
    assert calls == [1]
    assert _on_meta("ccnet-resnet50").head.recurrence == 1
    assert _on_meta("ccnet-r2-resnet50").head.recurrence == 2
    assert not isinstance(head.bottleneck[0][-1], nn.ReLU), "the bottleneck is conv + BN without ReLU"


# DANet ---------------------------------------------------------------------------------------------
@torch.no_grad()
def test_danet_has_position_and_channel_attention_with_zero_initial_scales_and_one_classifier():
    head = DANetHead(64, 2, channels=32)
    modules = [type(m) for m in head.modules()]
    assert modules.count(PositionAttention) == 1 and modules.count(ChannelAttention) == 1
    assert sum(isinstance(m, nn.Conv2d) and m.out_channels == 2 for m in head.modules()) == 1, "aux=False"
    pam, cam = head.position[1], head.channel[1]
    assert pam.query.out_channels == pam.key.out_channels == 32 // 8 and pam.value.out_channels == 32
    assert [p.numel() for p in cam.parameters()] == [1], "CAM has only the scale beta"
    x = torch.randn(1, 32, 5, 6)
    assert torch.equal(pam(x), x) and torch.equal(cam(x), x), "alpha = beta = 0 at initialisation"


@torch.no_grad()
def test_position_attention_is_global_and_channel_attention_uses_max_minus_energy():
    pam, cam = PositionAttention(16).eval(), ChannelAttention()
    pam.alpha.fill_(1.0)
    cam.beta.fill_(1.0)
    x = torch.randn(1, 16, 6, 7)
    perm = torch.randperm(42)
    shuffled = x.flatten(2)[:, :, perm].view_as(x)
    assert torch.allclose(pam(shuffled).flatten(2), pam(x).flatten(2)[:, :, perm], atol=1e-5)
    assert not torch.allclose(pam(_perturbed(x, 5, 6))[:, :, 0, 0], pam(x)[:, :, 0, 0], atol=1e-4)
    channels = torch.randperm(16)
    assert torch.allclose(cam(x[:, channels]), cam(x)[:, channels], atol=1e-5)
    flat = x.flatten(2)[0]
    weights = torch.softmax(-(flat @ flat.t()), dim=-1)  # softmax(max - energy) = softmax(-energy)
    assert torch.allclose(cam(x)[0, 0].flatten(), flat[0] + weights[0] @ flat, atol=1e-4)


# OCNet ---------------------------------------------------------------------------------------------
@torch.no_grad()
def test_object_context_shares_key_and_query_and_attends_to_every_pixel():
    oc = ObjectContext(32, key_channels=16, value_channels=16).eval()
    assert not hasattr(oc, "query"), "base-OC shares one transform for key and query"
    x = torch.randn(1, 32, 6, 5)
    assert not oc(x).any(), "W starts at zero"
    nn.init.normal_(oc.out.weight)
    base = oc(x)
    changed = (oc(_perturbed(x, 5, 4)) - base).abs().amax(1)[0]
    assert (changed > 1e-6).all(), "every pixel's context must depend on every pixel"
    perm = torch.randperm(30)
    assert torch.allclose(oc(x.flatten(2)[:, :, perm].view_as(x)).flatten(2), base.flatten(2)[:, :, perm], atol=1e-5)


# ANNNet --------------------------------------------------------------------------------------------
def test_pyramid_sampling_gives_110_anchors_whatever_the_size():
    assert PYRAMID_SIZES == (1, 3, 6, 8)
    for size in ((8, 8), (13, 17), (64, 80)):
        x = torch.randn(2, 4, *size)
        anchors = pyramid_sample(x, PYRAMID_SIZES)
        assert anchors.shape == (2, 4, 110)
        assert torch.allclose(anchors[:, :, 0], x.mean((2, 3)), atol=1e-6), "the 1x1 bin is the global mean"


@torch.no_grad()
def test_ann_blocks_attend_from_every_query_pixel_to_110_anchors(monkeypatch):
    import models.annnet as annnet

    seen: list[tuple[int, int]] = []

    def recording_attend(query, key, value, scale=1.0):
        seen.append((query.shape[-1], key.shape[-1]))
        return attend(query, key, value, scale)

    monkeypatch.setattr(annnet, "attend", recording_attend)
    afnb, apnb = AFNB(low_channels=8, high_channels=16).eval(), APNB(16).eval()
    low, high = torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8)
    fused = afnb(low, high)
    assert fused.shape == high.shape and apnb(fused).shape == high.shape
    assert afnb.attention.key[0].in_channels == 8 and afnb.attention.query[0].in_channels == 16
    assert apnb.attention.query is apnb.attention.key, "APNB shares key and query"
    assert isinstance(afnb.attention.out, nn.Conv2d) and not afnb.attention.out.weight.any(), "W: zero-init conv"
    assert seen == [(64, 110), (64, 110)], "queries: every high-level pixel; keys: 110 pyramid anchors"


def test_annnet_aux_head_counts_but_does_not_feed_the_main_output():
    model = _on_meta("annnet-resnet50")
    eval_path = _params(model) - _params(model.aux)
    assert eval_path == int(paper.authors_builds().set_index("method").loc["ANNNet", "params_eval"])
    assert get_model_info("annnet-resnet50").aux_weights == (1.0, 0.4)


# EncNet --------------------------------------------------------------------------------------------
@torch.no_grad()
def test_encoding_layer_matches_the_residual_formula_and_is_orderless():
    enc = Encoding(6, codewords=4)
    x = torch.randn(2, 6, 10)
    residual = x.transpose(1, 2)[:, :, None, :] - enc.codewords  # (N, L, K, C)
    assign = torch.softmax(-enc.smoothing * residual.square().sum(-1), dim=-1)
    expected = (assign[..., None] * residual).sum(1)
    assert torch.allclose(enc(x), expected, atol=1e-5)
    assert torch.allclose(enc(x[:, :, torch.randperm(10)]), enc(x), atol=1e-5)


@torch.no_grad()
def test_context_encoding_rescales_channels_by_the_mean_codeword():
    module = ContextEncoding(8, num_classes=2, codewords=4).eval()
    x = torch.randn(2, 8, 5, 5)
    encoded = module.norm(module.encoding(module.project(x).flatten(2))).mean(1)
    gamma = torch.sigmoid(module.fc(encoded))[:, :, None, None]
    assert torch.allclose(module(x), torch.relu(x + x * gamma), atol=1e-6)
    assert module.se_layer.out_features == 2, "the SE-loss layer exists (counted) though nothing uses it"


# DUpsampling ---------------------------------------------------------------------------------------
@torch.no_grad()
def test_dupsampling_reconstructs_each_block_from_its_own_cell():
    ratio = 4
    dup = DUpsample(8, 3, ratio)
    assert [p.shape for p in dup.parameters()] == [(3 * ratio * ratio, 8, 1, 1)], "one bias-free 1x1 conv"
    x = torch.randn(1, 8, 3, 5)
    out = dup(x)
    assert out.shape == (1, 3, 12, 20)
    delta = (dup(_perturbed(x, 1, 2)) - out).abs().amax(1)[0] > 1e-6
    block = torch.zeros_like(delta)
    block[ratio : 2 * ratio, 2 * ratio : 3 * ratio] = True
    assert torch.equal(delta, block)


def test_dupsampling_fuses_layer2_and_layer3_into_2144_channels():
    model = _on_meta("dupsampling-resnet50")
    assert [m[0].in_channels for m in model.low] == [1024, 512]
    assert model.fuse[0][0].in_channels == 2048 + 2 * 48


# BiSeNet -------------------------------------------------------------------------------------------
@torch.no_grad()
def test_bisenet_spatial_path_is_one_eighth_and_context_path_refines_to_it():
    net = BiSeNet(2, 3, False).eval()
    x = torch.randn(2, 3, 64, 96)
    assert net.spatial(x).shape == (2, 128, 8, 12) and len(net.spatial) == 4
    assert net.context(x).shape == (2, 128, 8, 12)
    assert net.context.arm32.conv[0].in_channels == 512 and net.context.arm16.conv[0].in_channels == 256
    net.train()
    assert net(x).shape == (2, 2, 64, 96), "no auxiliary heads (aux=False)"


# GFF -----------------------------------------------------------------------------------------------
@torch.no_grad()
def test_gated_fully_fusion_follows_equation_4():
    gff = GatedFullyFusion((4, 6, 8), strides=(2, 1, 1), channels=5).eval()
    feats = [torch.randn(1, 4, 8, 8), torch.randn(1, 6, 4, 4), torch.randn(1, 8, 4, 4)]
    levels = [project(f) for project, f in zip(gff.project, feats)]
    assert all(level.shape == (1, 5, 4, 4) for level in levels), "level 1 projected with stride 2"

    def fuse_with(*open_: bool) -> list[torch.Tensor]:
        """Fuse with each gate's pre-sigmoid output forced to +40 (open, G = 1) or -40 (closed, G = 0)."""
        handles = [
            gate.register_forward_hook(lambda _m, _i, out, o=is_open: torch.full_like(out, 40.0 if o else -40.0))
            for gate, is_open in zip(gff.gates, open_)
        ]
        fused = gff.fuse(feats)
        for handle in handles:
            handle.remove()
        return fused

    closed = fuse_with(False, False, False)
    assert all(torch.allclose(f, x, atol=1e-5) for f, x in zip(closed, levels)), "G = 0: no fusion"
    fused = fuse_with(False, True, True)
    assert torch.allclose(fused[0], levels[0] + levels[1] + levels[2], atol=1e-4), "closed gate takes open levels"
    assert torch.allclose(fused[1], 2 * levels[1], atol=1e-4), "open gate keeps (1 + G) X and takes nothing"


def test_gff_merges_4096_dense_channels_and_upscales_three_times():
    model = _on_meta("gff-resnet101")
    assert model.merge[0].in_channels == 4096
    ups = [m for m in model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in ups] == [(512, 256, (2, 2)), (256, 128, (2, 2)),
                                                                       (128, 64, (2, 2))]
