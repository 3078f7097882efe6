"""nnU-Net's folders for one dataset, split and slice size: raw layout, fingerprint, plans, preprocessed data.

`<results>/nnunet/<dataset key>-<size>px/` (the key is `results_key`: `P20-grouped` for the grouped split):
  nnUNet_raw/Dataset001_<key>/      dataset.json, imagesTr/<slice id>_0000.png, labelsTr/<slice id>.png
  nnUNet_preprocessed/Dataset001_<key>/
                                    dataset_fingerprint.json, <plans>.json, nnUNetPlans_2d/, gt_segmentations/,
                                    splits_final.json (our five folds), <step>.complete (a step that finished)
  source.json                       what the layout was made from (digest of every slice's pixels at the
                                    size, nnunetv2's version); written last, compared on every job
Slices are the dataset's PNGs as our loader reads them (8-bit grey, masks 0/1), resized to the protocol's
`base_size` as our trainer resizes them; nnU-Net reads them with its NaturalImage2DIO (2D PNG, spacing 1).
PNG keeps the slices exactly as the benchmark sees them: no spacing is invented (a single-slice NIfTI
would need one) and nnU-Net's own 2D reader is used. The fingerprint, plans and preprocessed data are
nnU-Net's, made once per workspace by the child process; whoever builds it holds `<workspace>.lock`
(fcntl), so jobs of one dataset started together (pool, Ray on one host) wait for one build.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from ...io import atomic_write_json, read_json

LAYOUT_VERSION = 1
DATASET_ID = 1
SOURCE_NAME = "source.json"
SPLITS_NAME = "splits_final.json"
CHANNEL = "_0000"  # nnU-Net's channel suffix of a case's (only) image


@dataclass(frozen=True)
class Workspace:
    """The folders nnU-Net works in for one (dataset, split, size) (module docstring)."""

    root: Path
    key: str  # results_key(dataset, split)
    size_px: int

    @classmethod
    def under(cls, results: str | Path, key: str, size_px: int) -> "Workspace":
        """The workspace of `key` at `size_px` inside a results folder."""
        return cls(Path(results) / "nnunet" / f"{key}-{size_px}px", key, size_px)

    @property
    def dataset(self) -> str:
        """nnU-Net's dataset name (DatasetXXX_Name; the folders are private, so the id is always 1)."""
        return f"Dataset{DATASET_ID:03d}_{re.sub(r'[^A-Za-z0-9]+', '', self.key)}"

    @property
    def raw(self) -> Path:
        return self.root / "nnUNet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnUNet_preprocessed"

    @property
    def dataset_preprocessed(self) -> Path:
        return self.preprocessed / self.dataset

    def plans_file(self, plans_identifier: str) -> Path:
        return self.dataset_preprocessed / f"{plans_identifier}.json"

    def source(self) -> dict[str, Any]:
        """source.json, or {} when absent or unreadable (a half-built workspace)."""
        try:
            found = read_json(self.root / SOURCE_NAME)
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the workspace's lock file (blocking until another builder is done)."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root.parent / f"{self.root.name}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def slices_digest(ids: Sequence[str], images: np.ndarray, masks: np.ndarray, nnunet_version: str) -> str:
    """What a layout is made from: every slice's id and pixels (at the layout size), the layout's and nnU-Net's
    versions. A different digest means the slices changed: the workspace is rebuilt."""
    digest = hashlib.sha256(f"layout {LAYOUT_VERSION} nnunetv2 {nnunet_version} {images.shape}".encode())
    for slice_id, image, mask in zip(ids, images, masks):
        digest.update(slice_id.encode() + b"\0")
        digest.update(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        digest.update(np.packbits(mask).tobytes())
    return digest.hexdigest()


def write_raw(workspace: Workspace, ids: Sequence[str], images: np.ndarray, masks: np.ndarray,
              dataset_json: dict[str, Any]) -> None:
    """Lay the slices out in nnU-Net's raw format, replacing whatever the workspace held (its nnU-Net files were
    made from other slices). Built beside the workspace and renamed into place."""
    staging = workspace.root.with_name(workspace.root.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    dataset = staging / workspace.raw.name / workspace.dataset
    (dataset / "imagesTr").mkdir(parents=True)
    (dataset / "labelsTr").mkdir()
    for slice_id, image, mask in zip(ids, images, masks):
        image_file = dataset / "imagesTr" / f"{slice_id}{CHANNEL}.png"
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(image_file)
        Image.fromarray(mask.astype(np.uint8)).save(dataset / "labelsTr" / f"{slice_id}.png")
    (dataset / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    (staging / workspace.preprocessed.name / workspace.dataset).mkdir(parents=True)
    if workspace.root.exists():
        old = workspace.root.with_name(workspace.root.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        workspace.root.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    staging.rename(workspace.root)


def write_splits(workspace: Workspace, folds: Sequence[Sequence[str]]) -> None:
    """nnU-Net's splits_final.json from our folds: split k's "val" is our test fold k, its "train" the rest."""
    splits = [{"train": [i for j, ids in enumerate(folds) if j != k for i in ids], "val": list(fold)}
              for k, fold in enumerate(folds)]
    path = workspace.dataset_preprocessed / SPLITS_NAME
    try:
        if read_json(path) == splits:
            return
    except (OSError, ValueError):
        pass
    atomic_write_json(path, splits)


def step_done(workspace: Workspace, step: str) -> bool:
    """Whether a preparation step (fingerprint, a plans identifier, a data identifier) finished in this workspace."""
    return (workspace.dataset_preprocessed / f"{step}.complete").is_file()
