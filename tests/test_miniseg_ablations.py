"""MiniSeg's Table 2/3 ablations differ from `miniseg` only where the table says."""
from __future__ import annotations

from functools import lru_cache

import pytest
import torch
from torch import nn

from models import create_model, get_model_info, list_models
from models.miniseg import ABLATIONS, AHSPBlock, DownsamplerBlock, MiniSeg, SeparableBlock

TABLE2 = ("miniseg-sb", "miniseg-mb", "miniseg-ah", "miniseg-tp")
TABLE3 = ("miniseg-relu", "miniseg-nodecoder", "miniseg-nods", "miniseg-stage1ahsp", "miniseg-down3x3", "miniseg-ffm")


@lru_cache(maxsize=None)
def _state(name: str) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in create_model(name).state_dict().items()}


def _changed_keys(name: str) -> set[str]:
    """Keys that are missing, new, or reshaped relative to the released `miniseg`."""
    base, other = _state("miniseg"), _state(name)
    return {k for k in base.keys() | other.keys() if base.get(k) != other.get(k)}


def _top(keys: set[str]) -> set[str]:
    return {k.split(".")[0] for k in keys}


def test_every_ablation_is_registered_with_its_table_row():
    assert set(list_models("miniseg-*")) >= set(TABLE2 + TABLE3)
    for name in TABLE2 + TABLE3:
        info = get_model_info(name)
        assert info.paper_name is None and info.family == "miniseg-ablation"
        assert info.notes.startswith("Table 2 row" if name in TABLE2 else "Table 3 row")


def test_table2_progression_blocks_and_paths():
    sb, mb, ah, tp = (create_model(n) for n in TABLE2)
    assert all(isinstance(b, SeparableBlock) and b.conv_dw.dilation == (1, 1) for b in sb.level3)
    assert all(isinstance(b, AHSPBlock) and not hasattr(b, "attention") and not hasattr(b, "pool") for b in mb.level3)
    assert all(hasattr(b, "attention") and hasattr(b, "pool") for b in ah.level3)
    for single in (sb, mb, ah):
        assert not any(hasattr(single, f"long{s}") or hasattr(single, f"cat{s}") for s in (1, 2, 3, 4))
    assert hasattr(tp, "long2") and len(tp.level3_long) == 4 and not hasattr(tp, "cat1")
    # +TP differs from the full model only by the channel split's cat modules.
    assert _top(_changed_keys("miniseg-tp")) == {"cat1", "cat2", "cat3"}


def test_single_path_equals_no_long_path_loop():
    model = create_model("miniseg-ah").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = model.down2(model.encode(x)[0])
        for block in model.level2:
            out = block(out) + out
        assert torch.allclose(model.encode(x)[1], out, atol=1e-6)


@pytest.mark.parametrize(
    "name, changed",
    [
        ("miniseg-nods", {"pred2", "pred3", "pred4"}),
        ("miniseg-down3x3", {"long1", "long2", "long3", "long4", "level1_long", "level2_long", "level3_long", "level4_long"}),
        ("miniseg-stage1ahsp", {"down1", "level1"}),
        ("miniseg-ffm", {"up3_conv4", "up2_conv3", "up1_conv2"}),
    ],
)
def test_table3_variants_change_only_their_modules(name, changed):
    assert _top(_changed_keys(name)) == changed


def test_relu_variant_only_drops_the_prelu_slopes():
    assert all(k.endswith("act.weight") for k in _changed_keys("miniseg-relu"))
    model = create_model("miniseg-relu")
    assert not any(isinstance(m, nn.PReLU) for m in model.modules())


def test_down3x3_kernels_and_stage1ahsp_blocks():
    model = create_model("miniseg-down3x3")
    downsamplers = [m for m in model.modules() if isinstance(m, DownsamplerBlock)]
    assert downsamplers and all(m.conv1.kernel_size == (3, 3) and m.conv1.padding == (1, 1) for m in downsamplers)
    stage1 = create_model("miniseg-stage1ahsp")
    assert isinstance(stage1.down1, AHSPBlock) and all(isinstance(b, AHSPBlock) for b in stage1.level1)


def test_no_deep_supervision_and_no_decoder_return_one_output():
    for name in ("miniseg-nods", "miniseg-nodecoder"):
        assert get_model_info(name).aux_weights == (1.0,)
        out = create_model(name).train()(torch.randn(2, 3, 64, 64))
        assert isinstance(out, torch.Tensor) and out.shape == (2, 2, 64, 64)
    assert sum(p.numel() for p in create_model("miniseg-nods").parameters()) == 82_666


def test_no_decoder_predicts_from_the_last_encoder_stage():
    model = create_model("miniseg-nodecoder").eval()
    assert not any(k.startswith("up") for k in model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        deepest = model.encode(x)[-1]
        expected = nn.functional.interpolate(model.pred1(deepest), size=(64, 64), mode="bilinear", align_corners=False)
        assert deepest.shape[-1] == 64 // 16
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_invalid_combinations_raise():
    with pytest.raises(ValueError, match="two_path"):
        MiniSeg(two_path=False)
    with pytest.raises(ValueError, match="aux"):
        MiniSeg(decoder=False)
    with pytest.raises(ValueError, match="block"):
        MiniSeg(block="nope")


def test_options_table_has_every_variant_once():
    assert set(ABLATIONS) == set(TABLE2 + TABLE3) - {"miniseg"}
