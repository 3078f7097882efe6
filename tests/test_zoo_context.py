"""Structural facts from the papers of the context-module rows (DenseASPP .. GFF), one or two per family."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from models.annnet import AFNB, APNB, PYRAMID_SIZES
from models.bisenet import BiSeNet
from models.ccnet import RECURRENCE, CCNet, CrissCrossAttention
from models.danet import ChannelAttention, DANetHead, PositionAttention
from models.dfn import DFN
from models.dupsampling import DUpsample
from models.encnet import Encoding
from models.gff import GatedFullyFusion
from models.layers import attend, pyramid_sample
from models.ocnet import ObjectContext


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _perturbed(x: torch.Tensor, row: int, col: int) -> torch.Tensor:
    """A copy of `x` with one pixel (all channels) changed."""
    y = x.clone()
    y[:, :, row, col] += 5.0
    return y


# CCNet -----------------------------------------------------------------------------------------
@torch.no_grad()
def test_criss_cross_attention_sees_exactly_its_row_and_column():
    cca = CrissCrossAttention(16).eval()
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
    for conv in (cca.query, cca.key):
        nn.init.zeros_(conv.weight), nn.init.zeros_(conv.bias)
    nn.init.zeros_(cca.value.bias)
    cca.value.weight.copy_(torch.eye(8).view(8, 8, 1, 1))
    x = torch.randn(2, 8, 5, 6)
    cross = x[:, :, 2, :].sum(-1) + x[:, :, :, 3].sum(-1) - x[:, :, 2, 3]
    expected = x[:, :, 2, 3] + cross / (5 + 6 - 1)
    assert torch.allclose(cca(x)[:, :, 2, 3], expected, atol=1e-5)


def test_ccnet_recurrence_is_two():
    assert RECURRENCE == 2
    assert CCNet(2, 3, False).head.recurrence == 2


# DANet -----------------------------------------------------------------------------------------
@torch.no_grad()
def test_danet_has_position_and_channel_attention_with_zero_initial_scales():
    head = DANetHead(64, 2, channels=32)
    modules = [type(m) for m in head.modules()]
    assert modules.count(PositionAttention) == 1 and modules.count(ChannelAttention) == 1
    pam, cam = head.position[1], head.channel[1]
    assert pam.query.out_channels == pam.key.out_channels == 32 // 8 and pam.value.out_channels == 32
    assert [p.numel() for p in cam.parameters()] == [1], "CAM has only the scale beta"
    x = torch.randn(1, 32, 5, 6)
    assert torch.equal(pam(x), x) and torch.equal(cam(x), x), "alpha = beta = 0 at initialisation"


@torch.no_grad()
def test_position_attention_is_global_and_channel_attention_mixes_channels_by_similarity():
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
    weights = torch.softmax(flat @ flat.t(), dim=-1)
    assert torch.allclose(cam(x)[0, 0].flatten(), flat[0] + weights[0] @ flat, atol=1e-4)


# OCNet -----------------------------------------------------------------------------------------
@torch.no_grad()
def test_object_context_shares_key_and_query_and_attends_to_every_pixel():
    oc = ObjectContext(32, key_channels=16, value_channels=16).eval()
    assert not hasattr(oc, "query"), "base-OC shares one transform for key and query"
    x = torch.randn(1, 32, 6, 5)
    base = oc(x)
    changed = (oc(_perturbed(x, 5, 4)) - base).abs().amax(1)[0]
    assert (changed > 1e-6).all(), "every pixel's context must depend on every pixel"
    perm = torch.randperm(30)
    assert torch.allclose(oc(x.flatten(2)[:, :, perm].view_as(x)).flatten(2), base.flatten(2)[:, :, perm], atol=1e-5)


# ANNNet ----------------------------------------------------------------------------------------
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
    assert seen == [(64, 110), (64, 110)], "queries: every high-level pixel; keys: 110 pyramid anchors"


# EncNet ----------------------------------------------------------------------------------------
@torch.no_grad()
def test_encoding_layer_matches_the_residual_formula_and_is_orderless():
    enc = Encoding(6, codewords=4)
    x = torch.randn(2, 6, 10)
    residual = x.transpose(1, 2)[:, :, None, :] - enc.codewords  # (N, L, K, C)
    assign = torch.softmax(-enc.smoothing * residual.square().sum(-1), dim=-1)
    expected = (assign[..., None] * residual).sum(1)
    assert torch.allclose(enc(x), expected, atol=1e-5)
    assert torch.allclose(enc(x[:, :, torch.randperm(10)]), enc(x), atol=1e-5)


# DUpsampling -----------------------------------------------------------------------------------
@torch.no_grad()
def test_dupsampling_reconstructs_each_block_from_its_own_cell():
    ratio = 4
    dup = DUpsample(8, 3, ratio)
    x = torch.randn(1, 8, 3, 5)
    out = dup(x)
    assert out.shape == (1, 3, 12, 20)
    delta = (dup(_perturbed(x, 1, 2)) - out).abs().amax(1)[0] > 1e-6
    block = torch.zeros_like(delta)
    block[ratio : 2 * ratio, 2 * ratio : 3 * ratio] = True
    assert torch.equal(delta, block)


# BiSeNet ---------------------------------------------------------------------------------------
@torch.no_grad()
def test_bisenet_spatial_path_is_one_eighth_and_context_path_reaches_one_32nd():
    net = BiSeNet(2, 3, False).eval()
    x = torch.randn(2, 3, 64, 96)
    spatial = net.spatial(x)
    assert spatial.shape == (2, 256, 8, 12) and len(net.spatial) == 3
    _, f16, f32 = net.context(x, spatial.shape[-2:])
    assert f16.shape[-2:] == (4, 6) and f32.shape[-2:] == (2, 3)
    net.train()
    assert [o.shape[-2:] for o in net(x)] == [(8, 12), (4, 6), (2, 3)]


# DFN -------------------------------------------------------------------------------------------
def test_dfn_supervises_every_stage_and_has_a_border_output():
    net = DFN(2, 3, False, channels=32).train()
    x = torch.randn(2, 3, 64, 64)
    assert [o.shape[-2:] for o in net(x)] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert net.border_logits(x).shape == (2, 1, 64, 64)


# GFF -------------------------------------------------------------------------------------------
@torch.no_grad()
def test_gated_fully_fusion_follows_equation_4():
    gff = GatedFullyFusion((4, 6, 8), channels=5).eval()
    feats = [torch.randn(1, 4, 8, 8), torch.randn(1, 6, 4, 4), torch.randn(1, 8, 4, 4)]
    levels = [reduce(f) for reduce, f in zip(gff.reduce, feats)]

    def set_gates(*biases: float) -> list[torch.Tensor]:
        for gate, bias in zip(gff.gates, biases):
            nn.init.zeros_(gate.weight)
            gate.bias.fill_(bias)
        return gff(feats)

    closed = set_gates(-40.0, -40.0, -40.0)
    assert all(torch.allclose(f, x, atol=1e-5) for f, x in zip(closed, levels)), "G = 0: no fusion"
    fused = set_gates(-40.0, 40.0, 40.0)
    up = nn.functional.interpolate
    expected0 = levels[0] + sum(up(x, size=(8, 8), mode="bilinear", align_corners=False) for x in levels[1:])
    assert torch.allclose(fused[0], expected0, atol=1e-4), "closed gate receives every open level"
    assert torch.allclose(fused[1], 2 * levels[1], atol=1e-4), "open gate keeps (1 + G) X and takes nothing"
