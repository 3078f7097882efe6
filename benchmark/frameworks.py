"""Models trained by an external framework under the paper-based presets: which, with what schedule, by whom.

A framework (today nnU-Net v2) brings its own recipe: its plan, preprocessing, augmentation, loss,
optimiser and inference. Under `paper` (and `fast`, `smoke`, which shorten it) a model of a framework's
family is trained by that framework (`Protocol.trainer`), the job going through the same runner
(planning, skipping done jobs, locks, resume, failure records, executors, `--dry-run`); only the
function that trains the job differs (benchmark.training.backends). Of our protocol only the schedule (`epochs` x
`steps_per_epoch`), `base_size` (the slices' side the framework is given) and `seed` apply; `--set` on
the schedule is recorded as a deviation, `--set` on anything else is refused before the first job.
Under `uniform` the same registered network trains with our trainer and MiniSeg's recipe.

Facts (nnunetv2 2.8, `nnUNetTrainer.__init__`): 1000 epochs of 250 training iterations and 50
validation iterations, SGD (Nesterov momentum 0.99) from lr 1e-2 with a poly schedule per epoch,
weight decay 3e-5, Dice + cross-entropy with deep supervision.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from .protocol import RECIPE_FIELDS, SCHEDULE_FIELDS, Protocol

#: `--set` fields that apply to a framework-trained job; the framework decides everything else.
APPLICABLE_FIELDS = (*SCHEDULE_FIELDS, "base_size", "seed")


@dataclass(frozen=True)
class Framework:
    """An external training framework: its trainer, its schedules, what it needs installed and what it decides."""

    name: str  # the Protocol.trainer value
    title: str
    trainer: str  # the framework's trainer class, as the record's protocol_exception names it ("script")
    #: (epochs, steps per epoch) under each preset; a preset not listed gets `paper`'s, the framework's own.
    schedules: Mapping[str, tuple[int, int]]
    val_steps_per_epoch: int  # the framework's validation steps per `steps_per_epoch`-step epoch of its own
    requirement: str  # "module:function" that raises ImportError naming the extra when the framework is missing
    owns: str  # what the framework decides, in words (the protocol_exception text)

    def schedule(self, preset: str) -> tuple[int, int]:
        """(epochs, steps per epoch) of this framework under `preset`."""
        return self.schedules.get(preset, self.schedules["paper"])

    def val_steps(self, steps_per_epoch: int) -> int:
        """Validation steps per epoch: the framework's own ratio to its training steps, at least one."""
        own_steps = self.schedules["paper"][1]
        return max(1, round(steps_per_epoch * self.val_steps_per_epoch / own_steps))


FRAMEWORKS: Mapping[str, Framework] = MappingProxyType({
    "nnunet": Framework(
        name="nnunet",
        title="nnU-Net v2",
        trainer="nnunetv2/nnUNetTrainer",
        schedules=MappingProxyType({"paper": (1000, 250), "fast": (10, 250), "smoke": (2, 2)}),
        val_steps_per_epoch=50,
        requirement="models.nnunet:require_nnunet",
        owns=("nnU-Net's fingerprint, plan (network, patch and batch size), preprocessing (CT normalisation), "
              "augmentation, loss (Dice + cross-entropy, deep supervision), optimiser (SGD, Nesterov momentum 0.99, "
              "lr 1e-2 poly, weight decay 3e-5) and inference (sliding window, Gaussian weighting, mirroring), "
              "planned once per dataset on all its fold slices as nnU-Net's cross-validation does; the test fold is "
              "nnU-Net's validation fold, predicted by nnU-Net and scored by our metrics on the ground truth's grid"),
    ),
})

#: Model families (ModelInfo.family) a framework trains under the paper-based presets.
FAMILY_FRAMEWORKS: Mapping[str, str] = MappingProxyType({"nnunet": "nnunet"})


def family_framework(model: str) -> Framework | None:
    """The framework of `model`'s family (it trains the model under the paper-based presets), or None."""
    from models import get_model_info

    name = FAMILY_FRAMEWORKS.get(get_model_info(model).family)
    return FRAMEWORKS[name] if name is not None else None


def framework_of(model: str, protocol: Protocol) -> Framework | None:
    """The framework that trains `model` under `protocol` (its family's, under a paper-based preset), or None."""
    return family_framework(model) if protocol.recipes == "paper" else None


def resolve(protocol: Protocol, model: str, framework: Framework) -> tuple[Protocol, dict[str, Any]]:
    """The protocol a framework-trained `model` runs under (the framework's schedule, `--set` fields kept) and
    its `protocol_exception`."""
    epochs, steps = framework.schedule(protocol.name)
    recipe = {"epochs": epochs, "steps_per_epoch": steps}
    deviating = {k: getattr(protocol, k) for k in SCHEDULE_FIELDS
                 if k in protocol.user_set and getattr(protocol, k) != recipe[k]}
    decided = RECIPE_FIELDS + SCHEDULE_FIELDS
    user_set = tuple(k for k in protocol.user_set if k not in decided or k in deviating)
    effective = dataclasses.replace(protocol, **(recipe | deviating), trainer=framework.name, user_set=user_set)
    deviations = [f"{k}={v} set with --set ({framework.title}'s under {protocol.name}: {recipe[k]})"
                  for k, v in sorted(deviating.items())]
    text = (f"{framework.title} trains it with its own trainer ({framework.trainer}): {framework.owns}. "
            f"Schedule: {effective.epochs} epochs x {effective.steps_per_epoch} steps "
            f"({framework.title}'s under {protocol.name}: {epochs} x {steps}); of our protocol only "
            f"{', '.join(APPLICABLE_FIELDS)} apply")
    exception = {
        "recipe": "paper",
        "row": None,
        "script": framework.trainer,
        "changes": {"trainer": framework.name, **recipe},
        "deviations": deviations,
        "text": text + (". deviations: " + "; ".join(deviations) if deviations else "") + ".",
    }
    return effective, exception


def inapplicable_fields(requested: Protocol, model: str) -> list[str]:
    """`--set` fields that cannot apply to `model`: ours on a framework-trained job, the framework's on ours."""
    framework = framework_of(model, requested)
    if framework is not None:
        return [f"--set {k} does not apply: {framework.title} trains {model} with its own recipe (only "
                f"{', '.join(APPLICABLE_FIELDS)} apply; --protocol uniform trains it with ours)"
                for k in requested.user_set if k not in APPLICABLE_FIELDS]
    if "steps_per_epoch" in requested.user_set:
        return ["--set steps_per_epoch does not apply: our trainer's epoch is its passes over the training slices "
                f"(it applies to the models a framework trains: the {', '.join(sorted(FAMILY_FRAMEWORKS))} family)"]
    return []


def missing_framework(model: str) -> str | None:
    """Why `model`'s framework cannot run here (its package is not installed, with the extra to install), or None.

    Checked under every preset: the registered network of a framework's family is built by the framework too."""
    framework = family_framework(model)
    if framework is None:
        return None
    module, function = framework.requirement.split(":")
    try:
        getattr(importlib.import_module(module), function)()
    except ImportError as err:
        return str(err)
    return None

