"""Show a dataset's 5-fold split, and check it for patients whose slices fall in more than one fold.

A patient split over folds is in the test fold and in the training set of another fold at
once (leakage): its scores are optimistic. Patients come from the map committed beside the
folds, benchmark/datasets/folds/<NAME>.patients.json (rule, exceptions and their source):
P9, P20, P1110 and synthetic slice ids carry their volume; P20's radiopaedia_10_85902_1 and
_3 are two scans of one patient (the dataset author's statement); CT100's slices carry no
patient id, so each slice is its own unit there.

Splits: paper (default; the release's folds) and grouped (the paper's folds with every
patient moved whole into the fold that held most of its slices; folds/<NAME>.grouped.json).
`train --split grouped` and `evaluate --split grouped` use it. A dataset of your own (laid out
by `prepare --dataset NAME --source DIR`) has one split, patient-grouped when prepare drew it:
<data root>/<NAME>/splits.json, with the patient of every slice in dataset.json beside it.

With --check the exit status is 1 when a patient is found in more than one fold.

EXAMPLES
  run_benchmark.py folds --dataset P20 --check                   # reports radiopaedia_10_85902
  run_benchmark.py folds --dataset P20 --split grouped --check    # clean
  run_benchmark.py folds --dataset P1110 --json
  run_benchmark.py folds --dataset MyHospital --check       # a dataset of your own (its splits.json)
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..cli import add_data_root, add_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True,
                        help="CT100, P9, P20, P1110, synthetic, or a dataset of your own under --data-root")
    add_split(parser)
    parser.add_argument("--check", action="store_true",
                        help="list patients whose slices fall in more than one fold (exit 1 when there are any)")
    add_data_root(parser)
    add_json(parser)


def add_split(parser: argparse.ArgumentParser) -> None:
    """The --split option of folds, train and evaluate."""
    from ..datasets.folds import DEFAULT_SPLIT, SPLITS

    parser.add_argument("--split", choices=SPLITS, default=DEFAULT_SPLIT,
                        help="paper: the release's folds (default); grouped: the paper's folds with no patient "
                        "in more than one fold (benchmark/datasets/folds/<NAME>.grouped.json)")


def fold_rows(folds: list[list[str]], patient_map: Any) -> list[dict[str, Any]]:
    """One row per fold: slices, volumes, patients."""
    rows = []
    for k, ids in enumerate(folds):
        volumes = {patient_map.volume_of(i) for i in ids} - {None}
        rows.append({"fold": k, "release_fold": f"CrossVal{k + 1}", "slices": len(ids),
                     "volumes": len(volumes) or None, "patients": len({patient_map.patient_of(i) for i in ids})})
    return rows


def leak_rows(folds: list[list[str]], patient_map: Any) -> list[dict[str, Any]]:
    """One row per patient found in more than one fold: where its slices (and volumes) are."""
    from ..datasets.folds import fold_leaks

    rows = []
    for patient, where in fold_leaks(folds, patient_map.patient_of).items():
        parts = {str(k): {"slices": len(ids), "volumes": sorted({patient_map.volume_of(i) or i for i in ids})}
                 for k, ids in sorted(where.items())}
        rows.append({"patient": patient, "folds": parts})
    return rows


def _leak_text(row: dict[str, Any]) -> str:
    where = "; ".join(f"fold {k} (CrossVal{int(k) + 1}): {v['slices']} slices of {', '.join(v['volumes'])}"
                      for k, v in row["folds"].items())
    return f"  {row['patient']}: {where}"


def run(args: argparse.Namespace) -> int:
    from .._format import print_table
    from ..datasets import get_folds, get_spec, patient_map
    from ..datasets.specs import builtin_name

    spec = get_spec(args.dataset, args.data_root)
    folds = get_folds(spec.name, args.data_root, split=args.split)
    patients = patient_map(spec.name, args.data_root)
    rows = fold_rows(folds, patients)
    leaks = leak_rows(folds, patients)
    out = {"dataset": spec.name, "split": args.split, "unit": patients.unit, "folds": rows,
           "patient_map": patients.path, "patient_map_source": patients.source}
    if args.check:
        out["patients_in_several_folds"] = leaks
    if args.json:
        print(json.dumps(out, indent=2))
        return 1 if args.check and leaks else 0
    n_patients = len({patients.patient_of(i) for f in folds for i in f})
    split = f"{args.split} split" if builtin_name(spec.name) else "its own split (splits.json)"
    print(f"{spec.name}, {split}: {sum(r['slices'] for r in rows)} slices, {n_patients} "
          f"{'patients' if patients.unit == 'patient' else 'units (slices carry no patient id)'} in {len(folds)} folds")
    print_table(rows, ["fold", "release_fold", "slices", "volumes", "patients"])
    print(f"patient map: {patients.path}\n  source: {patients.source}")
    if not args.check:
        return 0
    if patients.unit == "slice":
        print("check: slices carry no patient id; every slice is its own unit, so no leakage can be seen")
        return 0
    if not leaks:
        print("check: no patient has slices in more than one fold")
        return 0
    print(f"check: {len(leaks)} patient(s) with slices in more than one fold (in a test fold and in its "
          "training set at once):")
    for row in leaks:
        print(_leak_text(row))
    return 1
