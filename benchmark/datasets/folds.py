"""The 5-fold splits: the paper's (committed JSON from the release's SegMaps, or a dataList/), a patient-grouped one.

List k of `get_folds` is test fold k = the release's `CrossVal{k+1}`; fold k's training
set is the union of the other four (`train_ids`).

Splits: `paper` (the default, what the paper trained on) and `grouped` (`folds/<NAME>.grouped.json`:
the paper's folds with every patient moved whole into the fold that held most of its slices,
so no patient is in a test fold and its training set at once). Which slices belong to one
patient is in `folds/<NAME>.patients.json` (the rule, the exceptions and their source).
A dataset of your own has one split, patient-grouped: the `splits.json` prepare drew for it (`user_folds`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import BadValue
from .layout import DATALIST_DIR, IMAGE_DIR, dataset_path
from .specs import DatasetSpec, builtin_name, get_spec
from .user import SPLITS_FILE, SPLITS_SCHEMA, SlicePatients, get_user_dataset, read_split_file

N_FOLDS = 5
FOLD_SCHEMA = SPLITS_SCHEMA  # the packaged fold files and splits.json of a dataset of your own: one format
PATIENTS_SCHEMA = "miniseg-bench/patients/1"
SPLITS = ("paper", "grouped")
DEFAULT_SPLIT = "paper"


def fold_file_name(spec: DatasetSpec, split: str = DEFAULT_SPLIT) -> str:
    """File name of a dataset's committed folds inside benchmark/datasets/folds/ (<NAME>.json, <NAME>.grouped.json)."""
    check_split(split)
    return f"{spec.name}.json" if split == DEFAULT_SPLIT else f"{spec.name}.{split}.json"


def patients_file_name(spec: DatasetSpec) -> str:
    """File name of a dataset's patient map inside benchmark/datasets/folds/."""
    return f"{spec.name}.patients.json"


def check_split(split: str) -> str:
    """`split` itself when known, else a ValueError listing the splits."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return split


def folds_resource(file_name: str):
    """The package resource folds/<file_name> (a Traversable; its str() names the file in errors)."""
    return resources.files(__package__) / "folds" / file_name


@lru_cache(maxsize=None)
def _committed_folds(name: str, split: str = DEFAULT_SPLIT) -> tuple[tuple[str, ...], ...]:
    """Folds from the package's folds/<name>[.<split>].json (read once)."""
    resource = folds_resource(fold_file_name(get_spec(name), split))
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError:
        script = "scripts/make_folds.py" if split == DEFAULT_SPLIT else "scripts/make_grouped_folds.py"
        raise FileNotFoundError(f"{resource}: fold file missing; regenerate with {script}") from None
    folds = data.get("folds")
    if not isinstance(folds, list) or len(folds) != N_FOLDS:
        raise ValueError(f"{resource}: expected {N_FOLDS} folds under 'folds'")
    return tuple(tuple(fold) for fold in folds)


@dataclass(frozen=True)
class PatientMap:
    """Which volume and patient a slice id belongs to: a rule (a regex with a `volume` group) and exceptions."""

    dataset: str
    unit: str  # "patient" (slices grouped by patient) or "slice" (no patient id: every slice is a unit)
    volume_regex: str | None
    same_patient: Mapping[str, tuple[str, ...]]  # patient id -> its volumes, where a patient has more than one
    source: str
    path: str

    def volume_of(self, slice_id: str) -> str | None:
        """The volume a slice was cut from, or None where ids carry no volume (CT100)."""
        if self.volume_regex is None:
            return None
        match = re.fullmatch(self.volume_regex, slice_id)
        if match is None:
            raise ValueError(f"{self.path}: slice id {slice_id!r} does not match {self.volume_regex}")
        return match.group("volume")

    def z_of(self, slice_id: str) -> int | None:
        """The slice's index in its volume (the id's trailing number), or None where ids carry no volume."""
        if self.volume_regex is None:
            return None
        match = re.fullmatch(self.volume_regex, slice_id)
        return int(match.group("z")) if match is not None and "z" in match.groupdict() else None

    def patient_of(self, slice_id: str) -> str:
        """The patient of a slice: its volume, renamed where the map says volumes share a patient; else the slice."""
        volume = self.volume_of(slice_id)
        return slice_id if volume is None else self.patient_of_volume(volume)

    def patient_of_volume(self, volume: str) -> str:
        """The patient of a volume: the volume itself unless `same_patient` lists it under a patient."""
        return next((p for p, volumes in self.same_patient.items() if volume in volumes), volume)


def patient_map(name: str, data_root: str | Path | None = None) -> PatientMap:
    """Which patient each slice belongs to: a built-in's committed map, or (with `data_root`) the patients a
    dataset of your own records in its dataset.json (`user.SlicePatients`, the same interface)."""
    if data_root is not None and builtin_name(name) is None:
        return get_user_dataset(str(name).strip(), data_root).patients
    return _committed_patient_map(name)


@lru_cache(maxsize=None)
def _committed_patient_map(name: str) -> PatientMap:
    """The committed patient map folds/<NAME>.patients.json of a built-in dataset (read once)."""
    spec = get_spec(name)
    resource = folds_resource(patients_file_name(spec))
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{resource}: patient map missing") from None
    if data.get("schema") != PATIENTS_SCHEMA or data.get("unit") not in ("patient", "slice"):
        raise ValueError(f"{resource}: expected schema {PATIENTS_SCHEMA} with unit 'patient' or 'slice'")
    same = {str(p): tuple(v) for p, v in (data.get("same_patient") or {}).items()}
    return PatientMap(spec.name, data["unit"], data.get("volume_regex"), same, str(data.get("source", "")),
                      str(resource))


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


def get_folds(name: str, data_root: str | Path | None = None, split: str = DEFAULT_SPLIT) -> list[list[str]]:
    """Five lists of slice ids (list k = test fold k = CrossVal{k+1}).

    split "paper": the committed paper folds, or a dataList/ under the root where one exists;
    split "grouped": the committed patient-grouped folds (a dataList/ does not apply to them).
    A dataset of your own (found through `data_root`) has one split: its splits.json.
    """
    spec = get_spec(name, data_root)
    if builtin_name(spec.name) is None:  # a dataset of your own: its splits.json
        return user_folds(spec.name, data_root, check_split(split))
    if check_split(split) == DEFAULT_SPLIT and data_root is not None:
        list_dir = dataset_path(spec, data_root) / DATALIST_DIR
        if list_dir.is_dir():
            return _datalist_folds(list_dir, Path(data_root))
    return [list(fold) for fold in _committed_folds(spec.name, split)]


def split_problems(folds: list[list[str]], patient_of: Mapping[str, str]) -> list[str]:
    """What is wrong with a split of a dataset of your own (`patient_of`: its slices' patients): fold count,
    unknown, repeated or missing slices, a patient in more than one fold."""
    problems = []
    if len(folds) != N_FOLDS:
        problems.append(f"{len(folds)} folds, expected {N_FOLDS}")
    seen: dict[str, int] = {}
    for k, fold in enumerate(folds):
        for slice_id in fold:
            if slice_id not in patient_of:
                problems.append(f"fold {k} has slice {slice_id!r}, which the dataset does not have")
            elif slice_id in seen:
                problems.append(f"slice {slice_id!r} is in fold {seen[slice_id]} and fold {k}")
            seen.setdefault(slice_id, k)
    missing = sorted(set(patient_of) - set(seen))
    if missing:
        problems.append(f"{len(missing)} slice(s) in no fold, first {missing[0]!r}")
    known = [[i for i in fold if i in patient_of] for fold in folds]
    for patient, where in list(fold_leaks(known, patient_of.__getitem__).items())[:1]:
        problems.append(f"patient {patient!r} is in fold {' and fold '.join(map(str, sorted(where)))}")
    return problems


def user_folds(name: str, data_root: str | Path, split: str) -> list[list[str]]:
    """The 5 folds of a dataset of your own, from its splits.json (written once by prepare, never redrawn here),
    checked against the dataset's slices and patients."""
    dataset = get_user_dataset(name, data_root)
    if split != DEFAULT_SPLIT:
        raise BadValue(f"{name}: --split {split} is for the built-in datasets; a dataset of your own has one split, "
                       f"patient-grouped already ({dataset.folder / SPLITS_FILE}): leave --split out")
    path, folds = read_split_file(dataset)
    problems = split_problems(folds, dataset.patients.patients)
    if problems:
        raise BadValue(f"{path}: {problems[0]}; re-run prepare --force --resplit to draw a new split")
    return folds


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


def fold_leaks(folds: Sequence[Sequence[str]], patient_of) -> dict[str, dict[int, list[str]]]:
    """Patients whose slices fall in more than one fold: {patient: {0-based fold: its slice ids there}}."""
    where: dict[str, dict[int, list[str]]] = {}
    for k, ids in enumerate(folds):
        for slice_id in ids:
            where.setdefault(patient_of(slice_id), {}).setdefault(k, []).append(slice_id)
    return {p: folds_of for p, folds_of in sorted(where.items()) if len(folds_of) > 1}


def grouped_from(folds: Sequence[Sequence[str]], patient_of) -> list[list[str]]:
    """The folds with every leaking patient moved whole into the fold holding most of its slices (ties: lower fold).

    Every other slice stays where it was, so the grouped split differs from the paper's only where it must.
    """
    target = {p: max(sorted(f), key=lambda k: len(f[k])) for p, f in fold_leaks(folds, patient_of).items()}
    out: list[list[str]] = [[] for _ in folds]
    for k, ids in enumerate(folds):
        for slice_id in ids:
            out[target.get(patient_of(slice_id), k)].append(slice_id)
    return [sorted(ids) for ids in out]

