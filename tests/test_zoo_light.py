"""Lightweight Table 4 rows as the release builds them: exact counts against the authors' builds, and one
structural fact per family (recomputed, so each test can fail)."""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from benchmark import paper
from benchmark.profiling.macs import fvcore_macs
from benchmark.profiling.paper_flops import count_paper_flops
from models import create_model, get_model_info
from models.cgnet import CGBlock, GlobalContext
from models.enet import InitialBlock, max_unpool
from models.espnet import EESP, ESP_DILATIONS, ESPModule, eesp_dilations
from models.layers import channel_shuffle
from models.lednet import SSnbt
from models.light_backbones import TABLE4_NOTE, ShuffleUnit

ROWS = {
    "MobileNet": "mobilenet",
    "MobileNetv2": "mobilenetv2",
    "ShuffleNet": "shufflenet-g3",
    "ShuffleNetv2": "shufflenetv2",
    "EfficientNet": "efficientnet-b0-dilated",
    "ENet": "enet",
    "ESPNet": "espnet",
    "CGNet": "cgnet",
    "ESPNetv2": "espnetv2",
    "EDANet": "edanet",
    "LEDNet": "lednet",
}
BACKBONE_ONLY_ROWS = ("MobileNet", "MobileNetv2", "ShuffleNet", "ShuffleNetv2")  # Table 4 counted the backbone alone
PRELU_ROWS = ("ENet", "ESPNet", "CGNet", "ESPNetv2")


def _n(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _build(name: str, meta: bool = True) -> nn.Module:
    if not meta:
        return create_model(name)
    with torch.device("meta"):
        return create_model(name)


def _row(row: str) -> dict:
    return paper.authors_builds().set_index("method").loc[row].to_dict()


def _trained_count(row: str) -> int:
    """The trained network's count, stated in the CSV note of a backbone-only row."""
    found = re.search(r"has ([\d,]+) params", _row(row)["note"])
    assert found, f"table4_authors_builds.csv: no trained count in the note of {row}"
    return int(found.group(1).replace(",", ""))


def _counted_part(row: str, model: nn.Module) -> nn.Module:
    """What Table 4 counted: the backbone alone for the backbone-only rows, else the whole network."""
    return model.backbone if row in BACKBONE_ONLY_ROWS else model


def _forward_params(model: nn.Module, size: int = 64) -> int:
    """Parameters of the modules an eval forward calls."""
    called: set[int] = set()
    handles = [m.register_forward_hook(lambda m, i, o: called.add(id(m))) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    for handle in handles:
        handle.remove()
    return sum(p.numel() for m in model.modules() if id(m) in called for p in m.parameters(recurse=False))


def _capture(module: nn.Module, store: dict, key: str, what: str = "output"):
    """Register a forward hook saving the module's first input or its output under `key`."""

    def hook(_m, inputs, output):
        store[key] = inputs[0] if what == "input" else output

    return module.register_forward_hook(hook)


# ---------------------------------------------------------------- exact counts of the authors' builds


def test_rows_map_to_these_builds():
    registered = paper.registered_rows()
    assert {row: registered[row] for row in ROWS} == ROWS


@pytest.mark.parametrize("row", sorted(ROWS))
def test_params_equal_the_authors_build(row):
    model = _build(ROWS[row])
    assert _n(_counted_part(row, model)) == int(_row(row)["params"])
    if row in BACKBONE_ONLY_ROWS:
        assert _n(model) == _trained_count(row)
        notes = get_model_info(ROWS[row]).notes
        assert TABLE4_NOTE in notes and f"backbone-only count {int(_row(row)['params']):,}" in notes


@pytest.mark.parametrize("row", ["ESPNetv2", "EfficientNet"])
def test_forward_path_params_equal_the_authors_eval_count(row):
    model = _build(ROWS[row], meta=False)
    assert _forward_params(model) == int(_row(row)["params_eval"]) < _n(model)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_release_counter_prints_table4_gflops(row):
    model = _build(ROWS[row])
    counted = count_paper_flops(_counted_part(row, model))
    assert counted.device == "meta"
    assert counted.printed == f"{float(_row(row)['authors_counter_gflops']):.2f}"


@pytest.mark.slow
@pytest.mark.parametrize("row", sorted(ROWS))
def test_fvcore_gmacs_within_one_percent(row, one_thread):
    """At 256x256 times 4: every map of these nets scales exactly by 1/4 from 512 (tracing at 512 is slow)."""
    model = _counted_part(row, _build(ROWS[row], meta=False))
    macs, _ = fvcore_macs(model, torch.zeros(1, 3, 256, 256))
    assert 4 * macs / 1e9 == pytest.approx(float(_row(row)["fvcore_gmacs_512"]), rel=0.01)


@pytest.mark.parametrize("row", PRELU_ROWS)
def test_every_prelu_has_one_slope_per_channel(row):
    """Issue 16: no shared single-slope PReLU (the release uses nn.PReLU(channels) throughout)."""
    prelus = [m for m in _build(ROWS[row]).modules() if isinstance(m, nn.PReLU)]
    assert prelus and all(p.num_parameters > 1 for p in prelus)


# ---------------------------------------------------------------- ENet


def test_enet_initial_block_concatenates_13_filters_and_the_maxpool():
    block = InitialBlock(3, 16).eval()
    assert block.conv.out_channels == 13 and block.conv.stride == (2, 2) and block.act.num_parameters == 13
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 16, 16, 16)
    assert torch.equal(out[:, 13:], nn.functional.max_pool2d(x, 2))


def test_enet_unpool_matches_torch():
    x = torch.randn(2, 4, 8, 6)
    pooled, indices = nn.functional.max_pool2d(x, 2, 2, return_indices=True)
    assert torch.equal(max_unpool(pooled, indices, (8, 6)), nn.functional.max_unpool2d(pooled, indices, 2, 2))


def test_enet_bottlenecks_are_a_quarter_of_the_output_and_the_decoder_uses_relu():
    model = _build("enet")
    assert [b.branch[0][0].out_channels for b in (model.down1, model.down2, model.up4, model.up5)] == [16, 32, 16, 4]
    assert model.down1.branch[0][0].kernel_size == (2, 2) and model.down1.branch[0][0].stride == (2, 2)
    decoder = [model.up4, model.stage4, model.up5, model.stage5]
    assert not any(isinstance(m, nn.PReLU) for part in decoder for m in part.modules())
    assert sum(isinstance(m, nn.ReLU) for part in decoder for m in part.modules()) == 5 * 3
    assert model.fullconv.kernel_size == (2, 2) and model.fullconv.bias is not None


# ---------------------------------------------------------------- ESPNet, ESPNetv2


def test_espnet_dilations_and_hierarchical_feature_fusion():
    model = _build("espnet")
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


def test_espnet_decoder_is_the_rum_decoder_before_a_bias_free_classifier():
    model = _build("espnet")
    assert isinstance(model.classifier, nn.ConvTranspose2d) and model.classifier.bias is None
    assert model.merge1[2].num_parameters == 2  # one slope per class channel in front of it
    assert model.merge2[1].bias is not None and model.proj2.bias is None and model.proj3.bias is None


def test_espnetv2_eesp_groups_receptive_fields_and_the_unused_strided_prelus():
    assert eesp_dilations(4, 13) == [1, 2, 3, 4]
    assert eesp_dilations(4, 7) == [1, 1, 2, 3]
    unit = EESP(64, 64, 1, r_lim=13)
    assert unit.reduce[0].groups == 4 and unit.reduce[0].out_channels == 16
    assert unit.expand[0].groups == 4
    assert all(conv.groups == conv.in_channels == 16 for conv in unit.branches)
    model = create_model("espnetv2").eval()
    assert [len(model.level3), len(model.level4)] == [3, 7]
    assert [[c.dilation[0] for c in m.eesp.branches] for m in (model.level2_0, model.level3_0, model.level4_0)] == [
        [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]
    ]
    assert [c.dilation[0] for c in model.level4[0].branches] == [1, 1, 2, 3]  # r_lim 7
    called: list = []
    downs = (model.level2_0, model.level3_0, model.level4_0)
    for down in downs:
        down.eesp.act.register_forward_hook(lambda m, i, o: called.append(m))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert not called and sum(_n(d.eesp.act) for d in downs) == 32 + 64 + 128


# ---------------------------------------------------------------- CGNet, EDANet, LEDNet


def test_cgnet_context_guided_block_has_local_surrounding_and_global_parts():
    model = _build("cgnet")
    assert len(model.stage2) + 1 == 3 and len(model.stage3) + 1 == 21  # M=3, N=21
    block = model.stage3[0]
    assert isinstance(block, CGBlock)
    assert block.loc.groups == block.loc.in_channels == 64 and block.loc.dilation == (1, 1)
    assert block.sur.groups == 64 and block.sur.dilation == (4, 4)
    assert model.stage2[0].sur.dilation == (2, 2)
    assert model.stage2[0].glo.fc[0].out_features == 64 // 8 and block.glo.fc[0].out_features == 128 // 16
    assert model.classifier.bias is None
    glo = GlobalContext(32).eval()
    x = torch.rand(2, 32, 8, 8) + 0.1
    with torch.no_grad():
        ratio = glo(x) / x
    assert ((ratio > 0) & (ratio < 1)).all()
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-6)  # one weight per channel


def test_edanet_dense_connections_grow_by_40_new_channels_first():
    model = create_model("edanet").eval()
    x = model.stem(torch.randn(1, 3, 64, 64))
    assert x.shape[1] == 60
    with torch.no_grad():
        for module in model.block1:
            y = module(x)
            assert y.shape[1] == x.shape[1] + 40
            assert torch.equal(y[:, 40:], x)  # the input is carried through unchanged, after the new channels
            x = y
    assert x.shape[1] == 260
    assert model.project.in_channels == 130 + 8 * 40 == 450


def test_lednet_split_shuffle_non_bottleneck_and_attention_pyramid():
    unit = SSnbt(64, 2).eval()
    assert unit.left[0].in_channels == unit.right[0].in_channels == 32
    assert unit.left[0].kernel_size == (3, 1) and unit.right[0].kernel_size == (1, 3)
    assert unit.left[5].dilation == (2, 1) and unit.right[5].dilation == (1, 2)
    model = _build("lednet")
    assert [m[0].kernel_size[0] for m in model.decoder.down] == [3, 5, 7]
    assert all(m[0].stride == (2, 2) for m in model.decoder.down)
    assert all(m[0].kernel_size == (1, 1) for m in model.decoder.to_classes)
    down = model.encoder[0]
    assert down.conv1.padding == (2, 2) and down.pool.kernel_size == 2 and down.pool.stride == 1


def test_channel_shuffle_permutation():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    with pytest.raises(ValueError, match="groups"):
        channel_shuffle(x, 4)


# ---------------------------------------------------------------- the backbone rows


def test_shufflenet_units_and_groups():
    backbone = _build("shufflenet-g3").backbone
    assert [len(s) for s in backbone.stages] == [4, 8, 4]
    assert backbone.channels == (24, 240, 480, 960)  # g = 3
    first, later = backbone.stages[0][0], backbone.stages[1][1]
    assert isinstance(first, ShuffleUnit) and first.compress[0].groups == 1  # stage 2's first 1x1 is ungrouped
    assert later.compress[0].groups == 3 and later.expand[0].groups == 3
    assert later.depthwise[0].groups == later.depthwise[0].in_channels
    assert all(m.bias is not None for m in backbone.modules() if isinstance(m, nn.Conv2d))  # as released


def test_mobilenet_is_depthwise_separable_with_timm_parameter_names():
    import timm

    backbone = create_model("mobilenet").backbone
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    assert sum(c.groups == c.in_channels > 1 for c in convs) == 13
    assert sum(c.kernel_size == (1, 1) for c in convs) == 13 and len(convs) == 27
    reference = timm.create_model("mobilenetv1_100").state_dict()
    expected = {k: v.shape for k, v in reference.items() if not k.startswith("classifier.")}
    assert {k: v.shape for k, v in backbone.state_dict().items()} == expected


@pytest.mark.parametrize(("name", "builder", "dropped"), [
    ("mobilenetv2", "mobilenet_v2", "classifier."), ("shufflenetv2", "shufflenet_v2_x1_0", "fc."),
])  # fmt: skip
def test_torchvision_backbones_keep_torchvision_parameter_names(name, builder, dropped):
    from torchvision import models as tvm

    reference = getattr(tvm, builder)().state_dict()
    expected = {k: v.shape for k, v in reference.items() if not k.startswith(dropped)}
    assert {k: v.shape for k, v in _build(name).backbone.state_dict().items()} == expected


@pytest.mark.parametrize(("name", "sizes"), [
    ("mobilenet", [32, 16, 8, 4, 2]), ("mobilenetv2", [32, 16, 8, 4, 2]), ("shufflenet-g3", [16, 8, 4, 2]),
    ("shufflenetv2", [16, 8, 4, 2]), ("efficientnet-b0-dilated", [32, 16, 8, 8, 8, 8]),
])  # fmt: skip
def test_backbone_rows_decode_at_the_backbones_own_widths(name, sizes):
    model = create_model(name).eval()
    info = get_model_info(name)
    assert info.aux_weights == (1.0,)
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == sizes
    widths = [f.shape[1] for f in feats]
    assert widths == list(model.backbone.channels)
    decoder = model.decoder
    assert [c.in_channels for c in decoder.lateral] == [c.out_channels for c in decoder.lateral] == widths[:-1]
    assert [f.conv0.in_channels for f in decoder.fuse] == widths[1:]
    assert [a.num_parameters for a in decoder.act] == widths[:-1]


def test_efficientnet_keeps_its_unused_imagenet_classifier():
    model = _build("efficientnet-b0-dilated")
    classifier = model.backbone.classifier
    assert classifier[-1].out_channels == 1000 and _n(classifier) == 8_573_706 - 6_880_546
    se = model.backbone.layers[1][0].conv[2]  # 16 -> 96 expanded; SE squeezes the expanded width
    assert se.fc[0].in_channels == 96 and se.fc[0].out_channels == 24 and se.fc[0].bias is None
