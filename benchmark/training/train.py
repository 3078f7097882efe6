"""Fit one (model, dataset, fold) under a `Protocol`, evaluate the test fold, write the run record.

The fold's slices are decoded once and moved to the training device once as uint8; every
batch is augmented there (benchmark.training.augment). The test fold is scored on the ground
truth's own grid (512 px for the paper's data) whatever size the model trains at: its logits
are resized (bilinear) to the masks' size before the argmax, as the paper scores at 512 px.
The loss is summed on the device and read back once per epoch, which is also when divergence
(a NaN/inf loss) is detected. Training is deterministic on the CPU for a given seed: model
initialisation and dropout use the seeded global generators, shuffling and augmentation a
dedicated generator; all of them are saved in the checkpoint at the end of every epoch, so a
resumed run continues exactly (benchmark.training.checkpoint). The record is built by
benchmark.training.run_record.
"""
from __future__ import annotations

import math
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from models.layers import upsample_to

from .augment import augment_batch, draw_pass
from .bn_init import batchnorm_init
from ..env import environment, resolve_device
from ..checks import check_finite_weights, weights_note
from ..io import atomic_write, atomic_write_json
from .checkpoint import capture_rng, read_checkpoint, restore_rng, seed_everything, write_checkpoint
from ..normalization import Stat, checkpoint_fields, input_statistics, record_fields
from ..protocol import Protocol
from ..recipes import resolve
from ..errors import ContractViolation, StorageFailure, UserError
from ..records import PER_SLICE_NAME, RECORD_NAME
from .run_record import job_record, utc_now

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainOptions:
    """How to run (not what to compute): recorded beside the protocol, not compared with it."""

    device: str | None = None  # None: cuda when available, else cpu
    amp: str | None = None  # None (fp32, the paper's), "bf16" or "fp16"
    channels_last: bool = False
    compile: str | None = None  # None, or a torch.compile mode: "default", "reduce-overhead", "max-autotune"
    progress: bool = True
    # Seconds of training between checkpoints: 0 writes last.pt after every epoch; more saves the write
    # (~0.2 s for a small model) on short epochs. The last epoch is always written.
    checkpoint_every_s: float = 0.0

    def __post_init__(self) -> None:
        if self.amp not in (None, *AMP_DTYPES):
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)} or None, got {self.amp!r}")
        if not self.checkpoint_every_s >= 0:
            raise ValueError(f"checkpoint interval must be >= 0 seconds, got {self.checkpoint_every_s}")

    def to_dict(self, device: torch.device) -> dict[str, Any]:
        """What the record says about how the job ran."""
        return {
            "device": str(device),
            "amp": self.amp,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "cudnn_benchmark": device.type == "cuda",
        }


@dataclass
class FoldData:
    """One fold's training slices on the device and test slices in host memory."""

    train_images: torch.Tensor  # uint8 (N,H,W) on the training device
    train_masks: torch.Tensor  # bool (N,H,W) on the training device
    test_ids: list[str]
    test_images: np.ndarray  # uint8 (M,H,W), the model's input size
    test_masks: np.ndarray  # bool (M,h,w), the ground truth on its own grid (what the metrics score)
    mean: float  # the training split's statistics (PROTOCOL.md)
    std: float
    class_weights: np.ndarray  # float64 (2,)

    def summary(self) -> dict[str, Any]:
        """The record's `data` section."""
        return {
            "n_train": int(self.train_images.shape[0]),
            "n_test": len(self.test_ids),
            "size_px": int(self.train_images.shape[-1]),
            "score_size_px": int(self.test_masks.shape[-1]),
            "mean": self.mean,
            "std": self.std,
            "class_weights": [float(w) for w in self.class_weights],
        }

    def record_section(self, normalization: str) -> dict[str, Any]:
        """The run record's `data`: the fold's summary and the input normalisation the model saw."""
        return self.summary() | record_fields(normalization, *self.input_normalization(normalization))

    def input_normalization(self, name: str) -> tuple[Stat, Stat]:
        """(mean, std) of the inputs: the fold's statistics (one value, every channel), or ImageNet's per channel."""
        return input_statistics(name, (self.mean, self.std))


def load_fold_data(
    dataset: str, fold: int, data_root: str | Path, size_px: int, device: torch.device, split: str = "paper"
) -> FoldData:
    """Decode the fold's slices at `size_px` once; training split statistics; training slices to `device`."""
    from ..datasets import class_weights, get_folds, load_dataset, load_on_truth_grid, normalization_stats, train_ids

    folds = get_folds(dataset, data_root, split=split)
    if not 0 <= fold < len(folds):
        raise ValueError(f"{dataset}: fold {fold} out of range 0..{len(folds) - 1}")
    train = load_dataset(dataset, data_root, ids=train_ids(folds, fold), size=size_px)
    test = load_dataset(dataset, data_root, ids=folds[fold], size=size_px)
    mean, std = normalization_stats(train.images)
    return FoldData(
        train_images=torch.from_numpy(np.ascontiguousarray(train.images)).to(device),
        train_masks=torch.from_numpy(np.ascontiguousarray(train.masks)).to(device),
        test_ids=list(test.ids),
        test_images=test.images,
        test_masks=load_on_truth_grid(dataset, data_root, folds[fold], masks_only=True).masks,
        mean=mean,
        std=std,
        class_weights=class_weights(train.masks),
    )


def build_model(model_name: str, protocol: Protocol) -> torch.nn.Module:
    """The registered model, ImageNet backbone loaded when the protocol says so, BatchNorm initialised as it says."""
    from models import create_model

    kwargs = {"pretrained": True} if protocol.pretrained else {}
    with batchnorm_init(protocol.bn_init):
        return create_model(model_name, **kwargs)


class Trainer:
    """The model, optimiser, schedule and random state of one run, stepped an epoch at a time."""

    def __init__(self, model_name: str, data: FoldData, protocol: Protocol, options: TrainOptions) -> None:
        from models import get_model_info

        self.protocol, self.options, self.data = protocol, options, data
        self.device = data.train_images.device
        seed_everything(protocol.seed)
        self.model = build_model(model_name, protocol).to(self.device)
        check_finite_weights(self.model.state_dict(), f"{model_name} as built", "its builder or its ImageNet weights "
                             "file gave them")
        if options.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.aux_weights = protocol.aux_weights or get_model_info(model_name).aux_weights
        self.input_mean, self.input_std = data.input_normalization(protocol.normalization)
        self.model_name = model_name
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=protocol.lr, betas=protocol.betas, eps=protocol.eps,
            weight_decay=protocol.weight_decay, fused=True,  # one kernel per step; on CPU ~12% faster for tiny nets
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=options.amp == "fp16")
        self.amp_dtype = AMP_DTYPES.get(options.amp or "")
        self.step_model = torch.compile(self.model, mode=options.compile) if options.compile else self.model
        self.loss_weight = torch.tensor(data.class_weights, dtype=torch.float32, device=self.device)
        self.generator = torch.Generator().manual_seed(protocol.seed)
        self.n_train = int(data.train_images.shape[0])
        self.total_iterations = protocol.total_iterations(self.n_train)
        if self.total_iterations == 0:
            raise ValueError(f"{self.n_train} training slices make no batch of {protocol.batch_size} (drop_last)")
        self.epoch = 0
        self.iteration = 0
        self.images_trained = 0
        self.train_s = 0.0
        self.eval_s = 0.0
        self.history: list[dict[str, Any]] = []

    def iterate_epoch(self) -> Iterator[tuple[float, int, torch.Tensor, torch.Tensor]]:
        """(lr, size_px, slice indices, crop/flip params) of every iteration of the next epoch, in order."""
        p = self.protocol
        for scale, margin in p.passes:
            size_px = p.pass_size_px(scale)
            draw = draw_pass(
                self.generator, self.n_train, p.batch_size, size_px, p.margin_px(margin),
                p.crop_prob, p.flip_prob, p.drop_last,
            ).to(self.device)
            for index, params in draw.batches():
                yield p.lr_at(self.iteration, self.total_iterations), size_px, index, params
                self.iteration += 1

    def train_epoch(self, on_step: Callable[[], None] | None = None) -> dict[str, Any]:
        """One epoch (every pass); returns its history entry. Raises DivergenceError on a NaN/inf loss."""
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        steps = images = 0
        lr = float("nan")
        start = time.perf_counter()
        for lr, size_px, index, params in self.iterate_epoch():
            x, y = augment_batch(
                self.data.train_images[index], self.data.train_masks[index], params, size_px,
                self.input_mean, self.input_std,
            )
            if self.options.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss_sum += self._step(x, y, lr)
            steps += 1
            images += len(index)
            if on_step is not None:
                on_step()
        train_loss = loss_sum.item() / steps  # the epoch's one host sync
        self.train_s += time.perf_counter() - start
        self.images_trained += images
        self.epoch += 1
        if not math.isfinite(train_loss):
            raise DivergenceError(f"training loss is {train_loss} in epoch {self.epoch} (diverged); "
                                  f"{weights_note(self.model)}")
        return {"epoch": self.epoch, "train_loss": train_loss, "lr": lr, "test": None}

    def _step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        """One optimiser step at learning rate `lr`; returns the loss (on the device, detached)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss = self.loss(self.step_model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def loss(self, outputs: torch.Tensor | tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        """The protocol's loss of each output (upsampled to the target) times its `aux_weights` entry, summed;
        outputs weighted 0 are left out."""
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        if len(outputs) != len(self.aux_weights):
            raise ContractViolation(
                f"model {self.model_name!r} returned {len(outputs)} output(s) in train mode, "
                f"but its aux_weights {self.aux_weights} expect {len(self.aux_weights)}"
            )
        total = torch.zeros((), device=target.device)
        for weight, logits in zip(self.aux_weights, outputs):
            if weight:
                total = total + weight * self.loss_term(upsample_to(logits, target.shape[-2:]).float(), target)
        return total

    def loss_term(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One output's loss: class-weighted CE, or sigmoid BCE of the foreground-minus-background logit.

        For two classes the BCE equals unweighted cross-entropy (softmax of two logits is the sigmoid of
        their difference); for Inf-Net's [0, z] logits it is exactly the authors' BCE on z.
        """
        if self.protocol.loss == "bce":
            if logits.shape[1] != 2:
                raise ValueError(f"loss 'bce' needs 2-class logits, model {self.model_name!r} gives {logits.shape[1]}")
            return F.binary_cross_entropy_with_logits(logits[:, 1] - logits[:, 0], target.float())
        return F.cross_entropy(logits, target, weight=self.loss_weight)

    def evaluate(self) -> Any:
        """Per-slice metrics (pandas DataFrame) of the current model on the test fold."""
        from ..evaluation.evaluate import predict
        from ..evaluation.metrics import slice_metrics

        start = time.perf_counter()
        pred = predict(self.model, self.data.test_images, self.input_mean, self.input_std, self.device,
                       batch_size=self.protocol.eval_batch_size,
                       out_size=tuple(self.data.test_masks.shape[-2:]))  # hands the model back in train mode
        per_slice = slice_metrics(pred, self.data.test_masks, self.data.test_ids)
        self.eval_s += time.perf_counter() - start
        return per_slice

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this epoch ended."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "images_trained": self.images_trained,
            "train_s": self.train_s,
            "eval_s": self.eval_s,
            "history": self.history,
            "rng": capture_rng(self.generator),
            "protocol": self.protocol.to_dict(),
            # the input statistics the model was trained with: `evaluate --model` reuses them
            **checkpoint_fields(self.input_mean, self.input_std),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        for key in ("epoch", "iteration", "images_trained", "train_s", "eval_s", "history"):
            setattr(self, key, state[key])
        restore_rng(state["rng"], self.generator)

    def timings(self) -> dict[str, float | None]:
        """The record's `timings`: seconds training / evaluating and training throughput."""
        return {
            "train_s": self.train_s,
            "eval_s": self.eval_s,
            "train_img_s": self.images_trained / self.train_s if self.train_s > 0 else None,
        }


def save_checkpoint(trainer: Trainer, run_dir: Path) -> None:
    """Write the trainer's last.pt and last.json (benchmark.training.checkpoint)."""
    write_checkpoint(run_dir, trainer.state_dict(), trainer.protocol.epochs)


def resume(trainer: Trainer, run_dir: Path) -> bool:
    """Load last.pt when it exists and was written under the same protocol; True when resumed."""
    state = read_checkpoint(run_dir, trainer.device, trainer.protocol.to_dict())
    if state is None:
        return False
    trainer.load_state_dict(state)
    return True


#: Failures that stop the whole grid instead of failing one job: Ctrl-C, and a disk that takes no more
#: writes (the last checkpoint stays; the rerun resumes). Every training backend re-raises them.
GRID_STOPS = (KeyboardInterrupt, StorageFailure)


def describe_error(err: BaseException) -> str:
    """A failed record's `error`: the kind of failure and its message."""
    if isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower():
        return f"out of memory: {err}".strip()
    if isinstance(err, DivergenceError):
        return f"diverged: {err}"
    return f"{type(err).__name__}: {err}"


def run_training(
    model: str,
    dataset: str,
    fold: int,
    protocol: Protocol,
    options: TrainOptions,
    data_root: str | Path,
    run_dir: str | Path,
    on_epoch_end: Callable[[], None] | None = None,
    split: str = "paper",
) -> dict[str, Any]:
    """Train (resuming from last.pt when present), test the final model, write record.json; return it.

    `split` picks the folds: the paper's (default) or the patient-grouped ones (recorded as `split`).

    Divergence, out-of-memory and other errors give a record with status "failed"; Ctrl-C
    propagates, leaving the checkpoint of the last finished epoch for the next run.
    """
    run_dir = Path(run_dir)
    protocol, exception = resolve(protocol, model)
    device = resolve_device(options.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    started_at = utc_now()
    trainer: Trainer | None = None
    data: FoldData | None = None
    final, error, csv_name, resumed_from = None, None, None, None
    try:
        data = load_fold_data(dataset, fold, data_root, protocol.base_size, device, split)
        trainer = Trainer(model, data, protocol, options)
        resumed_from = trainer.epoch if resume(trainer, run_dir) else None
        per_slice = _train_epochs(trainer, run_dir, f"{dataset}/{model}/fold{fold}", on_epoch_end)
        final = _fold_summary(per_slice)
        atomic_write(run_dir / PER_SLICE_NAME, lambda tmp: per_slice.to_csv(tmp, index=False))
        csv_name = PER_SLICE_NAME
    except GRID_STOPS:
        raise
    except Exception as err:  # noqa: BLE001 - every failure is recorded and the grid goes on
        error = describe_error(err)
        if not isinstance(err, (DivergenceError, torch.OutOfMemoryError, UserError)):  # a user's bad file: no trace
            traceback.print_exc(file=sys.stderr)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    record = job_record(
        model, dataset, fold, protocol, exception, options.to_dict(device), environment(device),
        error=error, started_at=started_at, timings=trainer.timings() if trainer else None,
        history=trainer.history if trainer else None, iterations=trainer.iteration if trainer else 0,
        data=data.record_section(protocol.normalization) if data else None, final=final,
        per_slice_csv=csv_name, resumed_from=resumed_from,
    )
    record["split"] = split
    atomic_write_json(run_dir / RECORD_NAME, record)
    return record


def _fold_summary(per_slice: Any) -> dict[str, dict[str, float]]:
    from ..evaluation.metrics import fold_summary

    return fold_summary(per_slice)


def _train_epochs(trainer: Trainer, run_dir: Path, label: str, on_epoch_end: Callable[[], None] | None) -> Any:
    """Run the remaining epochs with a progress bar, checkpointing at the options' interval and after the
    last epoch; return the final per-slice metrics."""
    from tqdm import tqdm

    per_slice = None
    saved_at = time.perf_counter()
    with tqdm(total=trainer.total_iterations, initial=trainer.iteration, desc=label, unit="it", leave=False,
              file=sys.stderr, disable=not trainer.options.progress or None, dynamic_ncols=True) as bar:
        while trainer.epoch < trainer.protocol.epochs:
            entry = trainer.train_epoch(on_step=lambda: bar.update())
            if trainer.protocol.is_eval_epoch(entry["epoch"]):
                per_slice = trainer.evaluate()
                entry["test"] = {"paper": _fold_summary(per_slice)["paper"]}
            trainer.history.append(entry)
            last_epoch = trainer.epoch == trainer.protocol.epochs
            if last_epoch or time.perf_counter() - saved_at >= trainer.options.checkpoint_every_s:
                save_checkpoint(trainer, run_dir)
                saved_at = time.perf_counter()
            bar.set_postfix(epoch=f"{trainer.epoch}/{trainer.protocol.epochs}", loss=f"{entry['train_loss']:.4f}")
            if on_epoch_end is not None:
                on_epoch_end()
    return per_slice if per_slice is not None else trainer.evaluate()
