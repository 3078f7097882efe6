"""The nnU-Net child process: `python -m benchmark.training.nnunet.child {prepare,train} SPEC.json`.

The parent (benchmark.training.nnunet.job) sets nnU-Net's folder variables, worker counts and compile
switch in this process's environment only, and reads back `result_file` (JSON), or `error_file` (one line)
when it fails. nnU-Net's own multiprocessing pools spawn fresh interpreters that import this module again,
hence the `__main__` guard. Exit codes: 0 done, 1 failed, 3 the session stopped after `stop_after_epoch`.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from ...io import atomic_write_json, atomic_write_text

EXIT_FAILED = 1
EXIT_SESSION_END = 3


def _preprocessed(spec: dict[str, Any]) -> Path:
    return Path(os.environ["nnUNet_preprocessed"]) / spec["dataset"]


def _mark_done(spec: dict[str, Any], step: str) -> None:
    (_preprocessed(spec) / f"{step}.complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """nnU-Net's fingerprint, plan and 2D preprocessing of the workspace's dataset: each step unless done."""
    import torch
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess_dataset

    name, processes, plans_id = spec["dataset"], int(spec["processes"]), spec["plans_identifier"]
    done = {p.stem for p in _preprocessed(spec).glob("*.complete")}
    if "fingerprint" not in done:
        DatasetFingerprintExtractor(name, processes, verbose=False).run(overwrite_existing=True)
        _mark_done(spec, "fingerprint")
    if plans_id not in done:
        planner = getattr(importlib.import_module(spec["planner_module"]), spec["planner_class"])
        with torch.device("meta"):  # the planner only counts feature maps of the networks it builds
            planner(name).plan_experiment()
        _mark_done(spec, plans_id)
    plans = json.loads((_preprocessed(spec) / f"{plans_id}.json").read_text())
    data_id = plans["configurations"][spec["configuration"]]["data_identifier"]
    if data_id not in done:
        preprocess_dataset(spec["dataset_id"], plans_id, (spec["configuration"],), [processes], verbose=False,
                           show_progress_bar=False)
        _mark_done(spec, data_id)
    return {"plans_identifier": plans_id, "data_identifier": data_id}


def train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train fold `spec['fold']` with nnU-Net's trainer (resuming from its checkpoint), then nnU-Net's validation."""
    import torch

    from ..checkpoint import seed_everything
    from .trainer import CHECKPOINT_FINAL, CHECKPOINT_LATEST, BenchTrainer

    seed_everything(int(spec["seed"]))  # network init; augmentation too when it runs in-process
    torch.set_num_threads(int(spec["threads"]))
    device = torch.device(spec["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    plans = json.loads((_preprocessed(spec) / f"{spec['plans_identifier']}.json").read_text())
    dataset_json = json.loads((_preprocessed(spec) / "dataset.json").read_text())
    trainer = BenchTrainer(plans | {"continue_training": bool(spec["resume"])}, spec["configuration"],
                           int(spec["fold"]), dataset_json, device)
    trainer.configure(spec)
    output = Path(trainer.output_folder)
    resumed_from = None
    if (output / CHECKPOINT_FINAL).is_file():  # trained in an earlier session: validation only
        trainer.load_checkpoint(str(output / CHECKPOINT_FINAL))
    else:
        if (output / CHECKPOINT_LATEST).is_file():
            trainer.load_checkpoint(str(output / CHECKPOINT_LATEST))
            resumed_from = trainer.current_epoch
        trainer.run_training()
    start = time.perf_counter()
    trainer.perform_actual_validation(save_probabilities=True)
    validation_s = time.perf_counter() - start
    summary = json.loads((output / "validation" / "summary.json").read_text())
    return {
        "output_folder": str(output),
        "trainer": type(trainer).__name__,
        "nnunet_defaults": trainer.defaults,
        "resumed_from_epoch": resumed_from,
        "history": trainer.history(),
        "epochs_done": trainer.current_epoch,
        "batch_size": trainer.batch_size,
        "network_params": sum(p.numel() for p in trainer.network.parameters()),
        "network_class": type(trainer.network).__name__,
        "input_channels": trainer.num_input_channels,
        "deep_supervision_weights": [float(w) for w in getattr(trainer.loss, "weight_factors", ())],
        "inference": {"tile_step_size": 0.5, "gaussian": True,
                      "mirroring_axes": [int(a) for a in trainer.inference_allowed_mirroring_axes or ()]},
        "validation_dice": summary["foreground_mean"]["Dice"],
        "validation_s": validation_s,
        "step_s": trainer.step_s / trainer.steps_timed if trainer.steps_timed else None,
        "steps_timed": trainer.steps_timed,
    }


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"prepare": prepare, "train": train}


def main(argv: list[str]) -> int:
    """Run one step; write its result or its error (one line) where the spec says."""
    step, spec_path = argv[1], argv[2]
    spec = json.loads(Path(spec_path).read_text())
    try:
        result = STEPS[step](spec)
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which records the job as failed
        trainer_module = sys.modules.get(f"{__package__}.trainer")  # imported by the step that raised it
        if trainer_module is not None and isinstance(err, trainer_module.SessionEnd):
            return EXIT_SESSION_END
        traceback.print_exc()
        atomic_write_text(spec["error_file"], f"{type(err).__name__}: {err}".splitlines()[0] + "\n")
        return EXIT_FAILED
    atomic_write_json(spec["result_file"], result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
