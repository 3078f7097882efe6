"""Lightweight medical segmentation networks published after 2021: counts against their papers, one
defining module of each, and one cheap training run each."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.profiling.params import count_params
from benchmark.protocol import get_protocol
from benchmark.training.train import FoldData, Trainer, TrainOptions
from models import anamnet, cmunext, create_model, egeunet, get_model_info, malunet, ulite, unext

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

#: Registry name -> the builder arguments that reproduce the paper's own configuration.
PAPER_BUILDS = {
    "unext": unext.PAPER_BUILD,
    "malunet": malunet.PAPER_BUILD,
    "egeunet": egeunet.PAPER_BUILD,
    "cmunext": cmunext.PAPER_BUILD,
    "ulite": ulite.PAPER_BUILD,
    "anamnet": anamnet.PAPER_BUILD,
}


@pytest.mark.parametrize("name", sorted(PAPER_BUILDS))
def test_params_at_the_paper_config_are_within_5_percent_of_the_paper(name):
    info = get_model_info(name)
    assert info.family == "post2021" and info.reference and info.reported_params
    assert re.fullmatch(r"\d+x\d+", info.reported_input or ""), f"{name}: reported_input {info.reported_input!r}"
    with torch.device("meta"):
        model = create_model(name, **PAPER_BUILDS[name])
    params = count_params(model)
    assert abs(params / info.reported_params - 1) <= 0.05, f"{name}: {params} vs paper {info.reported_params}"


def _zero_fill_shift(x: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """Reference shift: pad by |shift| on both ends of `dim`, roll, crop back (the release's way)."""
    pad = abs(shift)
    padded = torch.cat([x.new_zeros(*x.shape[:dim], pad, *x.shape[dim + 1:]), x,
                        x.new_zeros(*x.shape[:dim], pad, *x.shape[dim + 1:])], dim)
    return torch.roll(padded, shift, dim).narrow(dim, pad, x.shape[dim])


def test_unext_shifts_five_channel_groups_by_minus_two_to_two_with_zero_fill():
    x = torch.randn(2, 6, 7, 10)  # channels-last (N, H, W, C): 10 channels, 5 groups of 2
    for dim in (1, 2):
        out = unext.shift_channel_groups(x, dim, groups=5)
        for i, shift in enumerate(range(-2, 3)):
            group = slice(2 * i, 2 * i + 2)
            assert torch.equal(out[..., group], _zero_fill_shift(x[..., group], shift, dim))
    model = create_model("unext")
    assert [s.embed.out_channels for s in model.token_stages] == [160, 256]
    assert all(s.embed.stride == (2, 2) for s in model.token_stages)
    mlp = model.token_stages[1].block.mlp
    assert (mlp.fc1.in_features, mlp.fc1.out_features, mlp.dwconv.groups) == (256, 256, 256)
    assert [s.block is not None for s in model.up_stages] == [True, True, False, False, False]


def test_malunet_dga_dilations_and_the_sc_bridge_residuals():
    model = create_model("malunet")
    dga = model.encoder[3].body[1]
    assert [b.dilation[0] for b in dga.branches] == [7, 5, 2, 1]
    assert all(b.groups == b.in_channels == 6 for b in dga.branches)  # 24 channels in four depthwise groups
    iea = model.encoder[3].body[0]
    assert iea.memory_key.out_channels == 4 * 24
    assert torch.equal(iea.memory_value.weight, iea.memory_key.weight.permute(1, 0, 2))
    assert [h.in_features for h in model.bridge.channel.heads] == [128] * 5
    assert [h.out_features for h in model.bridge.channel.heads] == [8, 16, 24, 32, 48]
    # with every attention at sigmoid(0) = 1/2: t' = t/2 + t, out = t' / 2 + t / 2 = 1.25 t
    bridge = malunet.SCAttentionBridge([4, 8])
    for p in bridge.parameters():
        nn.init.zeros_(p)
    feats = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    for f, out in zip(feats, bridge(feats)):
        torch.testing.assert_close(out, 1.25 * f)


def test_egeunet_ghpa_axes_and_gab_groups():
    ghpa = egeunet.GHPA(32, 48)
    hw, ch, cw = ghpa.attention_maps(12, 20)
    assert hw.shape == (1, 8, 12, 20) and ch.shape == (1, 8, 12, 1) and cw.shape == (1, 8, 1, 20)
    assert ghpa.params_hw.shape == (1, 8, 8, 8) and ghpa.params_ch.shape == ghpa.params_cw.shape == (1, 8, 8)
    gab = egeunet.GroupAggregationBridge(48, 32, mask_channels=2)
    assert [g[1].dilation[0] for g in gab.groups] == [1, 2, 5, 7]
    assert all(g[1].in_channels == g[1].groups == 32 // 2 + 2 for g in gab.groups)
    model = create_model("egeunet", num_classes=3).train()
    outs = model(torch.randn(2, 3, 64, 64))
    assert len(outs) == len(get_model_info("egeunet").aux_weights) == 6
    assert get_model_info("egeunet").aux_weights == (1.0, 0.5, 0.4, 0.3, 0.2, 0.1)
    assert all(o.shape == (2, 3, 64, 64) for o in outs)
    assert [h.in_channels for h in model.mask_heads] == [48, 32, 24, 16, 8]


def test_cmunext_large_kernels_inverted_bottlenecks_and_skip_fusion():
    model = create_model("cmunext")
    blocks = [[m for m in stage if isinstance(m, cmunext.CMUNeXtBlock)] for stage in model.encoder]
    assert [len(b) for b in blocks] == [1, 1, 1, 3, 1]
    assert [b[0][0].fn[0].kernel_size[0] for b in blocks] == [3, 3, 7, 7, 7]
    block = blocks[3][0]
    assert block[0].fn[0].groups == 128 and (block[1].in_channels, block[1].out_channels) == (128, 4 * 128)
    fusion = model.decoder[0].fuse
    assert (fusion[0].in_channels, fusion[0].groups) == (2 * 160, 2)  # the deepest: [skip, up] at 160 each


def test_ulite_axial_depthwise_is_identity_plus_two_strips():
    axial = ulite.AxialDW(6, 7)
    assert axial.along_h.kernel_size == (7, 1) and axial.along_w.kernel_size == (1, 7)
    x = torch.randn(1, 6, 9, 11)
    with torch.no_grad():
        expected = x + F.conv2d(x, axial.along_h.weight, axial.along_h.bias, padding=(3, 0), groups=6) \
            + F.conv2d(x, axial.along_w.weight, axial.along_w.bias, padding=(0, 3), groups=6)
        torch.testing.assert_close(axial(x), expected)
    model = create_model("ulite")
    assert [b.along_h.dilation[0] for b in model.bottleneck.branches] == [1, 2, 3]
    assert model.bottleneck.reduce.out_channels == 512 // 4


def test_anamnet_ad_block_squeezes_depth_by_four_and_is_residual():
    block = anamnet.AnamorphicBlock(64).eval()
    assert [m[0].out_channels for m in block.body] == [16, 16, 64]
    nn.init.zeros_(block.body[2][1].weight)
    nn.init.zeros_(block.body[2][1].bias)
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))
    model = create_model("anamnet", **anamnet.PAPER_BUILD)
    assert model.encoder[0][0].in_channels == 1 and model.head.out_channels == 3
    assert [type(s.up) for s in model.decoder] == [nn.ConvTranspose2d] * 4


def _random_fold(n_train: int = 8, size_px: int = 32, seed: int = 0) -> FoldData:
    """Random slices with bright-pixel masks: enough for a couple of real optimiser steps."""
    gen = np.random.default_rng(seed)
    images = gen.integers(0, 256, (n_train + 2, size_px, size_px), dtype=np.uint8)
    masks = images > 180
    return FoldData(
        train_images=torch.from_numpy(images[:n_train]), train_masks=torch.from_numpy(masks[:n_train]),
        test_ids=["s0", "s1"], test_images=images[n_train:], test_masks=masks[n_train:],
        mean=0.5, std=0.29, class_weights=np.array([1.5, 4.0]),
    )


@pytest.mark.parametrize("name", sorted(PAPER_BUILDS))
def test_one_smoke_epoch_trains(name):
    """Two optimiser steps at 40 px (not a multiple of the models' stride) through the real trainer."""
    protocol = get_protocol("smoke", ["epochs=1", "batch_size=4", "passes=((1.25, 2),)"])
    trainer = Trainer(name, _random_fold(), protocol, TrainOptions(device="cpu"))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    entry = trainer.train_epoch()
    assert np.isfinite(entry["train_loss"]) and trainer.iteration == 2
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.model.parameters()))


def test_list_json_gives_each_post2021_model_its_reference_and_reported_figures(capsys):
    import json

    from benchmark.cli import main

    assert main(["list", "--models", ",".join(sorted(PAPER_BUILDS)), "--json", "--no-params"]) == 0
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(PAPER_BUILDS)
    for name, row in rows.items():
        info = get_model_info(name)
        assert row["family"] == "post2021" and row["reference"] == info.reference and len(row["reference"]) > 20
        assert row["reported_params"] == info.reported_params and row["reported_input"] == info.reported_input
