"""Regenerate the reports (tables .md/.csv/.tex, figures .png, index.html) from a results folder.

Reads every record under --results (runs/<dataset>/<model>/fold<k>/record.json,
eval/<dataset>/<label>.json, profile/<device>/<model>.json) and writes into --out:
  tables/table4_efficiency.*   params, GMACs, img/s per measured device beside the paper's Table 4
  tables/table5_miniseg.*      MiniSeg's Table 5 rows on every dataset, compact (ours and the paper's)
  tables/table5_accuracy.*     mIoU, SEN, SPC, DSC, HD (paper policy, mean ± std over folds)
                               beside the paper's Table 5, with the difference; best marked
  tables/table5_strict.*       the same rows under the strict policy
  tables/per_fold.*            every fold under both policies
  tables/deployment.*          model x backend x precision: latency, speed-up over fp32 eager PyTorch,
                               agreement, DSC and its change (only where profile --backends or
                               evaluate --backend records exist)
  figures/*.png                DSC vs GMACs, throughput vs params, per-fold DSC, training curves
  index.html                   all of the above on one static page (no external resources)
A row without results is shown as missing (—), never as zero. The output is deterministic:
the committed reports/ equals what this command makes from the committed results/.
A dataset of your own gets its Table 5 block without the paper's columns; its statistics
(CIs over its patients, significance) need its dataset.json, found under --data-root.

EXAMPLES
  run_benchmark.py report
  run_benchmark.py report --results demo-output/results --out demo-output/reports
  run_benchmark.py report --json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cli import add_data_root, add_json, add_results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_results(parser)
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default: reports/)")
    add_data_root(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from ..reporting import write_report

    report = write_report(args.results, args.out, args.data_root)
    if args.json:
        print(json.dumps({"index": str(report.index), "files": [str(p) for p in report.files]}, indent=2))
        return 0
    res = report.results
    print(f"read {res.n_run_records} run records, {res.n_eval_records} evaluation records, "
          f"{len(res.profiles)} profiles; wrote {len(report.files)} files")
    print(f"report: {report.index}")
    return 0
