"""Registry API: lookup, errors, None-dropping, patterns, plugins."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from models import create_model, get_model_info, list_models, load_plugin, register_model
from models._registry import _REGISTRY

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def temporary_model():
    """Registers a throwaway model and removes it afterwards, so tests don't leak registrations."""
    name = "test-tiny-registry"

    @register_model(name, family="test", source="test")
    def build(num_classes: int = 2, in_channels: int = 3, width: int = 4) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.Conv2d(width, num_classes, 1))

    yield name
    _REGISTRY.pop(name, None)


def test_unknown_name_lists_closest():
    with pytest.raises(KeyError) as err:
        get_model_info("minisg")
    assert "miniseg" in str(err.value)


def test_register_twice_raises(temporary_model):
    with pytest.raises(ValueError, match="already registered"):
        register_model(temporary_model, family="test")(lambda num_classes=2, in_channels=3: nn.Identity())


def test_bad_name_rejected():
    with pytest.raises(ValueError, match="lowercase"):
        register_model("Bad_Name", family="test")(lambda num_classes=2, in_channels=3: nn.Identity())
    assert "Bad_Name" not in _REGISTRY


def test_none_kwargs_dropped_and_defaults_apply(temporary_model):
    model = create_model(temporary_model, width=None)
    assert model[0].out_channels == 4
    assert create_model(temporary_model, width=7)[0].out_channels == 7


def test_unknown_kwarg_names_accepted_ones(temporary_model):
    with pytest.raises(TypeError, match="width"):
        create_model(temporary_model, depth=3)


def test_num_classes_and_in_channels_reach_builder():
    model = create_model("miniseg", num_classes=3, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 3, 64, 64)


def test_list_models_sorted_and_patterns():
    names = list_models()
    assert names == sorted(names) and "miniseg" in names
    smp = list_models("smp-*")
    assert smp and all(n.startswith("smp-") for n in smp)
    both = list_models("smp-unet-*,tv-*")
    assert "smp-unet-resnet34" in both and "tv-fcn-resnet50" in both and "miniseg" not in both


REQUIRED_LIBRARY_MODELS = (
    "smp-unet-resnet34", "smp-unetplusplus-resnet34", "smp-deeplabv3-resnet34", "smp-deeplabv3plus-resnet34",
    "smp-fpn-resnet34", "smp-segformer-mit_b0", "tv-fcn-resnet50", "tv-deeplabv3-resnet50",
    "tv-lraspp-mobilenet_v3_large",
)


@pytest.mark.parametrize("name", REQUIRED_LIBRARY_MODELS)
def test_library_models_registered(name):
    info = get_model_info(name)
    assert info.source in ("smp", "torchvision") and info.builder is not None


def test_model_info_to_dict_is_json_ready():
    import json

    data = get_model_info("miniseg").to_dict()
    assert json.loads(json.dumps(data))["aux_weights"] == [1.0, 0.4, 0.4, 0.4]
    assert data["paper_name"] == "MiniSeg"


# The README's "Add your own model" example, verbatim in spirit: a user's file, no project edit.
PLUGIN_SOURCE = textwrap.dedent(
    """
    from torch import nn
    from models import register_model

    @register_model("my-tiny-net", family="mine", paper_name=None)
    def my_tiny_net(num_classes=2, in_channels=3, width=16):
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, num_classes, 1),
        )
    """
)


def test_plugin_file_via_cli(tmp_path):
    plugin = tmp_path / "my_models.py"
    plugin.write_text(PLUGIN_SOURCE)
    out = subprocess.run(
        [sys.executable, "run_benchmark.py", "list", "--plugin", str(plugin), "--models", "my-*", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    import json

    rows = json.loads(out.stdout)
    assert [r["model"] for r in rows] == ["my-tiny-net"]
    assert rows[0]["params"] == 3 * 16 * 9 + 16 + 2 * 16 + 16 * 2 + 2


def test_plugin_module_name(tmp_path, monkeypatch):
    (tmp_path / "user_plugin_mod.py").write_text(PLUGIN_SOURCE.replace("my-tiny-net", "my-tiny-mod"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        load_plugin("user_plugin_mod")
        assert "my-tiny-mod" in list_models("my-*")
    finally:
        _REGISTRY.pop("my-tiny-mod", None)
        sys.modules.pop("user_plugin_mod", None)


def test_missing_plugin_file_is_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.py"):
        load_plugin(str(tmp_path / "nope.py"))


def test_torchvision_aux_head_runs_only_in_train_mode():
    """torchvision's own forward computes the aux head in eval mode too; our wrapper must not."""
    model = create_model("tv-fcn-resnet50")
    calls = []
    model.aux_classifier.register_forward_hook(lambda *_: calls.append(1))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert calls == []
    model.train()
    assert len(model(torch.randn(2, 3, 64, 64))) == 2 and calls == [1]
