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

Examples:
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
    parser.add_argument("--dataset", required=True, help="CT100, P9, P20 or P1110 (COVID-19- prefix optional)")
    parser.add_argument("--source", type=Path, required=True, help="raw download: a folder (searched recursively) or archive")
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
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from ..datasets.prepare import DEFAULT_WINDOW_HU, prepare_dataset

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
