"""Input normalisation, in one place for training and evaluation: a model is scored as it was trained.

A slice x (0..255) enters a model as (x / 255 - mean) / std, either with the fold's statistics (the training
slices' mean of per-image means and of per-image standard deviations, one value for all three channels,
PROTOCOL.md) or with ImageNet's per-channel values. Which one a model trains with is its recipe's choice
(benchmark.recipes); a checkpoint of our `train` records the name and the exact values, and the run record
says them per channel.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

from .protocol import NORMALIZATIONS, get_protocol
from .recipes import resolve

if TYPE_CHECKING:
    import numpy as np

#: What `evaluate --model` may be told: the two normalisations, or "auto" (the checkpoint's, else the recipe's).
AUTO = "auto"
CHOICES = (AUTO, *NORMALIZATIONS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
N_CHANNELS = 3

#: A mean or std: one value for every channel, or one per channel.
Stat = Union[float, tuple[float, ...]]


def input_statistics(name: str, fold_stats: tuple[float, float] | None) -> tuple[Stat, Stat]:
    """(mean, std) of normalisation `name`: ImageNet's per channel, or `fold_stats` (the training split's)."""
    if name not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {name!r}")
    if name == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD
    if fold_stats is None:
        raise ValueError("the fold normalisation needs the fold's (mean, std)")
    return fold_stats


def fold_statistics(train_images: np.ndarray) -> tuple[float, float]:
    """The fold's (mean, std) from its training slices (uint8), as the paper computes them."""
    from .datasets.stats import normalization_stats

    return normalization_stats(train_images)


def recipe_normalization(model_name: str) -> str:
    """How the `paper` preset normalises `model_name`'s inputs: "imagenet" (rows trained from ImageNet
    weights) or "fold" (the training slices' statistics)."""
    return resolve(get_protocol("paper"), model_name)[0].normalization


def checkpoint_fields(mean: Stat, std: Stat) -> dict[str, list[float]]:
    """The `input_mean` / `input_std` a checkpoint keeps (one value, or one per channel), read by
    `checkpoint_statistics`."""
    return {"input_mean": _floats(mean), "input_std": _floats(std)}


def record_fields(name: str, mean: Stat, std: Stat) -> dict[str, Any]:
    """The normalisation as a run record's `data` section states it: its name and one value per channel."""
    return {"normalization": name, "input_mean": _per_channel(mean), "input_std": _per_channel(std)}


def checkpoint_normalization(loaded: Any) -> str | None:
    """The normalisation a checkpoint of our `train` records in its protocol; None for a plain state_dict."""
    protocol = loaded.get("protocol") if isinstance(loaded, dict) else None
    value = protocol.get("normalization") if isinstance(protocol, dict) else None
    return value if value in NORMALIZATIONS else None


def checkpoint_statistics(loaded: Any) -> tuple[Stat, Stat] | None:
    """The (mean, std) a checkpoint of our `train` was trained with (one value, or one per channel); None if absent."""
    if not isinstance(loaded, dict) or not all(isinstance(loaded.get(k), list) for k in ("input_mean", "input_std")):
        return None
    mean, std = (tuple(float(v) for v in loaded[k]) for k in ("input_mean", "input_std"))
    if len(mean) != len(std) or len(mean) not in (1, N_CHANNELS):
        return None
    return (mean[0], std[0]) if len(mean) == 1 else (mean, std)


def for_weights(requested: str, loaded: Any, model_name: str, train_images: np.ndarray) -> tuple[str, Stat, Stat]:
    """(normalisation, mean, std) to run one fold's weights with.

    `requested` "fold" or "imagenet" is used as given (fold: the training slices' statistics). "auto"
    takes the normalisation a checkpoint of our `train` records, else the model's `paper` recipe, and
    the exact mean/std the checkpoint was trained with where it records them.
    """
    if requested != AUTO:
        name, recorded = requested, None
    else:
        name = checkpoint_normalization(loaded) or recipe_normalization(model_name)
        recorded = checkpoint_statistics(loaded)
    if recorded is not None:
        return (name, *recorded)
    fold_stats = fold_statistics(train_images) if name == "fold" else None
    return (name, *input_statistics(name, fold_stats))


def _floats(value: Stat) -> list[float]:
    """One value, or one per channel, as a list of floats."""
    return [float(v) for v in value] if isinstance(value, tuple) else [float(value)]


def _per_channel(value: Stat) -> list[float]:
    """One float per input channel (a single value repeated)."""
    return _floats(value) if isinstance(value, tuple) else [float(value)] * N_CHANNELS
