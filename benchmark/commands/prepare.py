"""Convert a raw dataset download into the benchmark's layout (<root>/COVID-19-<NAME>/tr_im, tr_mask).

Sources (--source is a folder searched recursively, or an archive):
  CT100  MedSeg "COVID-19 CT segmentation dataset" (http://medicalsegmentation.com/covid19/):
         tr_im.nii.gz + tr_mask.nii.gz; all 100 slices, ids tr_im_XXXX (masks tr_mask_XXXX)
  P9     MedSeg Radiopaedia volumes: rp_im/<n>.nii.gz + rp_msk/<n>.nii.gz; ids <n>_<z:04d>
  P20    Zenodo record 3757476 (Ma et al. 2020): COVID-19-CT-Seg_20cases/ + Infection_Mask/;
         ids <case>_<z:04d>, e.g. coronacases_001_0123 (`download --dataset P20` fetches both)
  P1110  MosMedData COVID19_1110 (https://mosmed.ai/datasets/covid19_1110/): studies/CT-*/study_XXXX.nii.gz
         + masks/study_XXXX_mask.nii.gz (0255..0304); ids study_XXXX_<z:04d>
  any    the MiniSeg authors' datasets.zip (or its extracted folder): COVID-19-<NAME>/ copied as it is

Slice z of a volume is volume[:, :, z].T (nibabel axes); P9, P20 and P1110 keep only slices
whose mask has infection, as the paper. Images: HU clipped to the lung window --window
(default -1250,250 HU) and mapped linearly to 0..255; a volume already in 0..255 (the
Radiopaedia cases of P20) is kept as it is. Masks: 0/255 PNG. The result is written into a
temporary folder inside the data root and renamed at the end; prepare.json records how.

A dataset of your own (--dataset NAME, any name that is not built in) comes from a folder:
  PNG    SOURCE/images/<id>.png (8-bit grey slices) + SOURCE/masks/<id>.png (same stems; 0 and
         one foreground value, or --labels). The patient of a slice is its id without the trailing
         _<number> (p07_0012 -> p07), or what --patient-regex (group `patient`) reads from the id,
         or the `patient` column of --patients CSV (columns id,patient). Empty masks are kept.
  NIfTI  SOURCE/images/<case>.nii.gz + SOURCE/masks/<case>.nii.gz (same names; .nii too); slice z
         along --slice-axis (default 2: volume[:, :, z].T, as above) becomes <case>_<z:04d>, HU
         through --window; one patient per case unless --patients (id = case name) or
         --patient-regex says otherwise. Slices with an empty mask are dropped, as the paper does
         (--empty-slices keep keeps them). Each volume's spacing and affine go into dataset.json.
It is laid out as <data root>/<NAME>/ (tr_im/, tr_mask/) with dataset.json (source, --licence,
counts, the patient of each slice, empty masks, duplicate slices) and splits.json: a 5-fold
split with every patient in one fold, drawn once with --seed (default 0). Preparing again
(--force) keeps splits.json byte for byte while the slices and patients are the same;
--resplit draws a new one. Fewer than 5 patients is refused. Checks: every image against its
mask (size, labels), one slice size for all (or --resize-px), identical slices reported.
After that every command takes it: train/evaluate/folds --dataset(s) NAME, compare and report
(with --data-root), predict --dataset NAME --fold K.

Examples:
  run_benchmark.py prepare --dataset MyHospital --source ~/ct-export --licence "internal use only"
  run_benchmark.py prepare --dataset MyScans --source ~/volumes --slice-axis 2 --window=-1000,400 --seed 3
  run_benchmark.py prepare --dataset P20 --source datasets/downloads/P20
  run_benchmark.py prepare --dataset P1110 --source ~/COVID19_1110 --data-root /data/miniseg
  run_benchmark.py prepare --dataset P1110 --masks-only --source ../shared/data/COVID-19-P1110
  run_benchmark.py prepare --dataset CT100 --source ~/Downloads/datasets.zip
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import add_data_root, add_json


def parse_window(text: str) -> tuple[float, float]:
    """'LOW,HIGH' in HU -> (low, high)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH in HU (e.g. -1250,250), got {text!r}") from None
    if low >= high:
        raise argparse.ArgumentTypeError(f"window {text!r}: LOW must be below HIGH")
    return low, high


def parse_labels(text: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True,
                        help="CT100, P9, P20 or P1110 (COVID-19- prefix optional), or a name of your own")
    parser.add_argument("--source", type=Path, required=True,
                        help="raw download: a folder (searched recursively) or archive; yours: a folder with "
                        "images/ and masks/")
    add_data_root(parser)
    parser.add_argument("--masks-only", action="store_true", help="lay out ground-truth masks only (enough to evaluate maps)")
    parser.add_argument(
        "--window", type=parse_window, default=None, metavar="LOW,HIGH",
        help="CT intensity window in HU mapped to 0..255 (default: lung window -1250,250; write --window=-1000,400)",
    )
    parser.add_argument(
        "--labels", type=parse_labels, default=None, metavar="N,M",
        help="mask values that count as infection (default: every non-zero value)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing dataset folder")
    own = parser.add_argument_group("a dataset of your own")
    own.add_argument("--layout", choices=("auto", "png", "nifti"), default=None,
                     help="what SOURCE/images/ holds (default: auto, from the files)")
    own.add_argument("--patient-regex", metavar="REGEX", default=None,
                     help="reads the patient from a slice id (PNG) or case name (NIfTI): group 'patient', else "
                     r"the first group (PNG default: '(?P<patient>.+)_\d+$')")
    own.add_argument("--patients", type=Path, metavar="CSV", default=None,
                     help="CSV with columns id,patient (id: a PNG stem or a NIfTI case name)")
    own.add_argument("--slice-axis", type=int, choices=(0, 1, 2), default=None,
                     help="NIfTI: the axis slices are cut along (default 2)")
    own.add_argument("--empty-slices", choices=("keep", "drop"), default=None,
                     help="slices whose mask is empty (default: drop for NIfTI volumes, keep for PNG slices)")
    own.add_argument("--resize-px", type=int, metavar="N", default=None,
                     help="bring every slice to N x N (images bilinear, masks nearest); needed when sizes differ")
    own.add_argument("--seed", type=int, default=None,
                     help="seed of the patient-grouped 5-fold split (default 0; a kept split keeps its own)")
    own.add_argument("--resplit", action="store_true", help="draw a new split even where an earlier one still fits")
    own.add_argument("--licence", metavar="TEXT", default=None, help="licence text recorded in dataset.json")
    add_json(parser)


OWN_OPTIONS = ("layout", "patient_regex", "patients", "slice_axis", "empty_slices", "resize_px", "seed", "resplit",
               "licence")


def run(args: argparse.Namespace) -> int:
    from ..datasets.prepare import DEFAULT_WINDOW_HU, prepare_dataset
    from ..datasets.specs import builtin_name
    from ..storage import storage_guard

    if builtin_name(args.dataset) is None:
        return run_own(args)
    given = [f"--{o.replace('_', '-')}" for o in OWN_OPTIONS if getattr(args, o) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: for a dataset of your own; {args.dataset} is built in")
    with storage_guard(args.data_root, "--data-root"):  # a full or read-only data root: one line, its free space
        result = prepare_dataset(
            args.dataset, args.source, args.data_root, masks_only=args.masks_only,
            window_hu=args.window or DEFAULT_WINDOW_HU, labels=args.labels, force=args.force,
        )
    summary = {
        "path": str(result.path), "n_slices": result.n_slices, "slices_per_case": result.slices_per_case,
        "missing_fold_ids": result.missing_fold_ids,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{result.path}: {result.n_slices} slices from {len(result.slices_per_case)} case(s)")
    if result.missing_fold_ids:
        shown = ", ".join(result.missing_fold_ids[:5])
        print(f"warning: {len(result.missing_fold_ids)} slice(s) of the paper's folds did not arrive, e.g. {shown}",
              file=sys.stderr)
    return 0


def run_own(args: argparse.Namespace) -> int:
    """prepare for a dataset of your own (benchmark.datasets.prepare_user)."""
    from ..datasets.prepare import DEFAULT_WINDOW_HU
    from ..datasets.prepare_user import OwnOptions, prepare_own
    from ..storage import storage_guard

    if args.masks_only:
        raise ValueError("--masks-only is for the built-in datasets; a dataset of your own needs its images")
    options = OwnOptions(
        layout=args.layout or "auto", patient_regex=args.patient_regex, patients_csv=args.patients,
        slice_axis=2 if args.slice_axis is None else args.slice_axis, window_hu=args.window or DEFAULT_WINDOW_HU,
        labels=args.labels, empty_slices=args.empty_slices, seed=args.seed, resplit=args.resplit,
        licence=args.licence, resize_px=args.resize_px, force=args.force,
    )
    with storage_guard(args.data_root, "--data-root"):
        result = prepare_own(args.dataset, args.source, args.data_root, options)
    summary = {"path": str(result.path), "layout": result.layout, "n_slices": result.n_slices,
               "n_patients": result.n_patients, "fold_sizes": result.fold_sizes, "seed": result.seed,
               "split_kept": result.split_reused, "n_empty_masks": len(result.empty_masks),
               "n_dropped_empty": result.dropped_empty, "duplicates": result.duplicates}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        split = "kept from the earlier prepare" if result.split_reused else "new"
        sizes = "/".join(map(str, result.fold_sizes))
        print(f"{result.path}: {result.n_slices} slices of {result.n_patients} patients ({result.layout}); "
              f"5 patient-grouped folds of {sizes} slices, seed {result.seed} ({split})")
        print(f"empty masks: {len(result.empty_masks)} kept (listed in dataset.json), {result.dropped_empty} slice(s) "
              "with an empty mask left out (--empty-slices)")
    if result.duplicates:
        shown = "; ".join(", ".join(group) for group in result.duplicates[:3])
        print(f"warning: {len(result.duplicates)} group(s) of identical slices (listed in dataset.json), e.g. {shown}",
              file=sys.stderr)
    return 0
