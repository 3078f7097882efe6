"""Model registry: one decorated builder per model name, looked up by `create_model`.

The public API (DESIGN.md): `register_model`, `create_model`, `list_models`,
`get_model_info`, `ModelInfo`, plus `load_plugin` for users' own model files.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import nn

__all__ = [
    "ModelInfo",
    "register_model",
    "create_model",
    "list_models",
    "get_model_info",
    "load_plugin",
]

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.]*(-[a-z0-9_.]+)*$")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model besides how to build it."""

    name: str
    family: str
    source: str
    paper_name: str | None = None
    backbone: str | None = None
    aux_weights: tuple[float, ...] = (1.0,)
    pretrained_backbone: bool = False
    reference: str = ""
    notes: str = ""
    min_input_size: int = 32
    input_multiple: int = 1
    # The figures the model's own paper states for its own configuration (not ours at 2 classes, 512x512):
    # parameters, GMACs and the input size they were counted at ("256x256"); None where not stated.
    reported_params: int | None = None
    reported_gmacs: float | None = None
    reported_input: str | None = None
    # True: its main logits may be smaller than the input (by design); they are upsampled (bilinear) to the
    # input's size before the argmax and the loss, and the records say so. False: logits at the input's size.
    low_res_logits: bool = False
    builder: Callable[..., nn.Module] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    @property
    def has_aux(self) -> bool:
        """True when train mode returns auxiliary outputs besides the main logits."""
        return len(self.aux_weights) > 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (the builder is named, not serialised)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "builder"}
        out["aux_weights"] = list(self.aux_weights)
        out["builder"] = f"{self.builder.__module__}.{self.builder.__qualname__}" if self.builder else None
        return out


_REGISTRY: dict[str, ModelInfo] = {}
_BUILTINS_LOADED = False


def register_model(
    name: str | None = None,
    *,
    family: str | None = None,
    source: str = "ours",
    paper_name: str | None = None,
    backbone: str | None = None,
    aux_weights: tuple[float, ...] = (1.0,),
    pretrained_backbone: bool = False,
    reference: str = "",
    notes: str = "",
    min_input_size: int = 32,
    input_multiple: int = 1,
    reported_params: int | None = None,
    reported_gmacs: float | None = None,
    reported_input: str | None = None,
    low_res_logits: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers `builder(num_classes=2, in_channels=3, **kwargs) -> nn.Module`.

    `name` defaults to the builder's function name with `_` replaced by `-`.
    Registering a name twice raises `ValueError`. `low_res_logits=True` declares main logits smaller than
    the input (upsampled before the argmax and the loss); otherwise they must come at the input's size.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        model_name = name or builder.__name__.replace("_", "-")
        info = ModelInfo(
            name=model_name,
            family=family or model_name.split("-")[0],
            source=source,
            paper_name=paper_name,
            backbone=backbone,
            aux_weights=tuple(float(w) for w in aux_weights),
            pretrained_backbone=pretrained_backbone,
            reference=reference,
            notes=notes,
            min_input_size=min_input_size,
            input_multiple=input_multiple,
            reported_params=reported_params,
            reported_gmacs=reported_gmacs,
            reported_input=reported_input,
            low_res_logits=low_res_logits,
            builder=builder,
        )
        add_model_info(info)
        return builder

    return decorator


def add_model_info(info: ModelInfo) -> None:
    """Register a fully built `ModelInfo` (used by loops that register library models)."""
    if not _NAME_RE.match(info.name):
        raise ValueError(
            f"model name {info.name!r} must be lowercase, '-' separated (e.g. 'unet', 'smp-unet-resnet34')"
        )
    if info.name in _REGISTRY:
        previous = _REGISTRY[info.name].builder
        where = f"{previous.__module__}.{previous.__qualname__}" if previous else "?"
        raise ValueError(f"model {info.name!r} is already registered (by {where})")
    if not info.aux_weights:
        raise ValueError(f"model {info.name!r}: aux_weights must hold at least the main output's weight")
    _REGISTRY[info.name] = info


def _ensure_builtins() -> None:
    """Import the project's model modules once, so that their decorators run."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        importlib.import_module("models._catalog")


def _lookup(name: str) -> ModelInfo:
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise KeyError(f"unknown model {name!r}{hint}. `run_benchmark.py list` shows all.") from None


def get_model_info(name: str) -> ModelInfo:
    """Return the `ModelInfo` of a registered model; unknown names raise `KeyError`."""
    return _lookup(name)


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, filtered by an fnmatch pattern (or several, comma-separated)."""
    _ensure_builtins()
    names = sorted(_REGISTRY)
    if pattern is None:
        return names
    patterns = [p.strip() for p in pattern.split(",") if p.strip()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def create_model(name: str, num_classes: int = 2, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build a registered model. Keyword arguments set to None are dropped so defaults apply."""
    info = _lookup(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    _check_kwargs(info, kwargs)
    model = info.builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    model.model_name = name  # type: ignore[attr-defined]
    return model


def _check_kwargs(info: ModelInfo, kwargs: dict[str, Any]) -> None:
    """Reject keyword arguments the builder does not take, naming the ones it does."""
    params = inspect.signature(info.builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        accepted = sorted(set(params) - {"num_classes", "in_channels"})
        raise TypeError(f"model {info.name!r} takes no argument(s) {unknown}; it accepts {accepted}")


def load_plugin(spec: str) -> None:
    """Import a user's model file (a path ending in .py) or module name, so its builders register."""
    _ensure_builtins()
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise FileNotFoundError(f"plugin file not found: {path}")
        module_name = f"miniseg_plugin_{path.stem}_{abs(hash(str(path.resolve()))) % 10**8}"
        if module_name in sys.modules:
            return
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(f"cannot import plugin file {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    else:
        importlib.import_module(spec)
