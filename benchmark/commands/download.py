"""Download a dataset's raw files (resumable, checksum-verified) into <root>/downloads/<NAME>/.

Stable direct links are known for P20 (Zenodo record 3757476: COVID-19-CT-Seg_20cases.zip and
Infection_Mask.zip, md5 read from the record, CC BY-NC-SA 4.0). For the others, or for the
MiniSeg authors' datasets.zip, pass --url (and --md5 when the source publishes one):
  CT100, P9  MedSeg, http://medicalsegmentation.com/covid19/ (tr_im/tr_mask, rp_im/rp_msk)
  P1110      MosMedData, https://mosmed.ai/datasets/covid19_1110/ (CC BY-NC-ND 3.0)

An interrupted download resumes from the .part file (HTTP Range). The sha256 of what
arrived is recorded in <file>.json either way. Archives are extracted beside the file into
<archive name>/; a member that would land outside it (absolute path, '..', link) is refused.
Then lay the data out with `prepare` (the command is printed).

Examples:
  run_benchmark.py download --dataset P20
  run_benchmark.py download --dataset CT100 --url https://example.org/datasets.zip --md5 0123...
"""
from __future__ import annotations

import argparse
import json
import re

from ..cli import add_data_root, add_json


def md5_hex(text: str) -> str:
    """Validate a 32-digit hex md5."""
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise argparse.ArgumentTypeError(f"expected 32 hex digits, got {text!r}")
    return text.lower()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="CT100, P9, P20 or P1110 (COVID-19- prefix optional)")
    add_data_root(parser)
    parser.add_argument("--url", default=None, help="download this URL instead of the dataset's known links")
    parser.add_argument("--md5", type=md5_hex, default=None, help="expected md5 of the file (with --url)")
    parser.add_argument("--no-extract", action="store_true", help="keep archives packed")
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..datasets.download import download_dataset
    from ..datasets.specs import get_spec
    from ..storage import storage_guard

    with storage_guard(args.data_root, "--data-root"):  # a full or read-only data root: one line, its free space
        folder, records = download_dataset(args.dataset, args.data_root, url=args.url, md5=args.md5,
                                           extract=not args.no_extract)
    if args.json:
        print(json.dumps({"folder": str(folder), "files": [asdict(r) for r in records]}, indent=2))
        return 0
    for record in records:
        check = f"md5 verified ({record.md5})" if record.verified else "no published md5 to check"
        print(f"{record.path}: {record.size_bytes:,} bytes, {check}, sha256 {record.sha256}")
    name = get_spec(args.dataset).name
    print(f"next: run_benchmark.py prepare --dataset {name} --source {folder} --data-root {args.data_root}")
    return 0
