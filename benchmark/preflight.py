"""Checks `train` runs before its first job: a problem found here stops the run before anything trains.

`evaluate` runs the input checks (`evaluate_problems`: dataset, folds, model and its eval output contract,
weights or maps, results folder) the same way before it scores anything.

Each check takes the `TrainRequest` and returns one line per problem (empty when all is well), so a
new check is one function appended to `CHECKS`. `run_checks` runs them in order; a check that
needs what an earlier one rejected (e.g. a known preset) returns nothing and leaves it to that one.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from torch import nn


@dataclass(frozen=True)
class TrainRequest:
    """What `train` was asked to do, as far as the checks need it."""

    preset: str
    assignments: tuple[str, ...]
    models: tuple[str, ...]
    seed: int | None = None
    download: bool = True  # fetch missing ImageNet weights (False: only look in the caches)
    datasets: tuple[str, ...] = ()  # as given on the command line (aliases allowed); () skips the data checks
    data_root: str | None = None
    split: str = "paper"
    results: str | None = None  # None skips the results-folder check


Check = Callable[[TrainRequest], list[str]]


def _protocol(request: TrainRequest) -> Any | None:
    """The requested protocol, or None when the preset or an assignment is invalid (reported elsewhere)."""
    from .protocol import get_protocol

    try:
        return get_protocol(request.preset, request.assignments, seed=request.seed)
    except (KeyError, ValueError, TypeError):
        return None


def check_preset(request: TrainRequest) -> list[str]:
    """An unknown preset, with the accepted ones."""
    from .protocol import PRESETS

    if request.preset in PRESETS:
        return []
    return [f"--protocol {request.preset!r} is not a preset; accepted: {', '.join(PRESETS)}"]


def check_assignments(request: TrainRequest) -> list[str]:
    """Malformed `--set` items, unknown fields (listing the accepted ones) and values a field cannot take."""
    from .protocol import PRESETS, get_protocol

    if request.preset not in PRESETS:
        return []
    try:
        get_protocol(request.preset, request.assignments, seed=request.seed)
    except (KeyError, ValueError, TypeError) as err:
        return [f"--set: {err.args[0] if isinstance(err, KeyError) else err}"]
    return []


def check_model_fields(request: TrainRequest) -> list[str]:
    """`--set` fields that cannot apply to a model: pretrained without a `pretrained` builder argument,
    aux_weights of the wrong length, bn_init without a BatchNorm layer, ours on a job a framework trains
    (nnU-Net) and the framework's on ours."""
    from .frameworks import inapplicable_fields

    protocol = _protocol(request)
    if protocol is None:
        return []
    problems = []
    for model, effective, error in _effective_protocols(request.models, protocol):
        if error is not None:  # the message names the model
            problems.append(error)
            continue
        misplaced = inapplicable_fields(protocol, model)
        problems += [f"{model}: {p}" for p in misplaced or _field_problems(model, protocol, effective)]
    if any("--set pretrained=true does not apply" in p for p in problems):
        problems.append(f"--set pretrained applies to the models with an ImageNet backbone: "
                        f"{', '.join(_pretrained_models())}")
    return problems


def _effective_protocols(models: Sequence[str], protocol: Any) -> Iterator[tuple[str, Any, str | None]]:
    """(model, the protocol it trains with, None), or (model, None, why not) where it cannot apply."""
    from .recipes import resolve

    for model in models:
        try:
            effective, _ = resolve(protocol, model)
        except ValueError as err:
            yield model, None, str(err)
            continue
        yield model, effective, None


def _field_problems(model: str, requested: Any, effective: Any) -> list[str]:
    """Why `--set` fields of `requested` do not fit `model` (given its `effective` protocol)."""
    from models import get_model_info

    info = get_model_info(model)
    problems = []
    if "pretrained" in requested.user_set and effective.pretrained and not _takes_pretrained(info):
        problems.append("--set pretrained=true does not apply: its builder takes no `pretrained` (it has no "
                        "ImageNet backbone)")
    if "bn_init" in requested.user_set and effective.bn_init != "default" and not _has_batchnorm(model):
        problems.append(f"--set bn_init={effective.bn_init} does not apply: the model has no BatchNorm layer")
    return problems


def _takes_pretrained(info: Any) -> bool:
    """Whether a model's builder accepts `pretrained`."""
    params = inspect.signature(info.builder).parameters
    return "pretrained" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _pretrained_models() -> list[str]:
    from models import get_model_info, list_models

    return [n for n in list_models() if get_model_info(n).pretrained_backbone]


def _has_batchnorm(model: str) -> bool:
    """Whether `model` holds a BatchNorm/InstanceNorm layer (built on the meta device)."""
    import torch

    from models import create_model

    with torch.device("meta"):
        built = create_model(model)
    return any(isinstance(m, nn.modules.batchnorm._NormBase) for m in built.modules())


def check_output_contract(request: TrainRequest) -> list[str]:
    """Each model's outputs on a small input, in eval and train mode, against the output contract and the
    aux_weights it will train with (benchmark.contract: one small batch on the CPU or the meta device, once per
    model and process)."""
    from .contract import contract_problems
    from .frameworks import missing_framework

    protocol = _protocol(request)
    if protocol is None:
        return []
    return [problem for model, effective, error in _effective_protocols(request.models, protocol)
            if error is None and missing_framework(model) is None  # check_frameworks names a missing one
            for problem in contract_problems(model, effective.aux_weights)]


def check_pretrained_weights(request: TrainRequest) -> list[str]:
    """Models that start from ImageNet: their weights must be in the caches, or be downloaded now."""
    from models import get_model_info

    protocol = _protocol(request)
    if protocol is None:
        return []
    problems = []
    for model, effective, error in _effective_protocols(request.models, protocol):
        if error is not None:
            continue  # reported by check_model_fields
        user_error = "pretrained" in protocol.user_set and not _takes_pretrained(get_model_info(model))
        if effective.pretrained and not user_error:  # a --set pretrained that cannot apply is reported above
            problems += weights_problems(model, request.download)
    return problems


def weights_problems(model: str, download: bool) -> list[str]:
    """One line per ImageNet weights file `model` needs and cannot have (fetching it when `download`)."""
    from models._pretrained import MissingWeightsError, fetch, fetch_hint, local_path, required_weights

    opt_out = "or opt out with --set pretrained=false (recorded as a deviation)"
    try:
        refs = required_weights(model)
    except Exception as err:  # noqa: BLE001 - any builder failure here is a problem line, not a crash
        return [f"{model}: cannot load ImageNet weights ({type(err).__name__}: {err}); {opt_out}"]
    problems = []
    for ref in refs:
        if local_path(ref) is not None:
            continue
        if not download:
            problems.append(f"{model}: ImageNet weights {ref} are not cached (dry run: not downloaded); "
                            f"{fetch_hint(ref, model)}, {opt_out}")
            continue
        try:
            fetch(ref, model)
        except MissingWeightsError as err:
            problems.append(f"{model}: {err}, {opt_out}")
    return problems


def check_frameworks(request: TrainRequest) -> list[str]:
    """Models that need an optional framework that is not installed (nnU-Net's nnunetv2), naming the extra."""
    from .frameworks import missing_framework

    return [f"{model}: {problem}" for model in request.models if (problem := missing_framework(model))]


def check_datasets(request: TrainRequest) -> list[str]:
    """Every requested dataset is known, laid out under the data root, and holds each slice of its folds."""
    if request.data_root is None:
        return []
    return [p for name in request.datasets for p in dataset_problems(name, request.data_root, request.split)]


def dataset_problems(name: str, data_root: str | Path, split: str = "paper", masks_only: bool = False) -> list[str]:
    """Why `name` cannot be read from `data_root` under `split`: unknown, not laid out, folds or files missing."""
    from .datasets import get_folds, get_spec
    from .datasets.loading import dataset_dir

    try:
        spec = get_spec(name, data_root)
    except KeyError as err:
        return [f"--datasets: {err.args[0] if err.args else name}"]
    folder = dataset_dir(spec.name, data_root)
    if not folder.is_dir():
        return [f"{spec.name}: {folder} not found; lay it out with `run_benchmark.py prepare --dataset {spec.name} "
                f"--source PATH`, or point --data-root (or $MINISEG_DATA) at the folder holding {spec.folder}/"]
    try:
        folds = get_folds(spec.name, data_root, split=split)
    except (OSError, ValueError) as err:
        return [f"{spec.name}: cannot read its {split} folds: {err}"]
    missing = [path for fold in folds for slice_id in fold
               for path in _slice_files(spec, folder, slice_id, masks_only) if not path.is_file()]
    if not missing:
        return []
    fix = (f"remove {folder} to have it generated again" if spec.name == "synthetic"
           else f"re-run `run_benchmark.py prepare --dataset {spec.name} --source PATH --force`")
    return [f"{spec.name}: {len(missing)} file(s) of its {split} folds missing under {folder}, first {missing[0]}; "
            f"{fix}"]


def _slice_files(spec: Any, folder: Path, slice_id: str, masks_only: bool) -> tuple[Path, ...]:
    """The files one slice needs: its mask, and its image unless `masks_only`."""
    from .datasets.layout import image_path, mask_path

    mask = mask_path(spec, folder, slice_id)
    return (mask,) if masks_only else (image_path(folder, slice_id), mask)


def check_results(request: TrainRequest) -> list[str]:
    """The results folder can be created and written."""
    return [] if request.results is None else results_problems(request.results)


def results_problems(results: str | Path) -> list[str]:
    """Why `results` cannot take new files: it is a file, or it (or its nearest existing parent) is read-only."""
    path = Path(results)
    if path.exists() and not path.is_dir():
        return [f"--results {path}: exists and is not a folder; pass a folder (it is created when missing)"]
    existing = next((p for p in (path, *path.absolute().parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return [f"--results {path}: {existing or path} is not writable; pass a folder you can write to"]
    return []


#: The checks `train` runs, in order. Append a function here to add one.
CHECKS: tuple[Check, ...] = (check_preset, check_assignments, check_frameworks, check_model_fields,
                             check_output_contract, check_pretrained_weights, check_datasets, check_results)


def run_checks(request: TrainRequest, checks: Sequence[Check] = CHECKS) -> list[str]:
    """Every problem every check finds, in order."""
    return [problem for check in checks for problem in check(request)]


def evaluate_problems(dataset: str, data_root: str | Path, split: str, results: str | Path, model: str | None,
                      weights: str | None, maps: str | None) -> list[str]:
    """`evaluate`'s pre-run checks: dataset and folds on disk, the model known, every fold's weights or the maps
    folder present, the results folder writable; one line per problem."""
    problems = dataset_problems(dataset, data_root, split, masks_only=maps is not None)
    if model is not None:
        problems += _model_problems(model)
    if weights is not None:
        missing = _weights_file_problems(weights)
        hint = _framework_weights_hint(model, dataset, results, split) if missing else ""
        problems += [f"{line}; {hint}" for line in missing] if hint else missing
    if maps is not None and not Path(maps).is_dir():
        problems.append(f"{maps}: maps folder not found; expected DIR/CrossVal1..5/<slice id>.png (--maps)")
    return problems + results_problems(results)


def _model_problems(model: str) -> list[str]:
    """An unknown model name, with the registry's suggestion; eval logits off the output contract."""
    from models import get_model_info

    from .contract import contract_problems

    from .frameworks import missing_framework

    try:
        get_model_info(model)
    except KeyError as err:
        return [f"--model: {err.args[0] if err.args else model}"]
    missing = missing_framework(model)  # the network cannot be built: say why, not that its outputs are off
    return [f"--model {model}: {missing}"] if missing else contract_problems(model, train=False)


def _framework_weights_hint(model: str | None, dataset: str, results: str | Path, split: str) -> str:
    """For a model an external framework trains (nnU-Net): where its predictions are, since its jobs keep the
    framework's own checkpoints and no last.pt; '' for any other model."""
    from .frameworks import family_framework
    from .records import run_dir
    from .training.nnunet.job import MAPS_DIR

    try:
        framework = family_framework(model) if model else None
    except KeyError:  # an unknown model: _model_problems says so
        return ""
    if framework is None:
        return ""
    maps = run_dir(results, dataset, model, 0, split).parent / MAPS_DIR
    return (f"{framework.title} trains and predicts {model} under paper/fast/smoke and keeps its own checkpoints, "
            f"not last.pt: score what it predicted with --maps {maps} (train writes them there); a --protocol "
            "uniform job of it has last.pt")


def _weights_file_problems(pattern: str) -> list[str]:
    """A --weights pattern without {fold} or {fold0}, or folds whose weights file is missing."""
    from .datasets.folds import N_FOLDS
    from .evaluation.evaluate import fold_weight_paths

    try:
        fold_weight_paths(pattern, N_FOLDS)
    except (OSError, ValueError) as err:
        return [str(err)]
    return []


def report_problems(problems: Sequence[str], outcome: str) -> None:
    """Print each problem as `error: ...` and a closing line saying what did not happen (`outcome`)."""
    import sys

    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found before starting; {outcome}", file=sys.stderr)
