"""A run's checkpoint: every random state it depends on, and last.pt / last.json written atomically, read back
(weights_only) only when written under the same protocol, so a resumed run continues exactly."""
from __future__ import annotations

import pickle
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checks import first_non_finite, nested_tensors
from ..io import atomic_write_json, atomic_write_torch
from ..records import CHECKPOINT_INFO_NAME, CHECKPOINT_NAME, same_protocol
from .run_record import utc_now


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (model init, dropout)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng(augment_generator: torch.Generator) -> dict[str, Any]:
    """Every random state a run depends on, in a form `torch.load(weights_only=True)` accepts."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [version, list(internal), gauss_next],
        "augment": augment_generator.get_state(),
    }


def restore_rng(state: dict[str, Any], augment_generator: torch.Generator) -> None:
    """Inverse of `capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    augment_generator.set_state(state["augment"])


def write_checkpoint(run_dir: Path, state: dict[str, Any], epochs: int) -> None:
    """Write a trainer's `state` as last.pt (atomically) and its small JSON summary last.json."""
    atomic_write_torch(run_dir / CHECKPOINT_NAME, state)
    atomic_write_json(run_dir / CHECKPOINT_INFO_NAME, {
        "epoch": state["epoch"], "epochs": epochs, "iteration": state["iteration"], "protocol": state["protocol"],
        "saved_at": utc_now(),
    })


def read_checkpoint(run_dir: Path, device: torch.device, protocol: dict[str, Any]) -> dict[str, Any] | None:
    """last.pt's state when it exists, loads and was written under `protocol`; else None (said on stderr)."""
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:  # truncated or not a checkpoint
        print(f"warning: {path}: damaged checkpoint ({type(err).__name__}: {str(err).splitlines()[0]}); "
              "training from scratch", file=sys.stderr)
        return None
    non_finite = first_non_finite(nested_tensors(state))
    if non_finite:
        print(f"warning: {path}: damaged checkpoint (non-finite: {non_finite}); training from scratch", file=sys.stderr)
        return None
    if not isinstance(state, dict) or not same_protocol(state.get("protocol"), protocol):
        print(f"{path}: written under another protocol; training from scratch", file=sys.stderr)
        return None
    return state
