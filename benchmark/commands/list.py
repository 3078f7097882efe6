"""List the registered models: name, the paper's row, family, parameter count.

Examples:
  run_benchmark.py list
  run_benchmark.py list --models 'smp-*' --json
"""
from __future__ import annotations

import argparse
import json

from ..cli import add_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=None, help="fnmatch pattern(s), comma-separated (default: all)")
    parser.add_argument("--no-params", action="store_true", help="skip building models to count parameters (fast)")
    add_json(parser)


def count_params(name: str) -> int:
    """Parameters of the training model (auxiliary heads included: the paper's #Param)."""
    from models import create_model

    return sum(p.numel() for p in create_model(name).parameters())


def rows(pattern: str | None, with_params: bool) -> list[dict]:
    from models import get_model_info, list_models

    out = []
    for name in list_models(pattern):
        info = get_model_info(name)
        row = {"model": name, "paper_name": info.paper_name, "family": info.family, "source": info.source}
        if with_params:
            row["params"] = count_params(name)
        out.append(row)
    return out


def run(args: argparse.Namespace) -> int:
    table = rows(args.models, not args.no_params)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    from .._format import print_table

    print_table(table, ["model", "paper_name", "family", "source"] + ([] if args.no_params else ["params"]))
    return 0
