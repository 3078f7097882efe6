"""`prepare` for a dataset of your own: PNG slices or NIfTI volumes in a folder -> the benchmark's layout.

Layouts under --source (the same two folders either way; same stems pair an image with its mask):
  PNG    images/<id>.png (8-bit grey CT slices) + masks/<id>.png (0 and one foreground value)
  NIfTI  images/<case>.nii.gz + masks/<case>.nii.gz (or .nii); slice z along --slice-axis becomes
         slice id <case>_<z:04d>, HU mapped to 0..255 through --window as the built-in prepare does

Written into `<data root>/<NAME>/` (a temporary folder renamed at the end, so an interruption or an
error leaves nothing half-written): tr_im/ and tr_mask/ as the built-in datasets, dataset.json (name,
source, licence, counts, the patient of every slice, spacing of every volume, empty masks and duplicate
slices found) and splits.json (5 folds, patient-grouped, drawn once with --seed; a later prepare of the
same slices keeps it byte for byte, and only --resplit draws another).
"""
from __future__ import annotations

import csv
import hashlib
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import BadValue, InputMismatch
from ..io import atomic_write_json, read_json
from .folds import N_FOLDS, SPLITS, patient_folds, split_problems
from .layout import IMAGE_DIR, MASK_DIR, PNG
from .loading import _resize, mask_png_values, one_foreground, read_image_png
from .prepare import DEFAULT_WINDOW_HU, _nifti_stem, _replace, _save_png, read_volume, to_uint8
from .specs import builtin_name
from .user import (DATASET_FILE, DATASET_SCHEMA, NAME_PATTERN, SPLITS_FILE, SPLITS_SCHEMA, dataset_folder,
                   split_folds)
from .volumes import DEFAULT_SLICE_AXIS, check_axis, get_slice, nifti_image, pixel_spacing, volume_window

SOURCE_IMAGES, SOURCE_MASKS = "images", "masks"
LAYOUTS = ("auto", "png", "nifti")
EMPTY_SLICES = ("keep", "drop")
#: PNG slices: the patient is the id without its trailing _<number> (p07_0012 -> p07), as in the built-ins' ids.
DEFAULT_PATIENT_REGEX = r"(?P<patient>.+)_\d+$"
DEFAULT_SEED = 0
RESERVED_NAMES = ("downloads",)  # `download` keeps archives in <root>/downloads/


def check_name(name: str) -> str:
    """`name` when it can name a dataset of your own; else a BadValue saying why."""
    if builtin_name(name) is not None:
        raise BadValue(f"--dataset {name}: that is a built-in dataset; pick another name for a dataset of your own")
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadValue(f"--dataset {name!r}: a dataset name is letters, digits, '.', '_' or '-' (it names a folder)")
    if name.lower() in RESERVED_NAMES or any(name.endswith(f"-{split}") for split in SPLITS[1:]):
        raise BadValue(f"--dataset {name}: reserved (it would clash with {name.lower()!r} in the data root or "
                       "results folders); pick another name")
    return name


@dataclass(frozen=True)
class OwnOptions:
    """How to read a source folder and what to write (the command's options)."""

    layout: str = "auto"
    patient_regex: str | None = None
    patients_csv: Path | None = None
    slice_axis: int = DEFAULT_SLICE_AXIS
    window_hu: tuple[float, float] = DEFAULT_WINDOW_HU
    labels: tuple[int, ...] | None = None
    empty_slices: str | None = None  # keep | drop; None: drop for NIfTI volumes (as the paper), keep for PNG slices
    seed: int | None = None  # None: the existing split's seed, or DEFAULT_SEED for a new one
    resplit: bool = False
    licence: str | None = None
    resize_px: int | None = None
    force: bool = False


@dataclass(frozen=True)
class SourcePair:
    """One image file and its mask file; `unit` is the slice id (PNG) or the case name (NIfTI)."""

    unit: str
    image: Path
    mask: Path


@dataclass
class OwnResult:
    """What `prepare_own` wrote and found."""

    path: Path
    layout: str
    n_slices: int
    n_patients: int
    fold_sizes: list[int]
    seed: int
    split_reused: bool
    empty_masks: list[str] = field(default_factory=list)
    dropped_empty: int = 0
    duplicates: list[list[str]] = field(default_factory=list)


@dataclass
class _Slice:
    """One slice on its way to the layout: ids, pixels, and where it came from (for messages)."""

    slice_id: str
    patient: str
    image: np.ndarray
    mask: np.ndarray
    origin: str
    volume: str | None = None
    z: int | None = None


# --- the source folder -----------------------------------------------------------------------------

def _files(folder: Path, layout: str) -> dict[str, Path]:
    """unit -> file of one source folder (PNG: stem; NIfTI: name without .nii/.nii.gz)."""
    out: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        unit = path.stem if layout == "png" and path.suffix.lower() == PNG else (
            _nifti_stem(path) if layout == "nifti" else None)
        if unit is None:
            continue
        if not re.fullmatch(NAME_PATTERN, unit):
            raise BadValue(f"{path}: file name {unit!r} cannot be an id (letters, digits, '.', '_', '-'); rename it")
        if unit in out:
            raise BadValue(f"two files for {unit!r}: {out[unit]} and {path}")
        out[unit] = path
    return out


def detect_layout(source: Path, layout: str = "auto") -> str:
    """'png' or 'nifti': what source/images/ holds (or `layout` when given and present)."""
    images = source / SOURCE_IMAGES
    if not images.is_dir() or not (source / SOURCE_MASKS).is_dir():
        raise FileNotFoundError(f"{source}: expected {SOURCE_IMAGES}/ and {SOURCE_MASKS}/ folders (PNG slices or "
                                "NIfTI volumes with the same names; see `prepare --help`)")
    found = [kind for kind in ("png", "nifti") if _files(images, kind)]
    if layout != "auto":
        found = [kind for kind in found if kind == layout]
    if len(found) != 1:
        what = "both PNG and NIfTI files: pass --layout png or nifti" if len(found) > 1 else (
            f"no {'PNG or NIfTI' if layout == 'auto' else layout} files")
        raise BadValue(f"{images}: {what}")
    return found[0]


def find_pairs(source: Path, layout: str) -> list[SourcePair]:
    """Every image of source/images/ with its mask of source/masks/ (same name); one without the other is named."""
    images, masks = _files(source / SOURCE_IMAGES, layout), _files(source / SOURCE_MASKS, layout)
    for unit, path in images.items():
        if unit not in masks:
            raise FileNotFoundError(f"{path}: no mask for it ({source / SOURCE_MASKS}/ has no {path.name})")
    for unit, path in masks.items():
        if unit not in images:
            raise FileNotFoundError(f"{path}: a mask without an image ({source / SOURCE_IMAGES}/ has no {path.name})")
    return [SourcePair(unit, images[unit], masks[unit]) for unit in sorted(images)]


# --- patients --------------------------------------------------------------------------------------

def read_patients_csv(path: Path) -> dict[str, str]:
    """A CSV with columns `id` and `patient` (id: a PNG slice's stem, or a NIfTI case name) -> {id: patient}."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise BadValue(f"{path}: unreadable patients CSV ({err})") from None
    if not rows or not {"id", "patient"} <= set(rows[0]):
        raise BadValue(f"{path}: expected a header with columns 'id' and 'patient'")
    out: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        unit, patient = (row.get("id") or "").strip(), (row.get("patient") or "").strip()
        if not unit or not patient:
            raise BadValue(f"{path}:{line}: empty id or patient")
        if out.setdefault(unit, patient) != patient:
            raise BadValue(f"{path}:{line}: {unit!r} given two patients, {out[unit]!r} and {patient!r}")
    return out


def _patient_from_regex(pattern: re.Pattern, unit: str, where: Path) -> str:
    """The patient a regex reads from an id: its `patient` group, else its first group, else the whole match."""
    match = pattern.match(unit)
    if match is None:
        raise BadValue(f"{where}: {unit!r} does not match the patient regex {pattern.pattern!r}; pass "
                       "--patient-regex or --patients CSV")
    groups = match.groupdict()
    patient = groups["patient"] if "patient" in groups else (match.group(1) if pattern.groups else match.group(0))
    if not patient:
        raise BadValue(f"{where}: the patient regex {pattern.pattern!r} reads an empty patient from {unit!r}")
    return patient


def patients_of(pairs: list[SourcePair], layout: str, options: OwnOptions) -> tuple[dict[str, str], str]:
    """unit -> patient, and how it was found (recorded in dataset.json)."""
    if options.patients_csv is not None:
        table = read_patients_csv(options.patients_csv)
        missing = next((p for p in pairs if p.unit not in table), None)
        if missing is not None:
            raise BadValue(f"{options.patients_csv}: no row for {missing.unit!r} ({missing.image})")
        return {p.unit: table[p.unit] for p in pairs}, f"CSV {options.patients_csv}"
    if options.patient_regex is None and layout == "nifti":
        return {p.unit: p.unit for p in pairs}, "one patient per volume (the case name)"
    text = options.patient_regex or DEFAULT_PATIENT_REGEX
    try:
        pattern = re.compile(text)
    except re.error as err:
        raise BadValue(f"--patient-regex {text!r}: not a regular expression ({err})") from None
    return {p.unit: _patient_from_regex(pattern, p.unit, p.image) for p in pairs}, f"regex {text} on the ids"


def _require_patients(patients: set[str], where: Path) -> None:
    """A patient-grouped 5-fold split needs 5 patients at least."""
    if len(patients) < N_FOLDS:
        shown = ", ".join(sorted(patients)[:N_FOLDS]) or "none"
        raise BadValue(f"{where}: {len(patients)} patient(s) ({shown}); a patient-grouped {N_FOLDS}-fold split needs "
                       f"at least {N_FOLDS}, with no patient in two folds (check --patient-regex or --patients)")


# --- masks and slices -------------------------------------------------------------------------------

def infection(values: np.ndarray, labels: tuple[int, ...] | None, where: str) -> np.ndarray:
    """Boolean infection mask: `labels` when given; else 0 and exactly one other value (anything else is an error)."""
    if not np.issubdtype(values.dtype, np.integer) and not np.array_equal(values, np.round(values)):
        raise BadValue(f"{where}: mask has non-integer values; expected labels (0 = background)")
    if labels is not None:
        return np.isin(values, labels)
    return one_foreground(values, where, " (pass --labels N,M to say which values are infection)")


def png_slices(pairs: list[SourcePair], patients: dict[str, str], options: OwnOptions) -> Iterator[_Slice]:
    """PNG pairs as slices (image vs mask checked: size and labels)."""
    for pair in pairs:
        image = read_image_png(pair.image)
        mask = infection(mask_png_values(pair.mask), options.labels, str(pair.mask))
        if image.shape != mask.shape:
            raise InputMismatch(f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but image {pair.image} is "
                                f"{image.shape[1]}x{image.shape[0]}")
        yield _Slice(pair.unit, patients[pair.unit], image, mask, str(pair.image))


def volume_info(pair: SourcePair, axis: int) -> dict[str, Any]:
    """What dataset.json keeps of one volume: files, shape, spacing, affine; image and mask geometry must agree."""
    image, mask = nifti_image(pair.image), nifti_image(pair.mask)
    if image.shape[:3] != mask.shape[:3]:
        raise InputMismatch(f"{pair.mask}: mask volume is {mask.shape} but image {pair.image} is {image.shape}")
    if not np.allclose(image.affine, mask.affine, atol=1e-3):
        raise InputMismatch(f"{pair.mask}: its affine (orientation, spacing, origin) differs from image {pair.image}'s")
    zooms = tuple(round(float(z), 6) for z in image.header.get_zooms()[:3])
    return {"image": str(pair.image), "mask": str(pair.mask), "shape": [int(n) for n in image.shape[:3]],
            "zooms_mm": list(zooms), "spacing": pixel_spacing(zooms, axis),
            "affine": [[float(v) for v in row] for row in image.affine]}


def nifti_slices(pairs: list[SourcePair], patients: dict[str, str], options: OwnOptions,
                 volumes: dict[str, dict[str, Any]]) -> Iterator[_Slice]:
    """NIfTI pairs as slices along the slice axis (fills `volumes` with each volume's info)."""
    axis = check_axis(options.slice_axis)
    for pair in pairs:
        volumes[pair.unit] = {**volume_info(pair, axis), "patient": patients[pair.unit]}
        image, raw_mask = read_volume(pair.image), read_volume(pair.mask)
        mask = infection(raw_mask, options.labels, str(pair.mask))
        window = volume_window(image, options.window_hu)
        for z in range(image.shape[axis]):
            yield _Slice(f"{pair.unit}_{z:04d}", patients[pair.unit], to_uint8(get_slice(image, axis, z), window),
                         get_slice(mask, axis, z), f"{pair.image} slice {z}", pair.unit, z)


# --- writing ----------------------------------------------------------------------------------------

@dataclass
class _Written:
    """What the slices written so far add up to."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    empty: list[str] = field(default_factory=list)
    dropped: int = 0
    by_content: dict[str, list[str]] = field(default_factory=dict)
    shape: tuple[int, int] | None = None
    first: str = ""


def _write_slice(item: _Slice, out_dir: Path, options: OwnOptions, keep_empty: bool, done: _Written) -> None:
    """Write one slice (resized when asked), after checking its size against the others'."""
    if not item.mask.any():
        if not keep_empty:
            done.dropped += 1
            return
        done.empty.append(item.slice_id)
    image, mask = item.image, item.mask
    if options.resize_px is not None:
        image, mask = _resize(image, options.resize_px, nearest=False), _resize(mask, options.resize_px, nearest=True)
    if done.shape is None:
        done.shape, done.first = image.shape, item.origin
    elif image.shape != done.shape:
        raise InputMismatch(f"{item.origin}: slice is {image.shape[1]}x{image.shape[0]} but {done.first} is "
                            f"{done.shape[1]}x{done.shape[0]}; slices must be one size (pass --resize-px N)")
    _save_png(image, out_dir / IMAGE_DIR / f"{item.slice_id}{PNG}")
    _save_png(mask.astype(np.uint8) * 255, out_dir / MASK_DIR / f"{item.slice_id}{PNG}")
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()
    done.by_content.setdefault(digest, []).append(item.slice_id)
    row: dict[str, Any] = {"patient": item.patient}
    if item.volume is not None:
        row.update({"volume": item.volume, "z": item.z})
    done.rows[item.slice_id] = row


def _write_all(items: Iterator[_Slice], total: int, unit: str, out_dir: Path, options: OwnOptions,
               keep_empty: bool) -> _Written:
    """Write every slice with a progress bar (stderr)."""
    (out_dir / IMAGE_DIR).mkdir(parents=True)
    (out_dir / MASK_DIR).mkdir(parents=True)
    done = _Written()
    with tqdm(total=total, desc="prepare", unit=unit, file=sys.stderr) as bar:
        for item in items:
            _write_slice(item, out_dir, options, keep_empty, done)
            if item.volume is None or item.z == 0:
                bar.update(1)
    return done


# --- the split --------------------------------------------------------------------------------------

def _old_split(target: Path) -> tuple[dict[str, Any], Path] | None:
    """The split file an earlier prepare of this dataset wrote, if any (a damaged one is an error naming it)."""
    path = target / SPLITS_FILE
    if not path.is_file():
        return None
    data = read_json(path)
    split_folds(data, path, "remove it or pass --resplit to draw a new one")
    return data, path


def split_record(name: str, folds: list[list[str]], seed: int) -> dict[str, Any]:
    """splits.json: the folds and how they were drawn (no time stamp: the same draw gives the same bytes)."""
    return {"schema": SPLITS_SCHEMA, "dataset": name, "split": "patient-grouped", "seed": seed,
            "method": "patients shuffled with numpy's default_rng(seed), dealt to the 5 folds in turn; every slice "
                      "of a patient in the patient's fold", "folds": folds}


def choose_split(name: str, rows: dict[str, dict[str, Any]], target: Path, options: OwnOptions
                 ) -> tuple[dict[str, Any], Path | None]:
    """(splits.json content, the earlier file where it is kept): the earlier split where it still fits these
    slices, else a new draw."""
    patient_of = {i: r["patient"] for i, r in rows.items()}
    old = None if options.resplit or not target.exists() else _old_split(target)
    if old is not None:
        data, path = old
        if options.seed is not None and options.seed != data.get("seed"):
            raise BadValue(f"{path}: drawn with seed {data.get('seed')}; --seed {options.seed} would change it: add "
                           "--resplit to draw a new split (runs trained on the old one then no longer match it)")
        problems = split_problems(data["folds"], patient_of)
        if problems:
            raise BadValue(f"{path}: does not fit the slices prepared now ({problems[0]}); add --resplit to draw a "
                           "new split (runs trained on the old one then no longer match it)")
        return data, path
    seed = DEFAULT_SEED if options.seed is None else options.seed
    return split_record(name, patient_folds(patient_of, N_FOLDS, seed), seed), None


# --- the whole preparation ---------------------------------------------------------------------------

def _check_options(options: OwnOptions) -> None:
    if options.layout not in LAYOUTS:
        raise BadValue(f"--layout {options.layout!r}: one of {', '.join(LAYOUTS)}")
    if options.empty_slices not in (None, *EMPTY_SLICES):
        raise BadValue(f"--empty-slices {options.empty_slices!r}: keep or drop")
    if options.window_hu[0] >= options.window_hu[1]:
        raise BadValue(f"--window {options.window_hu}: LOW must be below HIGH")
    if options.resize_px is not None and options.resize_px < 8:
        raise BadValue(f"--resize-px {options.resize_px}: at least 8 pixels")
    check_axis(options.slice_axis)


def _dataset_record(name: str, source: Path, layout: str, how: str, options: OwnOptions, done: _Written,
                    volumes: dict[str, Any], split: dict[str, Any], keep_empty: bool) -> dict[str, Any]:
    """dataset.json."""
    duplicates = [ids for ids in done.by_content.values() if len(ids) > 1]
    record: dict[str, Any] = {
        "schema": DATASET_SCHEMA, "name": name, "title": f"{name}: a dataset of your own ({layout} from {source.name})",
        "source": str(source.resolve()), "layout": layout, "licence": options.licence,
        "n_slices": len(done.rows), "n_patients": len({r["patient"] for r in done.rows.values()}),
        "fold_sizes": [len(f) for f in split["folds"]], "slice_size_px": list(done.shape or ()),
        "resized_to_px": options.resize_px, "empty_slices": "keep" if keep_empty else "drop",
        "n_empty_masks": len(done.empty), "empty_masks": done.empty, "n_dropped_empty": done.dropped,
        "duplicates": duplicates, "labels": list(options.labels) if options.labels else None,
        "patients_from": how, "split_file": SPLITS_FILE,
    }
    if layout == "nifti":
        record.update({"slice_axis": options.slice_axis, "window_hu": list(options.window_hu), "volumes": volumes})
    record["slices"] = done.rows
    return record


def prepare_own(name: str, source: str | Path, data_root: str | Path, options: OwnOptions = OwnOptions()) -> OwnResult:
    """Lay out a dataset of your own from `source` under `data_root`/`name`, with dataset.json and splits.json."""
    check_name(name)
    _check_options(options)
    source, root = Path(source), Path(data_root)
    target = dataset_folder(name, root)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: source folder not found")
    if target.exists() and not options.force:
        raise BadValue(f"{target}: already exists; pass --force to replace it (its splits.json is kept)")
    layout = detect_layout(source, options.layout)
    pairs = find_pairs(source, layout)
    patients, how = patients_of(pairs, layout, options)
    _require_patients(set(patients.values()), source)
    keep_empty = (options.empty_slices or ("drop" if layout == "nifti" else "keep")) == "keep"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    try:
        volumes: dict[str, Any] = {}
        items = png_slices(pairs, patients, options) if layout == "png" else nifti_slices(pairs, patients, options,
                                                                                            volumes)
        done = _write_all(items, len(pairs), "slice" if layout == "png" else "volume", tmp, options, keep_empty)
        _require_patients({r["patient"] for r in done.rows.values()}, source)
        split, kept = choose_split(name, done.rows, target, options)
        record = _dataset_record(name, source, layout, how, options, done, volumes, split, keep_empty)
        if kept is not None:  # the earlier split, byte for byte
            shutil.copyfile(kept, tmp / SPLITS_FILE)
        else:
            atomic_write_json(tmp / SPLITS_FILE, split)
        atomic_write_json(tmp / DATASET_FILE, record)
        _replace(tmp, target, options.force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return OwnResult(target, layout, record["n_slices"], record["n_patients"], record["fold_sizes"], split["seed"],
                     kept is not None, done.empty, done.dropped, record["duplicates"])
