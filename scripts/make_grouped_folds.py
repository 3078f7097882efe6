#!/usr/bin/env python3
"""Write benchmark/datasets/folds/<NAME>.grouped.json once: the paper's folds made patient-grouped.

Each patient whose slices the paper's folds spread over several folds (P20's
radiopaedia_10_85902_1 and _3, one patient) is moved whole into the fold that held most of
its slices; every other slice keeps its fold. Patients come from folds/<NAME>.patients.json.

Usage: .venv/bin/python scripts/make_grouped_folds.py
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmark.datasets.folds import (  # noqa: E402
    FOLD_SCHEMA, fold_file_name, fold_leaks, get_folds, grouped_from, patient_map,
)
from benchmark.datasets.specs import DATASET_NAMES, get_spec  # noqa: E402
from benchmark.io import atomic_write_json  # noqa: E402

FOLDS_DIR = REPO_ROOT / "benchmark" / "datasets" / "folds"


def write(name: str) -> Path:
    """Write one grouped fold file and return its path."""
    spec, patients = get_spec(name), patient_map(name)
    paper = get_folds(name)
    leaks = fold_leaks(paper, patients.patient_of)
    folds = grouped_from(paper, patients.patient_of)
    assert not fold_leaks(folds, patients.patient_of) and sorted(sum(folds, [])) == sorted(sum(paper, []))
    moved = ", ".join(f"{p} -> fold {max(sorted(f), key=lambda k: len(f[k]))}" for p, f in leaks.items()) or "none"
    source = (f"the paper's folds ({fold_file_name(spec)}) with every patient of {Path(patients.path).name} moved "
              f"whole into the fold holding most of its slices (moved: {moved})")
    path = FOLDS_DIR / fold_file_name(spec, "grouped")
    atomic_write_json(path, {"schema": FOLD_SCHEMA, "dataset": spec.folder, "split": "grouped", "source": source,
                             "folds": folds})
    path.chmod(0o644)
    return path


def main() -> int:
    for name in DATASET_NAMES:
        print(f"{name}: {write(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
