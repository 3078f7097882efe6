"""List the registered models: name, the paper's row, family, parameter count.

`--paper` lists the 32 rows of the paper's Table 4 instead, with our registered model
for each row and our parameter count beside the paper's.

Examples:
  run_benchmark.py list
  run_benchmark.py list --models 'smp-*' --json
  run_benchmark.py list --paper
"""
from __future__ import annotations

import argparse
import json

from ..cli import add_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=None, help="fnmatch pattern(s), comma-separated (default: all)")
    parser.add_argument("--paper", action="store_true", help="one line per row of the paper's Table 4")
    parser.add_argument("--no-params", action="store_true", help="skip building models to count parameters (fast)")
    add_json(parser)


def count_params(name: str) -> int:
    """Parameters of the training model (auxiliary heads included: the paper's #Param)."""
    from models import create_model

    from ..profiling.params import count_params as count

    return count(create_model(name))


def registry_rows(pattern: str | None, with_params: bool) -> list[dict]:
    from models import get_model_info, list_models

    out = []
    for name in list_models(pattern):
        info = get_model_info(name)
        row = {"model": name, "paper_name": info.paper_name, "family": info.family, "source": info.source}
        if with_params:
            row["params"] = count_params(name)
        out.append(row)
    return out


def table4_rows(with_params: bool) -> list[dict]:
    """Table 4's rows in the paper's order, each with the registered model that stands for it."""
    from ..paper import registered_rows, table4

    by_row = registered_rows()
    out = []
    for rec in table4().to_dict("records"):
        name = by_row.get(rec["method"])
        row = {
            "paper_row": rec["method"],
            "backbone": rec["backbone"] if isinstance(rec["backbone"], str) else None,
            "model": name,
            "params_paper": int(rec["params"]),
            "gmacs_paper": float(rec["gflops"]),
        }
        if with_params:
            row["params"] = count_params(name) if name else None
            row["params_ratio"] = round(row["params"] / row["params_paper"], 3) if name else None
        out.append(row)
    return out


def run(args: argparse.Namespace) -> int:
    with_params = not args.no_params
    if args.paper:
        table = table4_rows(with_params)
        columns = ["paper_row", "backbone", "model", "params_paper"] + (["params", "params_ratio"] if with_params else [])
        columns.append("gmacs_paper")
    else:
        table = registry_rows(args.models, with_params)
        columns = ["model", "paper_name", "family", "source"] + (["params"] if with_params else [])
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    from .._format import print_table

    print_table(table, columns)
    return 0
