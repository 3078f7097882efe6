#!/usr/bin/env python3
"""Write benchmark/datasets/folds/<NAME>.json once: the paper's folds read off the release's SegMaps.

The authors' released prediction maps `SegMaps/COVID-19-<NAME>/CrossVal{k}/<slice id>.png`
name exactly the test slices of fold k; list k-1 of the JSON is that fold. The synthetic
dataset has no published folds: patient-level folds from a fixed seed.

Usage: .venv/bin/python scripts/make_folds.py [--segmaps ../shared/data/miniseg-release/SegMaps]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmark.datasets.folds import FOLD_SCHEMA, N_FOLDS, fold_file_name, patient_folds  # noqa: E402
from benchmark.datasets.specs import DATASET_NAMES, get_spec  # noqa: E402
from benchmark.datasets.synthetic import SEED, slice_ids  # noqa: E402
from benchmark.io import atomic_write_json  # noqa: E402

FOLDS_DIR = REPO_ROOT / "benchmark" / "datasets" / "folds"
DEFAULT_SEGMAPS = REPO_ROOT.parent / "shared" / "data" / "miniseg-release" / "SegMaps"


def segmaps_folds(segmaps: Path, folder: str) -> list[list[str]]:
    """Sorted slice ids of SegMaps/<folder>/CrossVal1..5."""
    folds = []
    for k in range(1, N_FOLDS + 1):
        fold_dir = segmaps / folder / f"CrossVal{k}"
        if not fold_dir.is_dir():
            raise FileNotFoundError(f"{fold_dir}: SegMaps fold folder not found")
        folds.append(sorted(p.stem for p in fold_dir.glob("*.png")))
    return folds


def check(name: str, folds: list[list[str]]) -> None:
    """Refuse folds that disagree with the spec's per-fold counts or ids, or that overlap."""
    spec = get_spec(name)
    sizes = tuple(len(f) for f in folds)
    if sizes != spec.fold_sizes:
        raise ValueError(f"{name}: fold sizes {sizes} differ from the spec's {spec.fold_sizes}")
    every = [i for fold in folds for i in fold]
    if len(set(every)) != len(every):
        raise ValueError(f"{name}: a slice id is in more than one fold")
    bad = [i for i in every if not spec.is_valid_id(i)]
    if bad:
        raise ValueError(f"{name}: ids not matching {spec.id_regex}: {bad[:5]}")


def write(name: str, folds: list[list[str]], source: str) -> Path:
    """Write one fold file."""
    check(name, folds)
    spec = get_spec(name)
    path = FOLDS_DIR / fold_file_name(spec)
    atomic_write_json(path, {"schema": FOLD_SCHEMA, "dataset": spec.folder, "source": source, "folds": folds})
    path.chmod(0o644)  # package data: readable by everyone, like the sources
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmaps", type=Path, default=DEFAULT_SEGMAPS, help="the release's SegMaps folder")
    args = parser.parse_args()
    for name in DATASET_NAMES:
        if name == "synthetic":
            folds = patient_folds(slice_ids(), seed=SEED)
            source = f"patient-level folds, patients shuffled with numpy default_rng({SEED}), dealt round-robin"
        else:
            folds = segmaps_folds(args.segmaps, get_spec(name).folder)
            source = f"file names of the MiniSeg release's SegMaps/{get_spec(name).folder}/CrossVal1..5"
        print(f"{name}: {[len(f) for f in folds]} -> {write(name, folds, source)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
