"""Lightweight Table 4 rows: one structural fact from each family's paper, plus the shared MiniSeg decoder."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from models import create_model, get_model_info
from models.cgnet import CGBlock, GlobalContext
from models.enet import InitialBlock, max_unpool
from models.espnet import EESP, ESP_DILATIONS, ESPModule, eesp_dilations
from models.layers import channel_shuffle
from models.lednet import SSnbt
from models.light_backbones import ShuffleUnit
from models.miniseg import MiniSeg, MiniSegDecoder

BACKBONE_ROWS = ("mobilenet", "mobilenetv2", "shufflenet", "shufflenetv2", "efficientnet")


def _capture(module: nn.Module, store: dict, key: str, what: str = "output"):
    """Register a forward hook saving the module's first input or its output under `key`."""

    def hook(_m, inputs, output):
        store[key] = inputs[0] if what == "input" else output

    return module.register_forward_hook(hook)


def test_enet_initial_block_concatenates_13_filters_and_the_maxpool():
    block = InitialBlock(3, 16).eval()
    assert block.conv.out_channels == 13 and block.conv.stride == (2, 2)
    seen: dict = {}
    _capture(block.bn, seen, "cat", "input")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 16, 16, 16)
    assert torch.equal(seen["cat"][:, 13:], nn.functional.max_pool2d(x, 2))


def test_enet_unpool_matches_torch():
    x = torch.randn(2, 4, 8, 6)
    pooled, indices = nn.functional.max_pool2d(x, 2, 2, return_indices=True)
    assert torch.equal(max_unpool(pooled, indices, (8, 6)), nn.functional.max_unpool2d(pooled, indices, 2, 2))


def test_espnet_dilations_and_hierarchical_feature_fusion():
    model = create_model("espnet")
    for module in model.level3:
        assert tuple(conv.dilation[0] for conv in module.branches) == ESP_DILATIONS == (1, 2, 4, 8, 16)
    esp = ESPModule(20, 20).eval()
    seen: dict = {}
    for i, conv in enumerate(esp.branches):
        _capture(conv, seen, f"b{i}")
    _capture(esp.post, seen, "post", "input")
    x = torch.randn(1, 20, 16, 16)
    with torch.no_grad():
        esp(x)
    b = [seen[f"b{i}"] for i in range(5)]
    expected = torch.cat([b[0], b[1], b[1] + b[2], b[1] + b[2] + b[3], b[1] + b[2] + b[3] + b[4]], 1) + x
    assert torch.allclose(seen["post"], expected, atol=1e-6)


def test_espnetv2_eesp_groups_and_receptive_field_dilations():
    assert eesp_dilations(4, 13) == [1, 2, 3, 4]
    assert eesp_dilations(4, 7) == [1, 1, 2, 3]
    unit = EESP(64, 64, 1, r_lim=13)
    assert unit.reduce[0].groups == 4 and unit.reduce[0].out_channels == 16
    assert unit.expand[0].groups == 4
    assert all(conv.groups == conv.in_channels == 16 for conv in unit.branches)
    model = create_model("espnetv2")
    assert [len(level) for level in model.levels] == [0, 3, 7]


def test_cgnet_context_guided_block_has_local_surrounding_and_global_parts():
    model = create_model("cgnet")
    assert len(model.stage2) + 1 == 3 and len(model.stage3) + 1 == 21  # M=3, N=21
    block = model.stage3[0]
    assert isinstance(block, CGBlock)
    assert block.loc.groups == block.loc.in_channels == 64 and block.loc.dilation == (1, 1)
    assert block.sur.groups == 64 and block.sur.dilation == (4, 4)
    assert model.stage2[0].sur.dilation == (2, 2)
    glo = GlobalContext(32).eval()
    x = torch.rand(2, 32, 8, 8) + 0.1
    with torch.no_grad():
        ratio = glo(x) / x
    assert ((ratio > 0) & (ratio < 1)).all()
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-6)  # one weight per channel


def test_edanet_dense_connections_grow_by_40():
    model = create_model("edanet").eval()
    x = model.stem(torch.randn(1, 3, 64, 64))
    assert x.shape[1] == 60
    with torch.no_grad():
        for module in model.block1:
            y = module(x)
            assert y.shape[1] == x.shape[1] + 40
            assert torch.equal(y[:, : x.shape[1]], x)  # the input is carried through unchanged
            x = y
    assert x.shape[1] == 260
    assert model.project.in_channels == 130 + 8 * 40 == 450


def test_lednet_split_shuffle_non_bottleneck_and_attention_pyramid():
    unit = SSnbt(64, 2).eval()
    assert unit.left[0].in_channels == unit.right[0].in_channels == 32
    assert unit.left[0].kernel_size == (3, 1) and unit.right[0].kernel_size == (1, 3)
    model = create_model("lednet")
    assert [m[0].kernel_size[0] for m in model.decoder.down] == [3, 5, 7]
    assert all(m[0].stride == (2, 2) for m in model.decoder.down)


def test_channel_shuffle_permutation():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    with pytest.raises(ValueError, match="groups"):
        channel_shuffle(x, 4)


def test_shufflenet_units_and_groups():
    model = create_model("shufflenet-minisegdec")
    stages = model.encoder.stages
    assert [len(s) for s in stages] == [4, 8, 4]
    assert model.encoder.channels == [24, 240, 480, 960]  # g = 3
    first, later = stages[0][0], stages[1][1]
    assert isinstance(first, ShuffleUnit) and first.compress[0].groups == 1  # stage 2's first 1x1 is ungrouped
    assert later.compress[0].groups == 3 and later.expand[0].groups == 3
    assert later.depthwise[0].groups == later.depthwise[0].in_channels


def test_mobilenet_is_depthwise_separable():
    encoder = create_model("mobilenet-minisegdec").encoder
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    depthwise = [c for c in convs if c.groups == c.in_channels > 1]
    pointwise = [c for c in convs if c.kernel_size == (1, 1)]
    assert len(depthwise) == 13 and len(pointwise) == 13
    assert len(convs) == 27  # the stem conv + 13 (depthwise, pointwise) pairs


@pytest.mark.parametrize("row", BACKBONE_ROWS)
def test_backbone_rows_feed_strides_4_to_32_into_the_miniseg_decoder(row):
    name = f"{row}-minisegdec"
    model = create_model(name).eval()
    assert isinstance(model, MiniSegDecoder) and get_model_info(name).aux_weights == (1.0, 0.4, 0.4, 0.4)
    with torch.no_grad():
        feats = model.encode(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    laterals = [model.up1_conv1, model.up2_conv2, model.up3_conv3, model.up4_conv4]
    assert [f.shape[1] for f in feats] == [c.in_channels for c in laterals]
    assert [c.out_channels for c in laterals] == [8, 24, 32, 64]  # MiniSeg's decoder widths


def test_miniseg_itself_uses_the_shared_decoder():
    assert isinstance(create_model("miniseg"), MiniSeg) and issubclass(MiniSeg, MiniSegDecoder)
