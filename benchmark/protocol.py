"""The training protocol: one frozen dataclass, presets `paper`, `uniform`, `fast`, `smoke`, `--set` overrides.

The base of every preset is the MiniSeg release's root recipe (../shared/paper/PROTOCOL.md):
Adam 1e-3 with weight decay 1e-4, poly 0.9 stepped every iteration over all passes, 80 epochs
of four passes (1.5/1.25/0.75/1.0 scale, crop margins 50/50/16/16 px, vertical flips), batch 5,
drop_last, class-weighted cross-entropy with w = 1/ln(1.10 + p), deep supervision from the
model's `aux_weights`, the final-epoch model tested.

What a model actually trains with is `recipes.resolve(protocol, model)` (benchmark.recipes):
under `paper` (and `fast`, `smoke`, derived from it) each paper row gets the recipe of the
authors' script that trained it; under `uniform` every model gets the base recipe. Both keep the
paper row's initialisation. Fields given with `--set` win over the model's recipe and are
recorded as deviations. A model an external framework trains (nnU-Net: benchmark.frameworks)
gets `trainer` = the framework and the framework's schedule (`epochs` x `steps_per_epoch`) instead.
"""
from __future__ import annotations

import ast
import dataclasses
import typing
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Iterable, Mapping

#: Crop margins are given in pixels at this base size and scale with `base_size`.
MARGIN_REFERENCE_SIZE = 512
#: Input normalisations (what each means: benchmark.normalization).
NORMALIZATIONS = ("fold", "imagenet")
LOSSES = ("ce-weighted", "bce")
BN_INITS = ("default", "torch041")
RECIPE_MODES = ("paper", "uniform")
#: The fields a model's recipe decides (benchmark.recipes); `--set` on them is a deviation.
RECIPE_FIELDS = ("passes", "normalization", "pretrained", "loss", "aux_weights")
#: Who trains a job: "ours" (benchmark.training.train) or an external framework (benchmark.frameworks).
TRAINERS = ("ours", "nnunet")
#: The schedule a framework's recipe decides (like RECIPE_FIELDS for ours); `--set` on them is a deviation.
SCHEDULE_FIELDS = ("epochs", "steps_per_epoch")
#: Fields added after records were written, left out of `to_dict` at their default so those records still match.
LATER_FIELDS: Mapping[str, Any] = MappingProxyType({"steps_per_epoch": 0, "trainer": "ours"})


@dataclass(frozen=True)
class Protocol:
    """Everything that decides what a training run computes (recorded in every run record)."""

    name: str = "paper"
    epochs: int = 80
    batch_size: int = 5
    drop_last: bool = True
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    #: One epoch = one pass per entry, in order: (scale of base_size, max crop margin px at 512).
    passes: tuple[tuple[float, int], ...] = ((1.5, 50), (1.25, 50), (0.75, 16), (1.0, 16))
    crop_prob: float = 0.5
    flip_prob: float = 0.5
    base_size: int = 512
    #: Test-fold metrics every `eval_every` epochs and after the last one (0: only the last).
    eval_every: int = 10
    eval_batch_size: int = 8
    seed: int = 0
    #: Input normalisation: "fold" (the training split's mean and std) or "imagenet" (per-channel ImageNet values).
    normalization: str = "fold"
    #: Start the backbone from ImageNet weights (models whose builder takes `pretrained`).
    pretrained: bool = False
    #: "ce-weighted": cross-entropy with the fold's class weights; "bce": sigmoid binary cross-entropy of the
    #: foreground-minus-background logit, no class weights (trainInfNet.py).
    loss: str = "ce-weighted"
    #: Loss weight of each train-mode output, main first; () = the model's declared `aux_weights`; 0 drops a term.
    aux_weights: tuple[float, ...] = ()
    #: BatchNorm init: "default" (today's torch) or "torch041" (gamma ~ U(0, 1), as the release's PyTorch 0.4.1).
    bn_init: str = "default"
    #: "paper": each paper row trains with its authors' recipe; "uniform": every model with this one.
    recipes: str = "paper"
    #: Optimiser steps per epoch where a framework counts epochs in steps (nnU-Net: 250); 0 for our trainer,
    #: whose epoch is its passes over the training slices.
    steps_per_epoch: int = 0
    #: Who trains (TRAINERS): set by the model's recipe, not by `--set` (`--protocol uniform` trains every model
    #: with ours).
    trainer: str = "ours"
    #: The fields set with `--set` / `with_overrides` (not part of what is computed: see `to_dict`).
    user_set: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = _validate(self)
        if problems:
            raise ValueError(f"invalid protocol {self.name!r}: " + "; ".join(problems))

    def margin_px(self, reference_margin_px: int) -> int:
        """A pass's maximum crop margin in pixels at this protocol's base size."""
        return round(reference_margin_px * self.base_size / MARGIN_REFERENCE_SIZE)

    def pass_size_px(self, scale: float) -> int:
        """Side of the square images a pass trains on."""
        return max(1, round(scale * self.base_size))

    def batches_per_pass(self, n_train: int) -> int:
        """Optimiser steps of one pass over `n_train` slices."""
        full, rest = divmod(n_train, self.batch_size)
        return full + (0 if self.drop_last or rest == 0 else 1)

    def iterations_per_epoch(self, n_train: int) -> int:
        """Optimiser steps of one epoch (every pass)."""
        return self.batches_per_pass(n_train) * len(self.passes)

    def total_iterations(self, n_train: int) -> int:
        """`max_it` of the poly schedule: every iteration of every pass of every epoch."""
        return self.iterations_per_epoch(n_train) * self.epochs

    def lr_at(self, iteration: int, total_iterations: int) -> float:
        """Poly schedule: lr * (1 - it / max_it) ** power, for 0-based `iteration`."""
        return self.lr * (1.0 - iteration / total_iterations) ** self.poly_power

    def is_eval_epoch(self, epoch: int) -> bool:
        """Whether test-fold metrics are computed after 1-based `epoch`."""
        return epoch == self.epochs or (self.eval_every > 0 and epoch % self.eval_every == 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (tuples as lists), plus the fields that differ from the named preset.

        `differs_from_preset`: fields whose value is not the preset's, and recipe fields set with
        `--set` that differ from the model's recipe (a model's own recipe is not a difference).
        """
        out: dict[str, Any] = {
            f.name: jsonable(getattr(self, f.name)) for f in fields(self)
            if f.name != "user_set" and not (f.name in LATER_FIELDS and getattr(self, f.name) == LATER_FIELDS[f.name])
        }
        preset = PRESETS.get(self.name)
        decided = self.recipe_decided()
        out["differs_from_preset"] = (
            sorted(
                name for name in _field_types()
                if (name in self.user_set and name in decided)
                or (name not in decided and getattr(self, name) != getattr(preset, name))
            )
            if preset is not None
            else None
        )
        return out

    def recipe_decided(self) -> tuple[str, ...]:
        """The fields the model's recipe decides: RECIPE_FIELDS, plus the schedule where a framework trains."""
        return RECIPE_FIELDS + (SCHEDULE_FIELDS if self.trainer != "ours" else ())

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Protocol":
        """A copy with some fields replaced; values may be strings (parsed by the field's type)."""
        hints = _field_types()
        unknown = sorted(set(overrides) - set(hints))
        if unknown:
            raise KeyError(f"unknown protocol field(s) {unknown}; fields: {', '.join(hints)}")
        parsed = {k: _coerce(k, v, hints[k]) for k, v in overrides.items()}
        user_set = tuple(sorted(set(self.user_set) | set(parsed)))
        return dataclasses.replace(self, **parsed, user_set=user_set)


def _validate(p: Protocol) -> list[str]:
    """Every reason why `p` cannot be trained."""
    checks = [
        (p.epochs >= 1, "epochs must be >= 1"),
        (p.batch_size >= 1, "batch_size must be >= 1"),
        (p.lr > 0, "lr must be > 0"),
        (len(p.passes) >= 1, "passes must hold at least one (scale, margin) pair"),
        (all(s > 0 and m >= 0 for s, m in p.passes), "every pass needs scale > 0 and margin >= 0"),
        (0 <= p.crop_prob <= 1 and 0 <= p.flip_prob <= 1, "probabilities must lie in [0, 1]"),
        (p.base_size >= 8, "base_size must be >= 8"),
        (p.eval_every >= 0, "eval_every must be >= 0"),
        (p.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
        (p.normalization in NORMALIZATIONS, f"normalization must be one of {', '.join(NORMALIZATIONS)}"),
        (p.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
        (p.bn_init in BN_INITS, f"bn_init must be one of {', '.join(BN_INITS)}"),
        (p.recipes in RECIPE_MODES, f"recipes must be one of {', '.join(RECIPE_MODES)}"),
        (p.steps_per_epoch >= 0, "steps_per_epoch must be >= 0"),
        (p.trainer in TRAINERS, f"trainer must be one of {', '.join(TRAINERS)}"),
        (all(w >= 0 for w in p.aux_weights) and (not p.aux_weights or p.aux_weights[0] > 0),
         "aux_weights must be >= 0, the main output's > 0"),
    ]
    problems = [msg for ok, msg in checks if not ok]
    if not problems:
        too_big = [m for s, m in p.passes if 2 * p.margin_px(m) >= p.pass_size_px(s)]
        if too_big:
            problems.append(f"crop margins {too_big} leave nothing of a {p.base_size}px image")
    return problems


def _field_types() -> dict[str, Any]:
    """Field name -> resolved type hint of every settable field, in declaration order."""
    hints = typing.get_type_hints(Protocol)
    return {f.name: hints[f.name] for f in fields(Protocol) if f.name not in ("user_set", "trainer")}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Turn `value` (a string from the command line, or a Python value) into the field's type."""
    try:
        if isinstance(value, str) and hint is not str:
            value = _parse_literal(value, hint)
        return _convert(value, hint)
    except (ValueError, TypeError, SyntaxError) as err:
        raise ValueError(f"protocol field {name!r} expects {_type_name(hint)}, got {value!r} ({err})") from None


def _parse_literal(text: str, hint: Any) -> Any:
    """Parse a command-line value: booleans by word, everything else as a Python literal."""
    if hint is bool:
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.strip().lower() not in words:
            raise ValueError("use true/false")
        return words[text.strip().lower()]
    return ast.literal_eval(text.strip())


def _convert(value: Any, hint: Any) -> Any:
    """Check and convert a parsed value against a (possibly nested tuple) type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise TypeError("not a tuple")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(value) != len(args):
            raise ValueError(f"needs {len(args)} elements")
        return tuple(_convert(v, a) for v, a in zip(value, args))
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError("not a boolean")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("not an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("not a number")
        return float(value)
    if hint is str:
        return str(value)
    raise TypeError(f"unsupported field type {hint}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")


def jsonable(value: Any) -> Any:
    """A field's value as JSON holds it: tuples (nested too) become lists."""
    return [jsonable(v) for v in value] if isinstance(value, tuple) else value


PRESETS: Mapping[str, Protocol] = MappingProxyType(
    {
        "paper": Protocol(),
        "uniform": Protocol(name="uniform", recipes="uniform"),
        "fast": Protocol(name="fast", epochs=10, passes=((1.0, 16),), eval_every=0),
        "smoke": Protocol(
            name="smoke", epochs=2, batch_size=8, passes=((1.25, 32), (1.0, 16)), base_size=32, eval_every=1
        ),
    }
)

def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """`["epochs=5", "passes=((1.0,16),)"]` -> `{"epochs": "5", ...}`; malformed items raise ValueError."""
    out: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def get_protocol(name: str, assignments: Iterable[str] = (), seed: int | None = None) -> Protocol:
    """A preset by name with `key=value` overrides applied (and `seed` when given)."""
    if name not in PRESETS:
        raise KeyError(f"unknown protocol {name!r}; presets: {', '.join(PRESETS)}")
    overrides: dict[str, Any] = dict(parse_assignments(assignments))
    if seed is not None:
        overrides["seed"] = seed
    return PRESETS[name].with_overrides(overrides)

