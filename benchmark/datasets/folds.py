"""The paper's 5-fold splits: committed JSON files (from the release's SegMaps), or a dataList/.

List k of `get_folds` is test fold k = the release's `CrossVal{k+1}`; fold k's training
set is the union of the other four (`train_ids`).
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Mapping

import numpy as np

from .loading import IMAGE_DIR, dataset_path
from .specs import DatasetSpec, get_spec

N_FOLDS = 5
DATALIST_DIR = "dataList"
FOLD_SCHEMA = "miniseg-bench/folds/1"


def fold_file_name(spec: DatasetSpec) -> str:
    """File name of a dataset's committed folds inside benchmark/datasets/folds/."""
    return f"{spec.name}.json"


@lru_cache(maxsize=None)
def _committed_folds(name: str) -> tuple[tuple[str, ...], ...]:
    """Folds from the package's folds/<name>.json (read once)."""
    resource = resources.files(__package__) / "folds" / fold_file_name(get_spec(name))
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{resource}: fold file missing; regenerate with scripts/make_folds.py") from None
    folds = data.get("folds")
    if not isinstance(folds, list) or len(folds) != N_FOLDS:
        raise ValueError(f"{resource}: expected {N_FOLDS} folds under 'folds'")
    return tuple(tuple(fold) for fold in folds)


def _resolve_listed(token: str, candidates: list[Path]) -> Path | None:
    """The first existing path among `candidate / token`, or None."""
    for base in candidates:
        path = base / token
        if path.exists():
            return path
    return None


def _read_datalist_file(list_file: Path, data_root: Path, folder: Path) -> list[str]:
    """Slice ids of one `val{k}.txt`: lines `<image path> <mask path>`, relative to the root or the folder."""
    bases = [data_root, folder, folder.parent]
    check_images = (folder / IMAGE_DIR).is_dir()
    ids = []
    for line_no, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 2:
            raise ValueError(f"{list_file}:{line_no}: expected '<image> <mask>', got {line.strip()!r}")
        for token in tokens[:2] if check_images else tokens[1:2]:
            if _resolve_listed(token, bases) is None:
                raise FileNotFoundError(f"{list_file}:{line_no}: names a missing file {token!r} (looked under {folder})")
        ids.append(Path(tokens[0]).stem)
    return ids


def _datalist_folds(list_dir: Path, data_root: Path) -> list[list[str]]:
    """Folds from the release's dataList/val{k}.txt (k = 0..4, or 1..5)."""
    base = 0 if (list_dir / "val0.txt").is_file() else 1
    files = [list_dir / f"val{k + base}.txt" for k in range(N_FOLDS)]
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing fold list (dataList needs val{base}..val{base + N_FOLDS - 1}.txt)")
    return [_read_datalist_file(p, data_root, list_dir.parent) for p in files]


def get_folds(name: str, data_root: str | Path | None = None) -> list[list[str]]:
    """Five lists of slice ids (list k = test fold k = CrossVal{k+1}); a dataList/ under the root overrides."""
    spec = get_spec(name)
    if data_root is not None:
        list_dir = dataset_path(spec, data_root) / DATALIST_DIR
        if list_dir.is_dir():
            return _datalist_folds(list_dir, Path(data_root))
    return [list(fold) for fold in _committed_folds(spec.name)]


def train_ids(folds: list[list[str]], fold: int) -> list[str]:
    """Training ids of test fold `fold` (0-based): the other folds' ids, in fold order."""
    if not 0 <= fold < len(folds):
        raise ValueError(f"fold {fold} out of range 0..{len(folds) - 1}")
    return [i for k, ids in enumerate(folds) if k != fold for i in ids]


def patient_folds(patient_of: Mapping[str, str], n_folds: int = N_FOLDS, seed: int = 0) -> list[list[str]]:
    """Patient-level folds for a dataset without published ones: patients shuffled by `seed`, dealt round-robin."""
    patients = sorted(set(patient_of.values()))
    if len(patients) < n_folds:
        raise ValueError(f"{len(patients)} patients cannot fill {n_folds} folds")
    order = [patients[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    fold_of = {patient: k % n_folds for k, patient in enumerate(order)}
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for slice_id in sorted(patient_of):
        folds[fold_of[patient_of[slice_id]]].append(slice_id)
    return folds
