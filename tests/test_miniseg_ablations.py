"""MiniSeg's ablations are the authors' 26 ablation files: exact counts, and only the stated differences."""
from __future__ import annotations

from functools import lru_cache

import pytest
import torch
from torch import nn

from benchmark import paper
from benchmark.profiling.macs import fvcore_macs
from benchmark.profiling.paper_flops import count_paper_flops
from benchmark.profiling.params import count_params, inference_params
from models import create_model, get_model_info, list_models
from models.miniseg import AHSPBlock, ConvBlock, DownsamplerBlock, MiniSeg, SeparableBlock
from models.miniseg_ablations import ABLATIONS, authors_file_models, paper_row_models

BUILDS = paper.ablation_builds()
FILE_IDS = [path.rsplit("/", 1)[-1].removesuffix(".py") for path in BUILDS["file"]]
#: Both counts are linear in the input area for these fully convolutional nets while every stride (2..16)
#: divides the side, so they are counted on smaller inputs and scaled to 512x512 (exact, see
#: `test_counts_scale_with_the_area`): fvcore at 256 (its cost is the trace, not the size), the authors'
#: counter by a real CPU forward at 64 (a meta forward is slower for these small nets).
FVCORE_SIDE = 256
COUNTER_SIDE = 64
FVCORE_TOLERANCE = 0.01


class AllHeads(nn.Module):
    """Runs a MiniSeg in eval mode but returns every head, as the authors' files built with aux=True do.

    Only the top-level `training` flag (which selects the outputs) is set; BN and dropout stay in eval mode.
    """

    def __init__(self, model: MiniSeg) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        self.model.training = True
        try:
            return self.model(x)
        finally:
            self.model.training = False


def _row(file_id: str):
    return BUILDS.iloc[FILE_IDS.index(file_id)]


def _name(file_id: str) -> str:
    return authors_file_models()[_row(file_id)["file"]]


@lru_cache(maxsize=None)
def _built(name: str) -> nn.Module:
    """One CPU build per variant for the counting tests, which leave the model as they found it."""
    return create_model(name)


@lru_cache(maxsize=None)
def _state(name: str) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in _built(name).state_dict().items()}


def _changed_keys(name: str) -> set[str]:
    """Keys that are missing, new, or reshaped relative to the released `miniseg`."""
    base, other = _state("miniseg"), _state(name)
    return {k for k in base.keys() | other.keys() if base.get(k) != other.get(k)}


def _top(keys: set[str]) -> set[str]:
    return {k.split(".")[0] for k in keys}


def _fvcore_macs_512(model: nn.Module) -> int:
    """fvcore's MACs of the training build's forward (all heads), at 512x512."""
    total, _ = fvcore_macs(AllHeads(model), torch.randn(1, 3, FVCORE_SIDE, FVCORE_SIDE))
    return total * (512 // FVCORE_SIDE) ** 2


def _paper_ops_512(model: nn.Module) -> int:
    """The authors' counter (benchmark/profiling/paper_flops.py) on the training build, at 512x512."""
    return count_paper_flops(AllHeads(model), COUNTER_SIDE, meta=False).total * (512 // COUNTER_SIDE) ** 2


# --- the 26 files, counted --------------------------------------------------------------------------


def test_every_authors_file_has_one_registered_variant():
    files = authors_file_models()
    assert sorted(files) == sorted(BUILDS["file"])
    assert len(set(files.values())) == len(files) == 26
    assert set(files.values()) - {"miniseg"} == set(ABLATIONS) <= set(list_models("miniseg-*"))


@pytest.mark.parametrize("file_id", FILE_IDS)
def test_params_match_the_authors_file(file_id):
    row, name = _row(file_id), _name(file_id)
    model = _built(name)
    assert count_params(model) == row["params"], f"{name} vs {row['file']}"
    assert inference_params(name, model, (1, 3, 64, 64))[0] == row["params_eval"], f"{name} vs {row['file']}"


@pytest.mark.slow  # about 1.5 s of fvcore tracing per variant
@pytest.mark.parametrize("file_id", FILE_IDS)
def test_fvcore_gmacs_match_the_authors_file(file_id):
    row, name = _row(file_id), _name(file_id)
    gmacs = _fvcore_macs_512(_built(name)) / 1e9
    assert gmacs == pytest.approx(row["fvcore_gmacs_512"], rel=FVCORE_TOLERANCE), name


@pytest.mark.parametrize("file_id", FILE_IDS)
def test_authors_counter_prints_the_csv_figure(file_id):
    row, name = _row(file_id), _name(file_id)
    assert f"{_paper_ops_512(_built(name)) / 1e9:.2f}" == f"{row['authors_counter_gflops']:.2f}", name


@pytest.mark.slow
def test_counts_scale_with_the_area():
    model = _built("miniseg-k8")
    full, _ = fvcore_macs(AllHeads(model), torch.randn(1, 3, 512, 512))
    assert _fvcore_macs_512(model) == full
    assert _paper_ops_512(model) == count_paper_flops(AllHeads(model), 512, meta=False).total


# --- registry: names, notes, the paper's table rows ---------------------------------------------------


def test_notes_name_the_table_row_and_the_file():
    for path, name in authors_file_models().items():
        if name == "miniseg":
            continue
        info = get_model_info(name)
        row = BUILDS.set_index("file").loc[path]
        assert info.family == "miniseg-ablation" and info.paper_name is None
        assert info.notes.startswith(row["table_row"]) and path in info.notes
        assert info.aux_weights == ABLATIONS[name].aux_weights


def test_paper_tables_2_and_3_rows_map_to_their_variants():
    table = paper.ablations()
    rows = paper_row_models()
    assert set(rows) == set(zip(table["table"].astype(int), table["variant"]))
    for (number, variant), name in rows.items():
        if name != "miniseg":
            assert variant in ABLATIONS[name].table_row and f"CSV table {number}:" in ABLATIONS[name].table_row


def test_aux_weights_follow_the_heads():
    for name in ("miniseg-nods", "miniseg-nodecoder"):
        assert get_model_info(name).aux_weights == (1.0,)
        out = create_model(name).train()(torch.randn(2, 3, 64, 64))
        assert isinstance(out, torch.Tensor) and out.shape == (2, 2, 64, 64)
    out = create_model("miniseg-k2").train()(torch.randn(2, 3, 64, 64))
    assert get_model_info("miniseg-k2").aux_weights == (1.0, 0.4, 0.4, 0.4) and len(out) == 4


# --- Table 2: SB, MB, +AH, +TP ------------------------------------------------------------------------


def test_sb_block_layout():
    sb = create_model("miniseg-sb")
    groups = {"down2": 2, "level2": 2, "down3": 2, "level3": 4, "down4": 4, "level4": 4}
    for key, expected in groups.items():
        blocks = getattr(sb, key)
        for block in blocks if isinstance(blocks, nn.ModuleList) else [blocks]:
            out_ch = block.bn.num_features
            assert isinstance(block, SeparableBlock)
            assert block.conv1x1_down.out_channels == out_ch // 4 and block.conv1x1_down.kernel_size == (1, 1)
            assert block.conv3x3.groups == out_ch // 4 and block.conv3x3.kernel_size == (3, 3)
            assert block.conv3x3.dilation == (1, 1) and block.conv3x3.stride == ((2, 2) if "down" in key else (1, 1))
            assert block.conv1x1_fuse.in_channels == out_ch // 4 and block.conv1x1_fuse.groups == expected
    assert all(isinstance(b, ConvBlock) for b in sb.level1)


def test_single_path_rows_have_no_long_path_and_no_residual():
    for name in ("miniseg-sb", "miniseg-mb", "miniseg-ah"):
        model = create_model(name).eval()
        assert not any(hasattr(model, f"{p}{s}") for p in ("long", "cat") for s in (1, 2, 3, 4))
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            out = model.down1(x)
            for block in model.level1:
                out = block(out)
            assert torch.equal(model.encode(x)[0], out)
    mb, ah = create_model("miniseg-mb"), create_model("miniseg-ah")
    assert all(not hasattr(b, "attention") and not hasattr(b, "pool") for b in mb.level3)
    assert all(hasattr(b, "attention") and hasattr(b, "pool") for b in ah.level3)


def _inputs_of(model: nn.Module, names: tuple[str, ...], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input each named submodule receives in one eval forward of `model`."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(model, n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, i[0])) for n in names
    ]
    with torch.no_grad():
        feats = model.eval().encode(x)
    for hook in hooks:
        hook.remove()
    seen["feats"] = feats  # type: ignore[assignment]
    return seen


@pytest.mark.parametrize("name", ["miniseg-tp", "miniseg-singlepath"])
def test_without_channel_split_the_short_downsampler_reads_the_short_path_only(name):
    model = create_model(name)
    seen = _inputs_of(model, ("down2", "down3", "down4", "long2"), torch.randn(1, 3, 64, 64))
    feats = seen["feats"]
    for s in (2, 3, 4):
        assert torch.equal(seen[f"down{s}"], feats[s - 2])
    assert not torch.allclose(seen["long2"], feats[0])  # the long path reads out + long
    assert not any(hasattr(model, f"cat{s}") for s in (1, 2, 3))


def test_tp_short_path_uses_relu_and_changes_only_cat_and_short_slopes():
    tp = create_model("miniseg-tp")
    assert isinstance(tp.down1.act, nn.ReLU) and isinstance(tp.level3[0].act, nn.ReLU)
    assert isinstance(tp.long2.act, nn.PReLU) and isinstance(tp.level3_long[0].act, nn.PReLU)
    assert isinstance(tp.up3_act, nn.PReLU)
    changed = _changed_keys("miniseg-tp")
    slopes = {k for k in changed if k.endswith("act.weight")}
    assert _top(changed - slopes) == {"cat1", "cat2", "cat3"}
    assert _top(slopes) == {"down1", "level1", "down2", "level2", "down3", "level3", "down4", "level4"}


def test_channel_split_feeds_both_paths_in_the_released_model():
    model = create_model("miniseg")
    seen = _inputs_of(model, ("down2",), torch.randn(1, 3, 64, 64))
    assert not torch.allclose(seen["down2"], seen["feats"][0])


# --- Table 3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, changed",
    [
        ("miniseg-nods", {"pred2", "pred3", "pred4"}),
        ("miniseg-down3x3", {f"long{s}" for s in (1, 2, 3, 4)} | {f"level{s}_long" for s in (1, 2, 3, 4)}),
        ("miniseg-stage1ahsp", {"down1", "level1"}),
        ("miniseg-ffm", {"up3_conv4", "up2_conv3", "up1_conv2"}),
        ("miniseg-k2", {f"{p}{s}" for p in ("down", "level") for s in (2, 3, 4)}),
    ],
)
def test_variants_change_only_their_modules(name, changed):
    assert _top(_changed_keys(name)) == changed


def test_relu_variant_only_drops_the_prelu_slopes():
    assert all(k.endswith("act.weight") for k in _changed_keys("miniseg-relu"))
    assert not any(isinstance(m, nn.PReLU) for m in create_model("miniseg-relu").modules())


def test_down3x3_kernels_and_stage1ahsp_blocks():
    downsamplers = [m for m in create_model("miniseg-down3x3").modules() if isinstance(m, DownsamplerBlock)]
    assert downsamplers and all(m.conv1.kernel_size == (3, 3) and m.conv1.padding == (1, 1) for m in downsamplers)
    stage1 = create_model("miniseg-stage1ahsp")
    assert isinstance(stage1.down1, AHSPBlock) and all(isinstance(b, AHSPBlock) for b in stage1.level1)


def test_no_decoder_predicts_from_the_last_encoder_stage():
    model = create_model("miniseg-nodecoder").eval()
    assert not any(k.startswith("up") for k in model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        deepest = model.encode(x)[-1]
        expected = nn.functional.interpolate(model.pred1(deepest), size=(64, 64), mode="bilinear", align_corners=False)
        assert deepest.shape[-1] == 64 // 16
        assert torch.allclose(model(x), expected, atol=1e-6)


# --- journal: K branches, N / M / C ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, dilations", [("miniseg", (1, 2, 4, 8)), ("miniseg-k2", (1, 2)), ("miniseg-k8", (1, 2, 4, 8, 8, 8, 8, 8))]
)
def test_ahsp_branches(name, dilations):
    model = _built(name)
    k = len(dilations)
    for block in (model.down2, *model.level3, model.down4):
        out_ch = block.bn.num_features
        convs = [getattr(block, f"conv{i}") for i in range(1, k + 1)]
        assert not hasattr(block, f"conv{k + 1}") and hasattr(block, "pool")
        assert tuple(c.dilation[0] for c in convs) == dilations and all(c.padding == c.dilation for c in convs)
        assert block.conv1x1_down.out_channels == out_ch // k
        assert block.attention.out_channels == k and block.attention.groups == k and block.conv1x1_fuse.groups == k


def test_k8_weights_branches_5_to_8_by_attention_map_4():
    """The release's K=8 file uses att[:, 3] for d5..d8, so maps 5-8 have no effect on the output."""
    torch.manual_seed(0)
    block = AHSPBlock(16, 16, dilations=(1, 2, 4, 8, 8, 8, 8, 8)).eval()
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        before = block(x)
        block.attention.weight[4:].add_(1.0)
        assert torch.equal(block(x), before)
        block.attention.weight[3].add_(1.0)
        assert not torch.allclose(block(x), before)


@pytest.mark.parametrize(
    "name, n, m, c",
    [
        ("miniseg", (3, 4, 9, 7), (2, 2, 5, 4), (8, 24, 32, 64)),
        ("miniseg-n4-5-10-8", (4, 5, 10, 8), (2, 2, 5, 4), (8, 24, 32, 64)),
        ("miniseg-n2-2-7-5", (2, 2, 7, 5), (2, 2, 5, 4), (8, 24, 32, 64)),
        ("miniseg-m4-4-7-6", (3, 4, 9, 7), (4, 4, 7, 6), (8, 24, 32, 64)),
        ("miniseg-c8-12-24-48", (3, 4, 9, 7), (2, 2, 5, 4), (8, 12, 24, 48)),
        ("miniseg-singlepath", (3, 4, 9, 7), (2, 2, 5, 4), (16, 48, 64, 128)),
    ],
)
def test_blocks_long_blocks_and_channels_per_stage(name, n, m, c):
    """N_k and M_k count the stage's stride-2 block too (the journal's Table V convention)."""
    model = _built(name)
    assert tuple(1 + len(getattr(model, f"level{s}")) for s in (1, 2, 3, 4)) == n
    assert tuple(1 + len(getattr(model, f"level{s}_long")) for s in (1, 2, 3, 4)) == m
    assert tuple(getattr(model, f"down{s}").bn.num_features for s in (1, 2, 3, 4)) == c


def test_long_blocks_beyond_the_short_ones_never_run():
    model = create_model("miniseg-m4-4-7-6").eval()
    model(torch.randn(1, 3, 32, 32)).sum().backward()
    idle = model.level1_long[2]
    assert all(p.grad is None for p in idle.parameters())
    assert all(p.grad is not None for p in model.level1_long[1].parameters())


def test_invalid_combinations_raise():
    with pytest.raises(ValueError, match="two_path"):
        MiniSeg(two_path=False)
    with pytest.raises(ValueError, match="aux"):
        MiniSeg(decoder=False)
    with pytest.raises(ValueError, match="block"):
        MiniSeg(block="nope")
    with pytest.raises(ValueError, match="per stage"):
        MiniSeg(long_blocks=(1, 1, 4))
    with pytest.raises(ValueError, match="branches"):
        MiniSeg(dilations=(1, 2, 4, 8, 16))
