"""List the registered models: name, the paper's row, family, parameter count.

`--paper` lists the 32 rows of the paper's Table 4 instead, with our registered model for
each row, counted the way Table 4 was counted (models built on the meta device, no memory):
  params         the row's #Param as printed, ours in the paper's unit beside it (the
                 release's counter: K for MiniSeg, n/1e6 under 1M, n/1,024,000 from 1M), '='
                 where the printed strings are equal
  gflops         the printed GFLOPs, ours by the release's own counter (gflops_paper: conv
                 MACs, BatchNorm/ReLU/pooling elements, Linear weights) on the training model
                 (auxiliary heads run, as the release's models ran them), '=' where equal at
                 two decimals
  counted        'network', or 'backbone' for MobileNet(v2) and ShuffleNet(v2), whose Table 4
                 figures are the backbone alone

Examples:
  run_benchmark.py list
  run_benchmark.py list --models 'smp-*' --json
  run_benchmark.py list --paper
  run_benchmark.py list --paper --models 'miniseg,shufflenet*' --json
"""
from __future__ import annotations

import argparse
import json

from ..cli import add_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=None,
                        help="fnmatch pattern(s), comma-separated (default: all); with --paper, rows of those models")
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
        row = {"model": name, "paper_name": info.paper_name, "family": info.family, "source": info.source,
               "reference": info.reference, "backbone": info.backbone}
        if info.reported_params is not None:  # the model's own paper's figures (post-2021 models)
            row.update(reported_params=info.reported_params, reported_gmacs=info.reported_gmacs,
                       reported_input=info.reported_input)
        if with_params:
            try:
                row["params"] = count_params(name)
            except ImportError as err:  # a model of an optional extra that is not installed (nnU-Net)
                row.update(params=None, note=str(err))
        out.append(row)
    return out


def table4_rows(with_params: bool, pattern: str | None = None) -> list[dict]:
    """Table 4's rows in the paper's order, each with the registered model that stands for it and our counts.

    With `pattern`, only the rows whose registered model matches it."""
    from models import list_models

    from .._format import params_text
    from ..paper import authors_builds, registered_rows, table4

    by_row = registered_rows()
    wanted = set(list_models(pattern)) if pattern else None
    builds = authors_builds().set_index("method")
    out = []
    for rec in table4().to_dict("records"):
        name = by_row.get(rec["method"])
        if wanted is not None and name not in wanted:
            continue
        row = {
            "paper_row": rec["method"],
            "backbone": rec["backbone"] if isinstance(rec["backbone"], str) else None,
            "model": name,
            "params_printed": params_text(rec["params"]),
            "params_authors_build": int(builds.loc[rec["method"], "params"]),
            "gflops_printed": f"{rec['gflops']:.2f}",
        }
        if with_params:
            row.update(our_counts(name, rec["method"]))
        out.append(row)
    return out


def our_counts(name: str | None, paper_row: str) -> dict:
    """Our params (exact and in the paper's unit) and gflops_paper of the part Table 4 counted, with marks."""
    from models import get_model_info

    from ..profiling.paper_flops import measure_registered
    from ..profiling.paper_rows import BACKBONE_NOTE, paper_counts

    if name is None:
        return {"counted": "not registered", "params": None, "params_ours": None, "gflops_ours": None}
    aux_heads = get_model_info(name).has_aux
    counts = measure_registered(name, lambda model: paper_counts(model, paper_row, aux_heads=aux_heads))
    gflops = counts["gflops_paper"]
    return {
        "counted": counts["counted"],
        "params": counts["params"],
        "params_ours": counts["params_paper_unit"],
        "gflops_paper": gflops,
        "gflops_ours": None if gflops is None else f"{gflops:.2f}",
        "note": BACKBONE_NOTE if counts["counted"] == "backbone" else None,
    }


def mark_equal(rows: list[dict]) -> None:
    """'=' in params_eq / gflops_eq where our paper-unit strings equal the printed ones."""
    for row in rows:
        row["params_eq"] = "=" if row.get("params_ours") == row["params_printed"] else ""
        row["gflops_eq"] = "=" if row.get("gflops_ours") == row["gflops_printed"] else ""


def run(args: argparse.Namespace) -> int:
    with_params = not args.no_params
    if args.paper:
        table = table4_rows(with_params, args.models)
        columns = ["paper_row", "backbone", "model", "params_printed"]
        if with_params:
            mark_equal(table)
            columns += ["params_ours", "params_eq", "gflops_printed", "gflops_ours", "gflops_eq", "counted"]
        else:
            columns.append("gflops_printed")
    else:
        table = registry_rows(args.models, with_params)
        columns = ["model", "paper_name", "family", "source"] + (["params"] if with_params else [])
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    from .._format import print_table

    print_table(table, columns)
    if args.paper and with_params:
        print_agreement(table)
    return 0


def print_agreement(rows: list[dict]) -> None:
    """How many rows agree, and what the counted column means."""
    from ..profiling.paper_rows import BACKBONE_NOTE

    params = sum(r["params_eq"] == "=" for r in rows)
    gflops = sum(r["gflops_eq"] == "=" for r in rows)
    print(f"\nequal to the printed figure: params {params}/{len(rows)}, GFLOPs {gflops}/{len(rows)} "
          "(ours: the release's counter at 1x3x512x512, in the paper's units)")
    backbones = [r["paper_row"] for r in rows if r.get("counted") == "backbone"]
    if backbones:
        print(f"{', '.join(backbones)}: {BACKBONE_NOTE}; ours are the backbone's counts too.")
