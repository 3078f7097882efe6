"""Train and test one (nnU-Net model, dataset, fold) job with nnU-Net: the runner's backend for trainer "nnunet".

`run` has `run_training`'s signature and contract (benchmark.training.train): it writes the same
`record.json` (plus an `nnunet` section: plan, version, nnU-Net's own validation Dice, schedule) and
`per_slice.csv`; a failure is a `failed` record, Ctrl-C propagates and keeps the last checkpoint. The job's
folder also holds `nnunet/` (nnU-Net's results folder for the fold, the child's spec, result and log) and
`last.json` (written by the child after each checkpoint). The test fold's maps go to
`<results>/runs/<key>/<model>/maps/CrossVal<k+1>/<slice id>.png` on the ground truth's grid (where `evaluate`
scores), so that `evaluate --maps` scores the five folds like any released maps.

Resuming: a checkpoint is reused only when `last.json` says it was written under the same protocol and
from the same slices (the workspace's digest); otherwise the fold's nnU-Net folder is cleared first.
CPU use: the child gets the job's torch threads (`--threads`, or the executor's `--cpus-per-job`),
nnU-Net's augmentation workers are one fewer (none, i.e. in-process, on one CPU) and its preprocessing /
export pools as many; torch.compile only with `--compile` on CUDA (never on a CPU).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from models.nnunet import CONFIGURATION

from ...env import PROJECT_ROOT, environment, resolve_device, visible_gpus
from ...errors import Unavailable, UserError
from ...io import atomic_write, atomic_write_json, read_json
from ...frameworks import FRAMEWORKS
from ...protocol import Protocol
from ...recipes import resolve
from ...records import CHECKPOINT_INFO_NAME, PER_SLICE_NAME, RECORD_NAME, results_key, same_protocol
from ..run_record import job_record, utc_now
from ..train import GRID_STOPS, TrainOptions, describe_error
from .workspace import DATASET_ID, SOURCE_NAME, Workspace, slices_digest, step_done, write_raw, \
    write_splits

NNUNET_DIR = "nnunet"
MAPS_DIR = "maps"
POLL_S = 1.0
FRAMEWORK = FRAMEWORKS["nnunet"]


class SessionEnded(Exception):
    """The child stopped after the epoch `stop_after_epoch` asked for, as an interruption would (no record)."""


class ChildFailed(RuntimeError):
    """A step of nnU-Net in the child process failed; the message is its error and where its log is."""


def nnunet_version() -> str:
    """The installed nnunetv2's version; Unavailable (one line, naming the extra) when it is missing."""
    from models.nnunet import NnUNetUnavailable, require_nnunet

    try:
        return require_nnunet()
    except NnUNetUnavailable as err:
        raise Unavailable(str(err)) from None


def results_root(run_dir: Path) -> Path:
    """The results folder of a job folder `<results>/runs/<key>/<model>/fold<k>` (benchmark.records.run_dir)."""
    return run_dir.parents[3]


def child_env(workspace: Workspace, nnunet_results: Path, cpus: int, augmentation_workers: int,
              device: torch.device, compile_model: bool) -> dict[str, str]:
    """The child's environment: nnU-Net's folders and worker counts, one BLAS thread per process, our code."""
    env = dict(os.environ)
    env.update({
        "nnUNet_raw": str(workspace.raw.resolve()),
        "nnUNet_preprocessed": str(workspace.preprocessed.resolve()),
        "nnUNet_results": str(nnunet_results.resolve()),
        "nnUNet_n_proc_DA": str(augmentation_workers),
        "nnUNet_def_n_proc": str(cpus),
        "nnUNet_compile": "true" if compile_model and device.type == "cuda" else "false",
        "OMP_NUM_THREADS": "1",  # nnU-Net's worker processes; the child sets torch's own thread count
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p),
    })
    if device.type == "cuda" and device.index is not None:  # the child sees the one GPU as cuda:0
        visible = visible_gpus()
        env["CUDA_VISIBLE_DEVICES"] = visible[device.index] if device.index < len(visible) else str(device.index)
    return env


def run_child(step: str, spec: dict[str, Any], folder: Path, env: dict[str, str],
              on_poll: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run one child step (its own process group, output in `<folder>/<step>.log`) and return its result.

    Ctrl-C (or any exception here) ends the child's whole process group, nnU-Net's workers included."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"result_file": folder / f"{step}.result.json", "error_file": folder / f"{step}.error.txt"}
    for path in files.values():
        path.unlink(missing_ok=True)
    spec_file = folder / f"{step}.spec.json"
    atomic_write_json(spec_file, spec | {k: str(v) for k, v in files.items()})
    log = folder / f"{step}.log"
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n=== {utc_now()} {step} ===\n")
        out.flush()
        process = subprocess.Popen([sys.executable, "-m", f"{__package__}.child", step, str(spec_file)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while process.poll() is None:
                time.sleep(POLL_S)
                if on_poll is not None:
                    on_poll()
        except BaseException:
            _end_group(process)
            raise
    if process.returncode == 3:
        raise SessionEnded(f"nnU-Net {step} stopped after epoch {spec.get('stop_after_epoch')} as asked")
    if process.returncode != 0:
        reason = files["error_file"].read_text().strip() if files["error_file"].is_file() else \
            f"exit code {process.returncode}"
        raise ChildFailed(f"nnU-Net {step} failed: {reason} (log: {log})")
    return read_json(files["result_file"])


def _end_group(process: subprocess.Popen) -> None:
    """Terminate a child and its workers (its process group), killing them after ten seconds."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def prepare_workspace(model: str, dataset: str, split: str, data_root: str | Path, results: Path, size_px: int,
                      folds: list[list[str]], cpus: int, version: str) -> tuple[Workspace, str]:
    """The dataset laid out for nnU-Net, fingerprinted, planned for `model` and preprocessed (each once), with our
    folds as its splits; returns the workspace and the digest of its slices."""
    from models.nnunet import PLANNERS, dataset_json

    from ...datasets import load_dataset

    workspace = Workspace.under(results, results_key(dataset, split), size_px)
    planner = PLANNERS[model]
    ids = sorted({slice_id for fold in folds for slice_id in fold})
    slices = load_dataset(dataset, data_root, ids=ids, size=size_px)  # read outside the lock: jobs do it at once
    digest = slices_digest(slices.ids, slices.images, slices.masks, version)
    with workspace.locked():
        if workspace.source().get("digest") != digest:
            write_raw(workspace, slices.ids, slices.images, slices.masks, dataset_json(len(ids)))
            atomic_write_json(workspace.root / SOURCE_NAME, {
                "digest": digest, "dataset": dataset, "split": split, "size_px": size_px, "n_slices": len(ids),
                "nnunetv2": version, "written_at": utc_now()})
        write_splits(workspace, folds)
        if not all(step_done(workspace, s) for s in ("fingerprint", planner.plans_identifier)) \
                or not _data_done(workspace, planner.plans_identifier):
            # nnU-Net's planner needs at least one augmentation worker in its variable; it trains nothing here
            env = child_env(workspace, workspace.root / "nnUNet_results", cpus, max(1, cpus), torch.device("cpu"),
                            compile_model=False)
            run_child("prepare", {"dataset": workspace.dataset, "dataset_id": DATASET_ID, "processes": cpus,
                                  "planner_module": planner.module, "planner_class": planner.cls,
                                  "plans_identifier": planner.plans_identifier, "configuration": CONFIGURATION},
                      workspace.root / "logs", env)
    return workspace, digest


def _data_done(workspace: Workspace, plans_identifier: str) -> bool:
    """Whether the preprocessed data of a plans file's 2D configuration exists (shared by plans that share it)."""
    try:
        plans = read_json(workspace.plans_file(plans_identifier))
        return step_done(workspace, plans["configurations"][CONFIGURATION]["data_identifier"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def discard_stale(job_dir: Path, protocol: dict[str, Any], digest: str) -> None:
    """Clear the fold's nnU-Net folder when its checkpoint was written under another protocol or other slices."""
    results = job_dir / NNUNET_DIR / "results"
    info_path = job_dir / CHECKPOINT_INFO_NAME
    try:
        info = read_json(info_path)
    except (OSError, ValueError):
        info = None
    fits = isinstance(info, dict) and same_protocol(info.get("protocol"), protocol) and info.get("workspace") == digest
    if results.exists() and not fits:
        print(f"{results}: checkpoints of another protocol or other slices; training from scratch", file=sys.stderr)
        shutil.rmtree(results)
    if not fits:
        info_path.unlink(missing_ok=True)


def probabilities_to_masks(validation: Path, ids: list[str], out_shape: tuple[int, int]) -> np.ndarray:
    """Foreground masks from nnU-Net's saved class probabilities, on the ground truth's grid.

    Log-probabilities are resized bilinearly as our own runs resize logits: they differ from the logits by one
    value per pixel, the same for every class, so the argmax is the one the logits would give."""
    from models.layers import upsample_to

    out = np.empty((len(ids), *out_shape), dtype=bool)
    for index, slice_id in enumerate(ids):
        path = validation / f"{slice_id}.npz"
        if not path.is_file():
            raise ChildFailed(f"{path}: nnU-Net did not predict test slice {slice_id}")
        with np.load(path) as saved:
            # saved as (classes, 1, H, W): nnU-Net's 2D reader gives a slice one z plane
            probabilities = torch.from_numpy(saved["probabilities"][:, 0].astype(np.float32))
        logits = upsample_to(torch.log(probabilities.clamp_min(1e-12))[None], out_shape)
        out[index] = (logits[0].argmax(dim=0) != 0).numpy()
    return out


def plan_summary(plans: dict[str, Any]) -> dict[str, Any]:
    """What the record keeps of nnU-Net's plan: network, patch and batch size, stages, features, normalisation."""
    config = plans["configurations"][CONFIGURATION]
    arch = config["architecture"]
    kwargs = arch["arch_kwargs"]
    return {
        "planner": plans.get("experiment_planner_used"),
        "plans_identifier": plans.get("plans_name"),
        "network": arch["network_class_name"].rsplit(".", 1)[-1],
        "patch_size": config["patch_size"],
        "batch_size": config["batch_size"],
        "n_stages": kwargs["n_stages"],
        "features_per_stage": kwargs["features_per_stage"],
        "strides": kwargs["strides"],
        "kernel_sizes": kwargs["kernel_sizes"],
        "blocks_per_stage_encoder": kwargs.get("n_blocks_per_stage", kwargs.get("n_conv_per_stage")),
        "convs_per_stage_decoder": kwargs.get("n_conv_per_stage_decoder"),
        "normalization_schemes": config["normalization_schemes"],
        "use_mask_for_norm": config["use_mask_for_norm"],
        "spacing": config["spacing"],
        "median_image_size": config["median_image_size_in_voxels"],
        "batch_dice": config.get("batch_dice"),
        "intensity_properties": plans.get("foreground_intensity_properties_per_channel"),
    }


def _train_fold(model: str, fold: int, effective: Protocol, options: TrainOptions, device: torch.device,
                workspace: Workspace, digest: str, job_dir: Path, cpus: int, label: str,
                on_epoch_end: Callable[[], None] | None, stop_after_epoch: int | None) -> dict[str, Any]:
    """Run nnU-Net's training and validation of the fold in the child, with a progress bar; its result."""
    from tqdm import tqdm

    from models.nnunet import PLANNERS

    discard_stale(job_dir, effective.to_dict(), digest)
    folder = job_dir / NNUNET_DIR
    progress_file = folder / "progress.json"
    progress_file.unlink(missing_ok=True)
    spec = {
        "dataset": workspace.dataset, "plans_identifier": PLANNERS[model].plans_identifier,
        "configuration": CONFIGURATION, "fold": fold, "epochs": effective.epochs,
        "steps_per_epoch": effective.steps_per_epoch,
        "val_steps_per_epoch": FRAMEWORK.val_steps(effective.steps_per_epoch),
        "checkpoint_every_s": options.checkpoint_every_s, "stop_after_epoch": stop_after_epoch,
        "device": device.type, "threads": cpus, "seed": effective.seed,
        "resume": (job_dir / CHECKPOINT_INFO_NAME).is_file(),
        "fold_cases": str(folder / "fold_cases.json"), "progress": str(progress_file),
        "checkpoint_info": str(job_dir / CHECKPOINT_INFO_NAME),
        "checkpoint_info_fields": {"protocol": effective.to_dict(), "workspace": digest},
    }
    env = child_env(workspace, folder / "results", cpus, cpus - 1, device, bool(options.compile))
    seen = {"epoch": -1}
    with tqdm(total=effective.epochs, desc=label, unit="epoch", leave=False, file=sys.stderr,
              disable=not options.progress or None, dynamic_ncols=True) as bar:
        def poll() -> None:
            try:
                epoch = int(read_json(progress_file)["epoch"])
            except (OSError, ValueError, KeyError, TypeError):
                return
            if epoch != seen["epoch"]:
                seen["epoch"] = epoch
                bar.n = epoch
                bar.refresh()
                if on_epoch_end is not None:
                    on_epoch_end()

        return run_child("train", spec, folder, env, on_poll=poll)


def _check_fold_cases(folder: Path, train: list[str], test: list[str]) -> dict[str, Any]:
    """nnU-Net trained on exactly our training slices and validated (predicted) exactly our test slices."""
    cases = read_json(folder / "fold_cases.json")
    for kind, ours, theirs in (("training", train, cases["train"]), ("test", test, cases["val"])):
        if sorted(ours) != sorted(theirs):
            missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
            raise ChildFailed(f"nnU-Net's {kind} cases differ from our fold's: missing {missing[:3]}, "
                              f"extra {extra[:3]}")
    return {"n_train": len(cases["train"]), "n_val": len(cases["val"]), "same_as_our_fold": True}


def run(
    model: str,
    dataset: str,
    fold: int,
    protocol: Protocol,
    options: TrainOptions,
    data_root: str | Path,
    run_dir: str | Path,
    on_epoch_end: Callable[[], None] | None = None,
    split: str = "paper",
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Train fold `fold` with nnU-Net (resuming), score its test slices with our metrics, write record.json.

    `stop_after_epoch` ends nnU-Net's session after that epoch's checkpoint (SessionEnded, no record), as an
    interruption would: what tests use to check resuming.
    """
    from models.nnunet import PLANNERS

    from ...datasets import get_folds, load_on_truth_grid, train_ids
    from ...evaluation.evaluate import save_fold_maps
    from ...evaluation.metrics import fold_summary, slice_metrics

    run_dir = Path(run_dir)
    effective, exception = resolve(protocol, model)
    started_at = utc_now()
    device = torch.device("cpu")
    final, error, csv_name, outcome, nnunet, data = None, None, None, {}, {}, {}
    cpus = max(1, torch.get_num_threads())
    try:
        device = resolve_device(options.device)
        version = nnunet_version()
        folds = get_folds(dataset, data_root, split=split)
        test_ids, train = list(folds[fold]), train_ids(folds, fold)
        workspace, digest = prepare_workspace(model, dataset, split, data_root, results_root(run_dir),
                                              effective.base_size, folds, cpus, version)
        outcome = _train_fold(model, fold, effective, options, device, workspace, digest, run_dir, cpus,
                              f"{dataset}/{model}/fold{fold}", on_epoch_end, stop_after_epoch)
        cases = _check_fold_cases(run_dir / NNUNET_DIR, train, test_ids)
        start = time.perf_counter()
        truth = load_on_truth_grid(dataset, data_root, test_ids, masks_only=True).masks
        validation = Path(outcome["output_folder"]) / "validation"
        pred = probabilities_to_masks(validation, test_ids, tuple(truth.shape[-2:]))
        per_slice = slice_metrics(pred, truth, test_ids)
        final = fold_summary(per_slice)
        atomic_write(run_dir / PER_SLICE_NAME, lambda tmp: per_slice.to_csv(tmp, index=False))
        csv_name = PER_SLICE_NAME
        save_fold_maps(run_dir.parent / MAPS_DIR, fold + 1, test_ids, pred)  # on the grid evaluate scores
        outcome["scoring_s"] = time.perf_counter() - start
        plans = read_json(workspace.plans_file(PLANNERS[model].plans_identifier))
        nnunet = _nnunet_section(version, plans, outcome, effective, cases, workspace, digest, cpus, options, device)
        data = {"n_train": len(train), "n_test": len(test_ids), "size_px": effective.base_size,
                "score_size_px": int(truth.shape[-1]), "normalization": "nnU-Net's plan: "
                + ", ".join(plans["configurations"][CONFIGURATION]["normalization_schemes"])}
    except (*GRID_STOPS, SessionEnded):
        raise
    except Exception as err:  # noqa: BLE001 - every failure is recorded and the grid goes on
        error = describe_error(err)
        if not isinstance(err, (UserError, ChildFailed)):
            traceback.print_exc(file=sys.stderr)
    record = job_record(model, dataset, fold, effective, exception, _options(options, device, cpus),
                        environment(device), error=error, started_at=started_at,
                        timings=_timings(outcome, effective.steps_per_epoch), history=outcome.get("history"),
                        iterations=int(outcome.get("epochs_done", 0)) * effective.steps_per_epoch, data=data,
                        final=final, per_slice_csv=csv_name, resumed_from=outcome.get("resumed_from_epoch"))
    record.update(nnunet=nnunet, split=split)
    atomic_write_json(run_dir / RECORD_NAME, record)
    return record


def _options(options: TrainOptions, device: torch.device, cpus: int) -> dict[str, Any]:
    """The record's `options`: how the job ran, nnU-Net's own choices named."""
    return options.to_dict(device) | {
        "amp": "nnU-Net's own: float16 autocast on CUDA, float32 on a CPU",
        "channels_last": False,
        "compile": bool(options.compile) and device.type == "cuda",
        "cpus": cpus,
        "augmentation_workers": cpus - 1,
        "checkpoint_every_s": options.checkpoint_every_s,
    }


def _timings(outcome: dict[str, Any], steps_per_epoch: int) -> dict[str, float | None]:
    """The record's `timings`: nnU-Net's epoch times summed (every session), validation and scoring, and the
    mean seconds of one training step (forward, backward, optimiser; this session's steps)."""
    history = outcome.get("history") or []
    train_s = sum(float(h["epoch_s"]) for h in history) if history else None
    images = outcome.get("epochs_done", 0) * steps_per_epoch * outcome.get("batch_size", 0)
    eval_s = outcome.get("validation_s")
    return {
        "train_s": train_s,
        "eval_s": None if eval_s is None else eval_s + outcome.get("scoring_s", 0.0),
        "train_img_s": images / train_s if train_s and images else None,
        "step_s": outcome.get("step_s"),
        "steps_timed": outcome.get("steps_timed"),
    }


def _nnunet_section(version: str, plans: dict[str, Any], outcome: dict[str, Any], effective: Protocol,
                    cases: dict[str, Any], workspace: Workspace, digest: str, cpus: int, options: TrainOptions,
                    device: torch.device) -> dict[str, Any]:
    """The record's `nnunet`: nnU-Net's version, plan, network, schedule, own validation Dice, where it worked."""
    return {
        "version": version,
        "trainer": outcome["trainer"],
        "configuration": CONFIGURATION,
        "plan": plan_summary(plans),
        "network": outcome["network_class"],
        "network_params": outcome["network_params"],
        "input_channels": outcome["input_channels"],
        "deep_supervision_weights": outcome["deep_supervision_weights"],
        "schedule": {"epochs": effective.epochs, "steps_per_epoch": effective.steps_per_epoch,
                     "val_steps_per_epoch": FRAMEWORK.val_steps(effective.steps_per_epoch)},
        "defaults": outcome["nnunet_defaults"],
        "validation_dice": outcome["validation_dice"],
        "validation_dice_note": "nnU-Net's own: summary.json foreground mean Dice (0..1) of its validation, "
                                "which is our test fold",
        "inference": outcome["inference"],
        "fold_cases": cases,
        "workspace": str(workspace.root),
        "workspace_digest": digest,
        "output_folder": outcome["output_folder"],
    }
