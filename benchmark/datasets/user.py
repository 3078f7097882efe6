"""Datasets of your own: found as `<data root>/<NAME>/dataset.json`, with their split in `splits.json` beside it.

`prepare --dataset NAME --source DIR` (benchmark.datasets.prepare_user) lays one out like the built-in
datasets (`tr_im/<id>.png`, `tr_mask/<id>.png`) and writes the two files: `dataset.json` (name, source,
licence, counts, the patient of every slice, checks' findings) and `splits.json` (a patient-grouped
5-fold split, drawn once with a seed and reused). Nothing here is a registry: a dataset is looked up
through the data root it lives under, so two data roots never see each other's datasets.

This module only reads and checks the two files; it sits below specs.py (which turns a dataset.json into a
DatasetSpec) and folds.py (which checks a splits.json against the patients), so nothing imports in a circle.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..errors import BadValue
from ..io import read_json

DATASET_FILE = "dataset.json"
SPLITS_FILE = "splits.json"
DATASET_SCHEMA = "miniseg-bench/dataset/1"
SPLITS_SCHEMA = "miniseg-bench/folds/1"
#: A dataset name and a slice id are file and folder names: letters, digits, '.', '_', '-'.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def dataset_folder(name: str, data_root: str | Path) -> Path:
    """`<data_root>/<name>`: where a dataset of your own lives."""
    return Path(data_root) / name


@dataclass(frozen=True)
class SlicePatients:
    """Which patient (and, for volumes, which volume) each slice of a dataset of your own belongs to.

    The same interface as the built-ins' `folds.PatientMap`, read from dataset.json's `slices`. `volume_regex`
    is None: per-volume 3-D metrics are computed for the built-in datasets only.
    """

    dataset: str
    patients: Mapping[str, str]  # slice id -> patient
    volumes: Mapping[str, str]  # slice id -> volume (NIfTI layout), empty for PNG slices
    source: str
    path: str
    unit: str = "patient"
    volume_regex: str | None = None

    def patient_of(self, slice_id: str) -> str:
        """The patient of a slice; an id the dataset does not have is an error naming dataset.json."""
        try:
            return self.patients[slice_id]
        except KeyError:
            raise BadValue(f"{self.path}: no slice {slice_id!r} in {self.dataset}") from None

    def volume_of(self, slice_id: str) -> str | None:
        """The volume a slice was cut from (NIfTI layout), else None."""
        return self.volumes.get(slice_id)

    def z_of(self, slice_id: str) -> int | None:
        """Not used for datasets of your own (no 3-D metrics): None."""
        return None

    def patient_of_volume(self, volume: str) -> str:
        """The patient of a volume (the patient of its slices)."""
        return next((self.patients[i] for i, v in self.volumes.items() if v == volume), volume)


@dataclass(frozen=True)
class UserDataset:
    """A dataset of your own as read from its dataset.json: the fields its spec needs, its patients, the file."""

    name: str
    title: str
    source: str
    licence: str
    layout: str
    drops_empty: bool  # prepare left the slices with an empty mask out
    fold_sizes: tuple[int, ...]
    n_patients: int
    patients: SlicePatients
    folder: Path

    @property
    def n_slices(self) -> int:
        return len(self.patients.patients)


def _field(data: Mapping[str, Any], key: str, kind: type, path: Path) -> Any:
    """`data[key]` when it is a `kind`; else a BadValue naming the file."""
    value = data.get(key)
    if not isinstance(value, kind):
        raise BadValue(f"{path}: '{key}' missing or not a {kind.__name__}; re-run prepare --force")
    return value


def _patients(data: Mapping[str, Any], name: str, path: Path) -> SlicePatients:
    """The patient (and volume) of every slice listed in a dataset.json."""
    slices = _field(data, "slices", dict, path)
    bad = next((i for i, row in slices.items() if not isinstance(row, dict) or not row.get("patient")), None)
    if bad is not None:
        raise BadValue(f"{path}: slice {bad!r} has no patient; re-run prepare --force")
    patients = {i: str(row["patient"]) for i, row in slices.items()}
    volumes = {i: str(row["volume"]) for i, row in slices.items() if row.get("volume")}
    source = f"prepare: {data.get('patients_from') or 'patients as given'}"
    return SlicePatients(name, patients, volumes, source, str(path))


@lru_cache(maxsize=32)
def _read_dataset(path: str, mtime_ns: int, size: int, name: str) -> UserDataset:
    """dataset.json parsed and checked (cached per file version: the same file is read once)."""
    file = Path(path)
    data = read_json(file)
    if not isinstance(data, dict) or data.get("schema") != DATASET_SCHEMA:
        raise BadValue(f"{file}: not a dataset file (expected schema {DATASET_SCHEMA}); re-run prepare --force")
    if data.get("name") != name:
        raise BadValue(f"{file}: names dataset {data.get('name')!r}, but its folder is {name!r}; rename one of them")
    return UserDataset(
        name=name, title=str(data.get("title") or f"{name}: a dataset of your own"),
        source=str(data.get("source") or ""), licence=str(data.get("licence") or "not given"),
        layout=str(data.get("layout") or ""), drops_empty=data.get("empty_slices") == "drop",
        fold_sizes=tuple(int(n) for n in _field(data, "fold_sizes", list, file)),
        n_patients=int(_field(data, "n_patients", int, file)), patients=_patients(data, name, file),
        folder=file.parent,
    )


def find_user_dataset(name: str, data_root: str | Path) -> UserDataset | None:
    """The dataset of your own called `name` under `data_root`; None without a `<root>/<name>/dataset.json`.

    The caller rules out the built-in names first (specs.get_spec does)."""
    if not re.fullmatch(NAME_PATTERN, name):
        return None
    path = dataset_folder(name, data_root) / DATASET_FILE
    if not path.is_file():
        return None
    stat = path.stat()
    return _read_dataset(str(path.resolve()), stat.st_mtime_ns, stat.st_size, name)


def get_user_dataset(name: str, data_root: str | Path) -> UserDataset:
    """`find_user_dataset`, or a KeyError saying where the dataset was looked for."""
    found = find_user_dataset(name, data_root)
    if found is None:
        raise KeyError(f"unknown dataset {name!r}: no {dataset_folder(name, data_root) / DATASET_FILE}; lay it out "
                       f"with `run_benchmark.py prepare --dataset {name} --source DIR`")
    return found


@lru_cache(maxsize=32)
def _read_splits(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, ...], ...]:
    """splits.json's folds (cached per file version: the same file is parsed once)."""
    folds = split_folds(read_json(Path(path)), path, f"expected schema {SPLITS_SCHEMA} with 'folds'")
    return tuple(tuple(str(i) for i in fold) for fold in folds)


def split_folds(data: Any, path: str | Path, remedy: str) -> list[list[Any]]:
    """The folds of a splits.json's content; anything else is an error naming the file, with `remedy`."""
    folds = data.get("folds") if isinstance(data, dict) and data.get("schema") == SPLITS_SCHEMA else None
    if not isinstance(folds, list) or not all(isinstance(f, list) for f in folds):
        raise BadValue(f"{path}: not a split file ({remedy})")
    return folds


def read_split_file(dataset: UserDataset) -> tuple[Path, list[list[str]]]:
    """The splits.json beside a dataset.json and its folds as written (folds.user_folds checks them)."""
    path = dataset.folder / SPLITS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file missing; re-run `run_benchmark.py prepare --dataset "
                                f"{dataset.name} --source DIR --force` (it is never redrawn silently)")
    stat = path.stat()
    return path, [list(fold) for fold in _read_splits(str(path.resolve()), stat.st_mtime_ns, stat.st_size)]
