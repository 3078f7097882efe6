"""Which recipe each model trains with: the paper rows' training facts as data, resolved per preset.

Facts (../shared/paper/PROTOCOL.md, "Training recipe" and "The baselines as the authors trained
them"): MiniSeg (and its ablations) come from the release's root `train.py`, with four passes per
epoch at 1.5/1.25/0.75/1.0 scale. Every other paper row comes from one script of the release's
`full_code/`, all three with one 512 px pass per epoch (crop margin 0..16 px, vertical flip):
- `trainPretrain.py`: ImageNet normalisation; ImageNet-initialised backbones (Table 4's "yes"
  rows; EfficientNet is built with `pretrained_base=False`); class-weighted cross-entropy on the
  main output, plus 0.4 x the auxiliary output for DFN and ANNNet.
- `train_bl.py`: the fold's statistics, from scratch, class-weighted cross-entropy on the main output.
- `trainInfNet.py`: ImageNet normalisation and backbone; sigmoid binary cross-entropy on the
  four outputs, 1.0 / 0.4 / 0.4 / 0.4, without class weights.
All three default to lr 1e-3; trainPretrain.py and the root script to batch 5 (train_bl.py and
trainInfNet.py to 2); the values the authors chose per model are not published, so every
recipe keeps the base recipe's lr 1e-3 and batch 5.

`resolve(protocol, model)` gives the protocol a model trains with and the record's
`protocol_exception`; a model an external framework trains (nnU-Net) gets the framework's
(benchmark.frameworks). Models without a paper row (library models, plugins, variants) get the
`uniform` recipe under every preset: the preset's own passes and schedule, class-weighted
cross-entropy with the model's declared auxiliary weights, and ImageNet weights with ImageNet
normalisation where `ModelInfo.pretrained_backbone` says so (fold statistics otherwise).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from .frameworks import family_framework
from .protocol import PRESETS, RECIPE_FIELDS, Protocol, jsonable

#: One pass per epoch at the base size, crop margin 0..16 px at 512 (the scripts' `int(32 / 1024 * 512)`).
SINGLE_PASS: tuple[tuple[float, int], ...] = ((1.0, 16),)


@dataclass(frozen=True)
class Script:
    """One training script of the release: what it fixes for every model it trains."""

    path: str
    passes: tuple[tuple[float, int], ...] | None  # None: the preset's passes (the root script's four)
    normalization: str
    batch_default: int  # its argparse default (not used: see the module docstring)


SCRIPTS: Mapping[str, Script] = MappingProxyType({
    "root": Script("train.py", None, "fold", 5),
    "pretrain": Script("full_code/trainPretrain.py", SINGLE_PASS, "imagenet", 5),
    "baseline": Script("full_code/train_bl.py", SINGLE_PASS, "fold", 2),
    "infnet": Script("full_code/trainInfNet.py", SINGLE_PASS, "imagenet", 2),
})


@dataclass(frozen=True)
class Row:
    """How the authors trained one paper row."""

    script: str  # key of SCRIPTS
    pretrained: bool  # backbone initialised from ImageNet (Table 4's column; EfficientNet: built without)
    heads: str | tuple[float, ...] = "main"  # "declared": the model's aux_weights; "main": main output only
    loss: str = "ce-weighted"
    #: Why the authors' ImageNet weights cannot be had here (then trained from scratch, recorded).
    no_weights: str = ""


def _rows(script: str, pretrained: bool, names: str, **kwargs: Any) -> dict[str, Row]:
    return {name.strip(): Row(script, pretrained, **kwargs) for name in names.split("|")}


#: Paper row name (Tables 4 and 5, ModelInfo.paper_name) -> how the authors trained it.
ROWS: Mapping[str, Row] = MappingProxyType({
    "MiniSeg": Row("root", False, "declared"),
    **_rows("baseline", False, "U-Net|UNet++|Attention U-Net|ESPNet|ESPNetv2|EDANet|ENet|CGNet|SegNet|FRRN|"
                               "DenseASPP|LEDNet"),
    **_rows("pretrain", True, "FCN-8s|PSPNet|DeepLabv3|DeepLabv3+|OCNet|DUpsampling|DANet|EncNet|BiSeNet|"
                              "MobileNet|MobileNetv2|ShuffleNetv2|CCNet|GFF"),
    "ShuffleNet": Row("pretrain", True, no_weights="no ImageNet weights of ShuffleNet (v1) exist in torchvision "
                      "or timm (the authors loaded their own ShuffleNetV1_pretrain.pth, not released)"),
    "EfficientNet": Row("pretrain", False),
    **_rows("pretrain", True, "DFN|ANNNet", heads=(1.0, 0.4)),
    "Inf-Net": Row("infnet", True, heads=(1.0, 0.4, 0.4, 0.4), loss="bce"),
})

#: Model families that train with a paper row's recipe without being that row (ModelInfo.family -> row).
FAMILY_ROWS: Mapping[str, str] = MappingProxyType({"miniseg-ablation": "MiniSeg"})


def row_of(info: Any) -> str | None:
    """The paper row whose recipe a model (its ModelInfo) follows under `paper`, or None."""
    if info.paper_name in ROWS:
        return info.paper_name
    return FAMILY_ROWS.get(info.family)


def initialisation(row: Row | None, info: Any) -> tuple[bool, str]:
    """(ImageNet-pretrained backbone?, why not where the paper's row was) under every preset."""
    if row is None:
        return bool(info.pretrained_backbone), ""
    if row.pretrained and row.no_weights:
        return False, row.no_weights
    return row.pretrained, ""


def head_weights(heads: str | tuple[float, ...], declared: tuple[float, ...], model: str) -> tuple[float, ...]:
    """The loss weight per train-mode output: the declared ones, the main output only, or the row's own."""
    if heads == "declared":
        return tuple(declared)
    if heads == "main":
        return (1.0,) + (0.0,) * (len(declared) - 1)
    if len(heads) != len(declared):
        raise ValueError(f"{model}: the authors weighted {len(heads)} outputs {tuple(heads)}, but the model "
                         f"returns {len(declared)} in train mode (aux_weights {tuple(declared)})")
    return tuple(float(w) for w in heads)


def recipe_fields(protocol: Protocol, model: str) -> tuple[str, dict[str, Any], str | None, str]:
    """(recipe mode, the recipe's value of each RECIPE_FIELDS field, paper row, no-weights reason) of `model`."""
    from models import get_model_info

    info = get_model_info(model)
    row_name = row_of(info)
    row = ROWS.get(row_name) if row_name else None
    mode = protocol.recipes if row is not None else "uniform"
    pretrained, no_weights = initialisation(row, info)
    base_passes = PRESETS[protocol.name].passes if protocol.name in PRESETS else protocol.passes
    if mode == "paper":
        script = SCRIPTS[row.script]
        return mode, {
            "passes": script.passes or base_passes,
            "normalization": script.normalization,
            "pretrained": pretrained,
            "loss": row.loss,
            "aux_weights": head_weights(row.heads, info.aux_weights, model),
        }, row_name, no_weights
    return mode, {
        "passes": base_passes,
        "normalization": "imagenet" if pretrained else "fold",
        "pretrained": pretrained,
        "loss": "ce-weighted",
        "aux_weights": tuple(info.aux_weights),
    }, row_name, no_weights


def resolve(protocol: Protocol, model: str) -> tuple[Protocol, dict[str, Any] | None]:
    """The protocol `model` trains with (its recipe, then the `--set` fields) and its `protocol_exception`."""
    from models import get_model_info

    from . import frameworks

    framework = frameworks.framework_of(model, protocol)
    if framework is not None:
        return frameworks.resolve(protocol, model, framework)
    mode, recipe, row_name, no_weights = recipe_fields(protocol, model)
    user = {k: getattr(protocol, k) for k in protocol.user_set if k in RECIPE_FIELDS}
    if user.get("aux_weights") == ():
        user["aux_weights"] = tuple(get_model_info(model).aux_weights)
    deviating = {k: v for k, v in user.items() if v != recipe[k]}
    if "aux_weights" in deviating and len(deviating["aux_weights"]) != len(recipe["aux_weights"]):
        raise ValueError(f"{model}: aux_weights={deviating['aux_weights']} needs {len(recipe['aux_weights'])} "
                         f"weights, one per output the model returns in train mode")
    user_set = tuple(k for k in protocol.user_set if k not in RECIPE_FIELDS or k in deviating)
    effective = dataclasses.replace(protocol, **(recipe | deviating), user_set=user_set)
    return effective, exception(protocol, model, mode, recipe, deviating, row_name, no_weights)


def _base_values(protocol: Protocol, model: str) -> dict[str, Any]:
    """The base recipe (MiniSeg's) for `model`: what a field must differ from to be a change."""
    from models import get_model_info

    passes = PRESETS[protocol.name].passes if protocol.name in PRESETS else protocol.passes
    return {"passes": passes, "normalization": "fold", "pretrained": False, "loss": "ce-weighted",
            "aux_weights": tuple(get_model_info(model).aux_weights)}


def exception(
    protocol: Protocol,
    model: str,
    mode: str,
    recipe: dict[str, Any],
    deviating: dict[str, Any],
    row_name: str | None,
    no_weights: str,
) -> dict[str, Any] | None:
    """The record's `protocol_exception`: None when `model` trains with its preset's base recipe as it is."""
    base = _base_values(protocol, model)
    changes = {k: v for k, v in recipe.items() if v != base[k]}
    if not changes and not deviating and not no_weights and mode == protocol.recipes:
        return None
    script = SCRIPTS[ROWS[row_name].script].path if mode == "paper" and row_name else None
    deviations = ([f"{no_weights}: trained from scratch"] if no_weights else []) + [
        f"{k}={_text(v)} set with --set (the recipe's: {_text(recipe[k])})" for k, v in sorted(deviating.items())
    ]
    return {
        "recipe": mode,
        "row": row_name,
        "script": script,
        "changes": {k: jsonable(v) for k, v in changes.items()},
        "deviations": deviations,
        "text": describe(model, mode, recipe | deviating, row_name, script, deviations),
    }


def describe(
    model: str, mode: str, recipe: dict[str, Any], row_name: str | None, script: str | None, deviations: list[str]
) -> str:
    """One paragraph saying which recipe `model` trains with, where it comes from, and what deviates."""
    if mode == "paper" and script == SCRIPTS["root"].path:
        head = f"{row_name}'s recipe ({script}, the release's root script)"
    elif mode == "paper":
        head = (f"{row_name} as the authors trained it ({script}); lr 1e-3 and batch 5 are the base recipe's, "
                "the per-model values the authors chose are not published")
    elif row_name:
        head = f"the uniform recipe (MiniSeg's, for every model) with the initialisation of the paper's {row_name} row"
    elif family_framework(model) is not None:
        head = (f"{model}: the uniform recipe (MiniSeg's) with our trainer; under the paper-based presets its "
                "framework trains it")
    else:
        head = f"{model} has no row in the paper: the uniform recipe (MiniSeg's) under every preset"
    parts = [head, recipe_summary(recipe)]
    if deviations:
        parts.append("deviations: " + "; ".join(deviations))
    return ". ".join(parts) + "."


def recipe_summary(recipe: dict[str, Any]) -> str:
    """'one pass (scale 1.0, crop margin 0..16 px), ImageNet normalisation, ...' for a recipe's fields."""
    passes = ", ".join(f"{s:g}x/{m}px" for s, m in recipe["passes"])
    weights = "/".join(f"{w:g}" for w in recipe["aux_weights"])
    loss = {"ce-weighted": "class-weighted cross-entropy", "bce": "sigmoid binary cross-entropy (no class weights)"}
    return (f"passes (scale/max crop margin) {passes}; "
            f"{'ImageNet' if recipe['normalization'] == 'imagenet' else 'fold-statistics'} normalisation; "
            f"{'ImageNet-pretrained backbone' if recipe['pretrained'] else 'from scratch'}; "
            f"{loss.get(recipe['loss'], recipe['loss'])} with output weights {weights}")


def _text(value: Any) -> str:
    return str(jsonable(value))


def effective_recipe(protocol: Protocol, model: str) -> dict[str, Any]:
    """What `model` trains with under `protocol`, for `train --dry-run --json`: the recipe's fields, the
    schedule, where the recipe comes from, and the `protocol_exception` text (None when there is none)."""
    effective, exc = resolve(protocol, model)
    if effective.trainer != "ours":  # a framework's recipe: its trainer, the schedule and what applies of ours
        return {"preset": protocol.name, "recipe": protocol.recipes, "trainer": effective.trainer,
                "script": exc["script"], "base_size": effective.base_size, "epochs": effective.epochs,
                "steps_per_epoch": effective.steps_per_epoch, "seed": effective.seed,
                "set_by_user": effective.to_dict()["differs_from_preset"], "protocol_exception": exc["text"]}
    mode, _, row_name, _ = recipe_fields(protocol, model)
    script = SCRIPTS[ROWS[row_name].script].path if mode == "paper" and row_name else None
    return {
        "preset": protocol.name,
        "recipe": mode,
        "row": row_name,
        "script": script,
        "passes": jsonable(effective.passes),
        "base_size": effective.base_size,
        "lr": effective.lr,
        "batch_size": effective.batch_size,
        "epochs": effective.epochs,
        "normalization": effective.normalization,
        "pretrained": effective.pretrained,
        "loss": effective.loss,
        "aux_weights": list(effective.aux_weights),
        "bn_init": effective.bn_init,
        "set_by_user": effective.to_dict()["differs_from_preset"],
        "protocol_exception": exc["text"] if exc else None,
    }


def short_label(protocol: Protocol, model: str) -> str:
    """A few words for tables: 'paper: train_bl.py', 'uniform', 'paper: train.py', 'paper: nnUNetTrainer', with '*'
    for deviations."""
    effective, exc = resolve(protocol, model)
    mode, _, row_name, _ = recipe_fields(protocol, model)
    label = f"{mode}: {SCRIPTS[ROWS[row_name].script].path.rsplit('/', 1)[-1]}" if mode == "paper" else mode
    if effective.trainer != "ours":  # trained by a framework: its trainer's name
        label = f"{protocol.recipes}: {exc['script'].rsplit('/', 1)[-1]}"
    deviates = bool(effective.to_dict()["differs_from_preset"]) or bool(exc and exc["deviations"])
    return label + ("*" if deviates else "")
