"""ImageNet loading without a network: every pretrained row loads an ImageNet-format checkpoint from the cache.

The checkpoints here are the reference architectures' own state dicts (torchvision / timm) with
random values, planted where torchvision's and timm's caches keep them ($TORCH_HOME, the Hub
cache, both pointed at a temporary folder). Downloads are switched off, so a missing file must
fail fast and say how to fetch it.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch

from models import create_model, get_model_info, list_models
from models import _pretrained as pretrained
from models._pretrained import MissingWeightsError, PretrainedShapeError, WeightsRef
from models._weights import load_checked

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

#: Head tensors of the reference classifiers that a segmentation backbone drops on purpose.
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.")


def _offline(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    """Point torch.hub's and the Hub's caches at `root` and make every download fail at once."""
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return root


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty torch.hub and Hub caches under tmp_path; downloads fail at once."""
    return _offline(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """One offline cache for the whole module and `plant_once(ref)`, which fills it a reference at a time."""
    digests: dict[WeightsRef, dict[str, tuple]] = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        _offline(monkeypatch, tmp_path_factory.mktemp("caches"))

        def plant_once(ref: WeightsRef) -> dict[str, tuple]:
            """Plant a random checkpoint of `ref` (once); its tensors' digests by key."""
            if ref not in digests:
                state = reference_state(ref, seed=len(digests))
                plant(ref, state)
                digests[ref] = {k: digest(v) for k, v in state.items()}
            return digests[ref]

        yield plant_once


def reference_state(ref: WeightsRef, seed: int = 0) -> dict[str, torch.Tensor]:
    """The reference architecture's state dict with every tensor drawn at random (so each one is recognisable)."""
    with torch.device("meta"):  # shapes only: the values are drawn below
        if ref.library == "torchvision":
            from torchvision.models import get_model

            state = get_model(ref.name, weights=None).state_dict()
        else:
            import timm

            state = timm.create_model(ref.name, pretrained=False).state_dict()
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if value.is_floating_point():
            out[key] = torch.randn(value.shape, generator=gen, dtype=value.dtype)
        else:
            out[key] = torch.randint(1, 10**6, value.shape, generator=gen, dtype=value.dtype)
    return out


def plant(ref: WeightsRef, state: dict[str, torch.Tensor]) -> Path:
    """Save `state` where the library's cache looks for `ref` (Hub snapshot layout, or torch.hub's checkpoints)."""
    if ref.hf_hub_id:
        from safetensors.torch import save_file

        repo = Path(os.environ["HF_HUB_CACHE"]) / ("models--" + ref.hf_hub_id.replace("/", "--"))
        commit = "0" * 40
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        path = repo / "snapshots" / commit / "model.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(ref.url).path).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def digest(tensor: torch.Tensor) -> tuple:
    """A fingerprint of a tensor's values in memory order (cheap; random tensors never share one)."""
    flat = tensor.detach().reshape(-1)
    if flat.numel() == 0:
        return (0,)
    return (flat.numel(), flat.double().sum().item(), flat[0].item(), flat[-1].item())


def pretrained_models() -> list[str]:
    return [name for name in list_models() if get_model_info(name).pretrained_backbone]


def test_missing_weights_fail_fast_naming_the_file_and_the_fetch_command(caches):
    ref = pretrained.torchvision_ref("resnet18", "IMAGENET1K_V1")
    assert pretrained.local_path(ref) is None
    with pytest.raises(MissingWeightsError) as err:
        pretrained.torchvision_model("resnet18", True, "IMAGENET1K_V1")
    text = str(err.value)
    assert "resnet18-f37072fd.pth" in text and str(caches / "torch") in text
    assert "run_benchmark.py weights --models" in text and "HF_HUB_OFFLINE" in text


def test_a_checkpoint_of_the_wrong_shape_names_the_first_mismatching_key(caches):
    ref = pretrained.torchvision_ref("resnet18", "IMAGENET1K_V1")
    state = reference_state(ref)
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    plant(ref, state)
    with pytest.raises(PretrainedShapeError, match=r"does not fit ResNet: conv1\.weight is \(64, 1, 7, 7\) in the "
                                                   r"file but \(64, 3, 7, 7\) in the model"):
        pretrained.torchvision_model("resnet18", True, "IMAGENET1K_V1")
    del state["conv1.weight"]
    with pytest.raises(PretrainedShapeError, match=r"1 key\(s\) of the model missing from the file, first 'conv1.weight'"):
        load_checked(pretrained.torchvision_model("resnet18", False), state, "test", error=PretrainedShapeError)


def test_timm_weights_are_read_from_the_hub_cache(caches):
    ref = pretrained.timm_ref("mobilenetv1_100")
    assert ref.hf_hub_id and pretrained.local_path(ref) is None
    state = reference_state(ref, seed=3)
    plant(ref, state)
    assert pretrained.local_path(ref) is not None
    model = pretrained.timm_model("mobilenetv1_100", True, num_classes=0)
    loaded = model.state_dict()
    for key, value in state.items():
        if not key.startswith(HEAD_PREFIXES):
            assert torch.equal(loaded[key], value), key


def test_recording_lists_the_weights_without_loading_them(caches):
    with pretrained.recording() as requests:
        net = pretrained.torchvision_model("resnet18", True, "IMAGENET1K_V1")
    assert [str(r) for r in requests] == ["torchvision resnet18.IMAGENET1K_V1"] and net.fc.out_features == 1000
    assert pretrained.required_weights("pspnet-resnet101") == (pretrained.torchvision_ref("resnet101", "IMAGENET1K_V1"),)
    with pytest.raises(TypeError, match="pretrained"):
        pretrained.required_weights("unet")


#: Reference tensors a model leaves out by design (besides classifier heads), with the reason.
UNUSED_BY_DESIGN = {
    # a source key is used only where the authors' aligned Xception has the same key: their block 12
    # keeps 728 channels, so it has no skip conv and the source's block12 skip goes unused (models/deeplab.py)
    "deeplabv3plus-xception": ("block12.skip.", "block12.skipbn."),
}


@pytest.mark.parametrize("model", pretrained_models())
def test_every_pretrained_row_loads_every_backbone_tensor(model, planted):
    """Each reference tensor the model keeps (all but the classifier head) arrives in the model unchanged."""
    try:
        refs = pretrained.required_weights(model)
    except ValueError as err:  # the builder itself says no ImageNet weights exist (ShuffleNet v1)
        pytest.skip(str(err))
    except (OSError, MissingWeightsError, RuntimeError) as err:
        pytest.fail(f"{model} loads ImageNet weights outside models._pretrained (it tried to download: {err}); "
                    "build its backbone with models._pretrained.torchvision_model / timm_model / imagenet_state_dict")
    assert refs, f"{model} has pretrained_backbone=True but requests no ImageNet weights"
    planted_digests = {ref: planted(ref) for ref in refs}
    built = {digest(v) for v in create_model(model, pretrained=True).state_dict().values()}
    skip = HEAD_PREFIXES + UNUSED_BY_DESIGN.get(model, ())
    for ref, state in planted_digests.items():
        lost = [k for k, d in state.items() if not k.startswith(skip) and d not in built]
        assert not lost, f"{model}: {len(lost)} tensors of {ref} did not arrive, e.g. {lost[:3]}"
