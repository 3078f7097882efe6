"""ImageNet weights for pretrained backbones: torchvision's and timm's own weight APIs, offline-safe.

Where the files live (the libraries' own caches, read at call time):
- torchvision weights, and timm weights published by URL: torch.hub's cache,
  `$TORCH_HOME/hub/checkpoints/` (default ~/.cache/torch/hub/checkpoints/);
- timm weights published on the Hugging Face Hub: the Hub cache, `$HF_HUB_CACHE`
  (default `$HF_HOME/hub`, ~/.cache/huggingface/hub).
A file found there is used with no network access. A missing one is downloaded, unless
`HF_HUB_OFFLINE=1`; when it can be neither found nor downloaded, `MissingWeightsError` names the
file, where it was looked for and how to fetch it. A checkpoint whose tensors do not fit the
backbone raises `PretrainedShapeError` naming the first mismatching key and both shapes.

Model files build their backbones with `torchvision_model` and `timm_model`, or take a state dict
with `imagenet_state_dict`, instead of passing `weights=` / `pretrained=` to the libraries.
`required_weights(model)` lists what a registered model loads with `pretrained=True`: it builds the
model on the meta device while `recording()` collects the requests instead of loading them.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import torch
from torch import nn

from ._weights import load_checked

__all__ = [
    "WeightsRef",
    "MissingWeightsError",
    "PretrainedShapeError",
    "torchvision_ref",
    "timm_ref",
    "torchvision_model",
    "timm_model",
    "imagenet_state_dict",
    "local_path",
    "expected_path",
    "fetch",
    "fetch_hint",
    "recording",
    "required_weights",
]

HF_FILENAMES = ("model.safetensors", "pytorch_model.bin")  # timm's order of preference on the Hub
_RECORDING: contextvars.ContextVar[list["WeightsRef"] | None] = contextvars.ContextVar("pretrained_recording",
                                                                                       default=None)


class MissingWeightsError(RuntimeError):
    """ImageNet weights are neither in the local cache nor downloadable."""


class PretrainedShapeError(ValueError):
    """A checkpoint's tensors do not fit the backbone they are loaded into."""


@dataclass(frozen=True)
class WeightsRef:
    """One set of ImageNet weights: a torchvision builder and weights name, or a timm model (with its tag)."""

    library: str  # "torchvision" or "timm"
    name: str  # torchvision builder ("resnet101") or timm model ("mobilenetv1_100")
    tag: str  # torchvision weights member ("IMAGENET1K_V1"); timm pretrained tag ("ra4_e3600_r224_in1k")
    url: str | None = None  # where torch.hub downloads it from (torchvision; timm's URL-only weights)
    hf_hub_id: str | None = None  # timm weights on the Hugging Face Hub ("timm/<name>.<tag>")

    def __str__(self) -> str:
        return f"{self.library} {self.name}.{self.tag}" if self.tag else f"{self.library} {self.name}"


def torchvision_ref(name: str, weights: str = "DEFAULT") -> WeightsRef:
    """The torchvision weights `weights` ("IMAGENET1K_V1", "DEFAULT") of builder `name`, resolved to their member."""
    from torchvision.models import get_model_weights

    try:
        member = get_model_weights(name)[weights]
    except KeyError:
        options = ", ".join(m.name for m in get_model_weights(name))
        raise ValueError(f"torchvision {name}: no weights {weights!r}; it has {options}") from None
    return WeightsRef("torchvision", name, member.name, url=member.url)


def timm_ref(name: str) -> WeightsRef:
    """timm model `name` ("mobilenetv1_100" or "name.tag") with its default (or given) pretrained tag."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(f"timm {name}: no pretrained weights are published for it")
    arch, _, tag = name.partition(".")
    return WeightsRef("timm", arch, tag or (cfg.tag or ""), url=cfg.url or None, hf_hub_id=cfg.hf_hub_id or None)


# --- where the files are -------------------------------------------------------------------

def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder (`$TORCH_HOME/hub/checkpoints` unless torch.hub.set_dir was called)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> Path:
    """The Hugging Face Hub cache, read from the environment now (`$HF_HUB_CACHE`, else `$HF_HOME/hub`)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _url_file(url: str) -> Path:
    return torch_hub_checkpoints() / Path(urlparse(url).path).name


def _places(ref: WeightsRef) -> list[str]:
    """Where `ref` is looked for, in words (for messages)."""
    places = []
    if ref.hf_hub_id:
        places.append(f"{hf_cache_dir()} (Hugging Face Hub {ref.hf_hub_id})")
    if ref.url:
        places.append(str(_url_file(ref.url)))
    return places


def expected_path(ref: WeightsRef) -> Path:
    """Where a download of `ref` lands: its Hub repo's cache folder, or torch.hub's checkpoint file."""
    if ref.hf_hub_id:
        return hf_cache_dir() / ("models--" + ref.hf_hub_id.replace("/", "--"))
    return _url_file(ref.url or "")


def local_path(ref: WeightsRef) -> Path | None:
    """The cached file of `ref`, or None when it is not on this machine."""
    if ref.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in HF_FILENAMES:
            found = try_to_load_from_cache(ref.hf_hub_id, filename, cache_dir=hf_cache_dir())
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if ref.url and _url_file(ref.url).is_file():
        return _url_file(ref.url)
    return None


def offline() -> bool:
    """True when downloads are switched off (`HF_HUB_OFFLINE=1`)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def fetch_hint(ref: WeightsRef, model: str | None = None) -> str:
    """How to get `ref` onto a machine that cannot download it."""
    return (f"fetch it with `run_benchmark.py weights --models {model or '<model>'}` where there is internet "
            f"(source: {ref.hf_hub_id or ref.url}) and copy it to {' or '.join(_places(ref))}")


def fetch(ref: WeightsRef, model: str | None = None) -> Path:
    """The local file of `ref`, downloaded into the library's cache when missing; MissingWeightsError otherwise."""
    found = local_path(ref)
    if found is not None:
        return found
    if offline():
        raise MissingWeightsError(f"ImageNet weights {ref} are not cached and HF_HUB_OFFLINE is set; "
                                  + fetch_hint(ref, model))
    try:
        _check_reachable(ref)
        return _download(ref)
    except Exception as err:  # noqa: BLE001 - every download failure becomes one clear message
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".strip(": ")
        raise MissingWeightsError(f"ImageNet weights {ref} are not cached and could not be downloaded ({reason}); "
                                  + fetch_hint(ref, model)) from None


def _check_reachable(ref: WeightsRef, timeout_s: float = 10.0) -> None:
    """Fail fast (OSError) when no host of `ref` answers, instead of the Hub client's minute of retries."""
    hosts = ([urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname] if ref.hf_hub_id else [])
    hosts += [urlparse(ref.url).hostname] if ref.url else []
    errors = []
    for host in hosts:
        try:
            socket.create_connection((host, 443), timeout=timeout_s).close()
            return
        except OSError as err:
            errors.append(f"{host}: {err}")
    raise OSError("no network: " + "; ".join(errors))


def _download(ref: WeightsRef) -> Path:
    """Download `ref` the way its library does (Hub first for timm, then the URL)."""
    if ref.hf_hub_id:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        for filename in HF_FILENAMES:
            try:
                return Path(hf_hub_download(ref.hf_hub_id, filename, cache_dir=hf_cache_dir()))
            except EntryNotFoundError:
                continue
    if not ref.url:
        raise FileNotFoundError(f"{ref.hf_hub_id} holds none of {HF_FILENAMES}")
    target = _url_file(ref.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    match = re.search(r"-([a-f0-9]{8,})\.", target.name)  # torch.hub's hash-prefix naming convention
    torch.hub.download_url_to_file(ref.url, str(target), hash_prefix=match[1] if match else None, progress=True)
    return target


# --- loading -------------------------------------------------------------------------------

@contextlib.contextmanager
def recording() -> Iterator[list[WeightsRef]]:
    """Within this block, weight requests are collected in the yielded list and nothing is loaded."""
    requests: list[WeightsRef] = []
    token = _RECORDING.set(requests)
    try:
        yield requests
    finally:
        _RECORDING.reset(token)


def _record(ref: WeightsRef) -> bool:
    """Note `ref` when recording; True when recording (the caller then skips loading)."""
    requests = _RECORDING.get()
    if requests is None:
        return False
    requests.append(ref)
    return True


def torchvision_model(name: str, pretrained: bool, weights: str = "DEFAULT", **kwargs: Any) -> nn.Module:
    """torchvision builder `name` with random weights, then (if `pretrained`) its ImageNet `weights` loaded."""
    from torchvision.models import get_model

    model = get_model(name, weights=None, **kwargs)
    if pretrained:
        ref = torchvision_ref(name, weights)
        if not _record(ref):
            load_checked(model, _torchvision_state(ref), str(ref), error=PretrainedShapeError)
    return model


def timm_model(name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    """`timm.create_model(name, **kwargs)`, its pretrained weights read by timm from the local cache file."""
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    ref = timm_ref(name)
    if _record(ref):
        return timm.create_model(name, pretrained=False, **kwargs)
    path = fetch(ref)
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), None)
        if first is None:
            raise
        raise PretrainedShapeError(f"{ref} ({path}): {first}") from None


def imagenet_state_dict(library: str, name: str, weights: str = "DEFAULT") -> dict[str, torch.Tensor]:
    """The ImageNet state dict of a torchvision builder or timm model, in that library's key layout.

    For model files that copy the weights into modules of their own. While recording, the
    reference architecture's own (random or meta) state dict stands in for it.
    """
    if library == "torchvision":
        ref = torchvision_ref(name, weights)
        if _record(ref):
            return torchvision_model(name, pretrained=False).state_dict()
        return _torchvision_state(ref)
    if library == "timm":
        ref = timm_ref(name)
        if _record(ref):
            return timm_model(name, pretrained=False).state_dict()
        return timm_model(name, pretrained=True).state_dict()
    raise ValueError(f"unknown weights library {library!r}; use 'torchvision' or 'timm'")


def _torchvision_state(ref: WeightsRef) -> dict[str, torch.Tensor]:
    """torchvision's own `Weights.get_state_dict`, reading the cached file (fetched first when missing)."""
    from torchvision.models import get_model_weights

    fetch(ref)
    return get_model_weights(ref.name)[ref.tag].get_state_dict(progress=False, check_hash=True, weights_only=True)


def required_weights(model: str) -> tuple[WeightsRef, ...]:
    """The ImageNet weights registered `model` loads with `pretrained=True` (built on the meta device, nothing loaded).

    Raises TypeError when its builder takes no `pretrained`, and the builder's own error (e.g.
    ValueError) when it has no ImageNet weights at all.
    """
    from ._registry import create_model

    with recording() as requests:
        try:
            with torch.device("meta"):
                create_model(model, pretrained=True)
        except (NotImplementedError, RuntimeError):  # an op the meta device lacks: build for real
            requests.clear()
            create_model(model, pretrained=True)
    return tuple(dict.fromkeys(requests))
