"""Our subclass of nnU-Net's trainer: nnU-Net's training, with what the benchmark needs around it.

Imported only in the nnU-Net child process (benchmark.training.nnunet.child): it imports nnunetv2.
Nothing of nnU-Net's training changes (plan, data loading, augmentation, loss, optimiser, schedule
shape, validation); the subclass sets the schedule's length, and:
- checkpoints: written after every epoch or at most every `checkpoint_every_s` seconds (nnU-Net writes
  every 50 epochs), atomically (a temp file renamed), with plain Python numbers in place of NumPy
  scalars, so that they load with `torch.load(weights_only=True)` without allow-listing anything;
  nnU-Net's `checkpoint_best.pth` is not written (the final model is tested, as nnU-Net does);
- files for the parent process: the cases nnU-Net's own split gave it (`fold_cases.json`), a progress
  line per epoch (`progress.json`), and our runner's checkpoint summary (`last.json`);
- `stop_after_epoch`: ends the session after that epoch's checkpoint, as an interruption would.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from ...io import atomic_write_json
from ..run_record import utc_now

CHECKPOINT_FINAL = "checkpoint_final.pth"
CHECKPOINT_LATEST = "checkpoint_latest.pth"
CHECKPOINT_BEST = "checkpoint_best.pth"
#: nnU-Net's own settings this subclass changes, read before it does (recorded).
DEFAULTS = ("num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch", "save_every",
            "initial_lr", "weight_decay")


class SessionEnd(Exception):
    """The session stops after the epoch `stop_after_epoch` asked for (its checkpoint is written)."""


def plain(value: Any) -> Any:
    """NumPy scalars as Python numbers, recursively through lists, tuples and dicts."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


class BenchTrainer(nnUNetTrainer):
    """nnUNetTrainer with the benchmark's schedule, checkpoints and progress files (module docstring)."""

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a job's spec (benchmark.training.nnunet.job) before nnU-Net initialises (its lr schedule reads
        `num_epochs`)."""
        self.defaults = {name: plain(getattr(self, name)) for name in DEFAULTS}
        self.num_epochs = int(spec["epochs"])
        self.num_iterations_per_epoch = int(spec["steps_per_epoch"])
        self.num_val_iterations_per_epoch = int(spec["val_steps_per_epoch"])
        self.checkpoint_every_s = float(spec["checkpoint_every_s"])
        self.stop_after_epoch = spec.get("stop_after_epoch")
        self.files = {key: Path(spec[key]) for key in ("fold_cases", "progress", "checkpoint_info")}
        self.checkpoint_info = spec["checkpoint_info_fields"]
        self.step_s = 0.0
        self.steps_timed = 0
        self._saved_at = time.monotonic()

    def do_split(self) -> tuple[list[str], list[str]]:
        """nnU-Net's split (read from our splits_final.json), written down for the parent to check."""
        train, val = super().do_split()
        atomic_write_json(self.files["fold_cases"], {"fold": self.fold, "train": list(train), "val": list(val)})
        return train, val

    def train_step(self, batch: dict) -> dict:
        """nnU-Net's step, timed (its loss comes back to the host, so the time includes the device's work)."""
        start = time.perf_counter()
        out = super().train_step(batch)
        self.step_s += time.perf_counter() - start
        self.steps_timed += 1
        return out

    def on_epoch_end(self) -> None:
        """nnU-Net's epoch end, with a checkpoint when one is due (see the module docstring), then progress files."""
        done = self.current_epoch + 1
        due = (time.monotonic() - self._saved_at >= self.checkpoint_every_s) or done == self.stop_after_epoch
        self.save_every = 1 if due else 10 ** 9  # nnU-Net's own periodic save (never after the last epoch)
        super().on_epoch_end()
        if due and done < self.num_epochs:
            self._saved_at = time.monotonic()
            self.write_checkpoint_info(done)
        atomic_write_json(self.files["progress"], {"epoch": done, "epochs": self.num_epochs})  # the parent's bar
        if done == self.stop_after_epoch and done < self.num_epochs:
            raise SessionEnd(f"stopped after epoch {done} as asked")

    def on_train_end(self) -> None:
        """nnU-Net's end of training (writes checkpoint_final.pth), then our checkpoint summary."""
        super().on_train_end()
        self.write_checkpoint_info(self.current_epoch)

    def write_checkpoint_info(self, epochs_done: int) -> None:
        """Our runner's `last.json`: how far the saved checkpoint is, under which protocol and data."""
        atomic_write_json(self.files["checkpoint_info"], self.checkpoint_info | {
            "epoch": epochs_done, "epochs": self.num_epochs, "iteration": epochs_done * self.num_iterations_per_epoch,
            "saved_at": utc_now(),  # as our trainer's last.json
        })

    def history(self) -> list[dict[str, Any]]:
        """One entry per finished epoch from nnU-Net's logger: losses, pseudo Dice (and its EMA), lr, seconds."""
        log = self.logger.local_logger.my_fantastic_logging
        rows = []
        for epoch in range(len(log["epoch_end_timestamps"])):
            rows.append(plain({
                "epoch": epoch + 1, "train_loss": log["train_losses"][epoch], "val_loss": log["val_losses"][epoch],
                "pseudo_dice": log["mean_fg_dice"][epoch], "pseudo_dice_ema": log["ema_fg_dice"][epoch],
                "lr": log["lrs"][epoch],
                "epoch_s": log["epoch_end_timestamps"][epoch] - log["epoch_start_timestamps"][epoch],
                "test": None,
            }))
        return rows

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, with plain numbers and written atomically; the 'best' one is skipped."""
        if Path(filename).name == CHECKPOINT_BEST:
            return
        log = self.logger.local_logger.my_fantastic_logging
        for key in log:
            log[key] = plain(log[key])
        self._best_ema = plain(self._best_ema)
        tmp = f"{filename}.tmp-{os.getpid()}"
        try:
            super().save_checkpoint(tmp)
            if os.path.exists(tmp):  # nnU-Net writes nothing when checkpointing is disabled
                os.replace(tmp, filename)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        """nnU-Net's loader, its `torch.load` held to `weights_only=True` (nnU-Net passes False, which unpickles
        anything). nnU-Net 2.8.1's loader only takes a path (given a dict, its `checkpoint` is unbound), so the
        restriction is applied around it rather than by loading first."""
        with weights_only_loads():
            super().load_checkpoint(filename_or_checkpoint)


@contextlib.contextmanager
def weights_only_loads() -> Iterator[None]:
    """`torch.load` with `weights_only=True` whatever the caller asks, for the block (this child process only)."""
    original = torch.load

    def safe_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = safe_load
    try:
        yield
    finally:
        torch.load = original
