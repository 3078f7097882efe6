"""Fetch or check the ImageNet weights of pretrained backbones (torchvision's and timm's own caches).

Models that start from ImageNet (the paper's rows initialised so, and variants with an ImageNet
backbone) load their weights from torch.hub's cache ($TORCH_HOME/hub/checkpoints) or the Hugging
Face Hub cache ($HF_HUB_CACHE, default $HF_HOME/hub). This command downloads what is missing; run
it where there is internet, then copy those caches to a machine without. `train` checks the same
before its first job and stops, naming the files, when one can be neither found nor downloaded.

Examples:
  run_benchmark.py weights                                   # every model with an ImageNet backbone
  run_benchmark.py weights --models pspnet-resnet101,infnet-resnet50 --check
  TORCH_HOME=/data/torch run_benchmark.py weights --models 'dfn-*' --json
"""
from __future__ import annotations

import argparse
import json
import sys

from ..cli import add_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="*",
                        help="model names or fnmatch patterns, comma-separated (default: every model with an "
                             "ImageNet backbone; patterns keep only those)")
    parser.add_argument("--check", action="store_true", help="only report what is cached; download nothing")
    add_json(parser)


def selected_models(spec: str) -> list[str]:
    """Named models as given; pattern matches restricted to models with an ImageNet backbone."""
    from models import get_model_info, list_models

    names: list[str] = []
    for item in (p.strip() for p in spec.split(",") if p.strip()):
        if any(ch in item for ch in "*?["):
            matched = [m for m in list_models(item) if get_model_info(m).pretrained_backbone]
        else:
            matched = [get_model_info(item).name]
        names += [m for m in matched if m not in names]
    return names


def model_rows(model: str, download: bool) -> list[dict]:
    """One row per weights file `model` loads with pretrained=True: cached, downloaded or missing (with why)."""
    from models._pretrained import MissingWeightsError, expected_path, fetch, local_path, required_weights

    try:
        refs = required_weights(model)
    except TypeError:  # its builder takes no `pretrained`
        return [_row(model, "-", "none", "", "trains from scratch: no ImageNet backbone")]
    except Exception as err:  # noqa: BLE001 - a model without weights is a row, not a crash
        return [_row(model, "-", "unavailable", "", f"{type(err).__name__}: {err}")]
    if not refs:
        return [_row(model, "-", "none", "", "loads no ImageNet weights through models._pretrained")]
    rows = []
    for ref in refs:
        found = local_path(ref)
        if found is not None:
            rows.append(_row(model, str(ref), "cached", str(found)))
        elif not download:
            rows.append(_row(model, str(ref), "missing", str(expected_path(ref)), "--check: not downloaded"))
        else:
            try:
                rows.append(_row(model, str(ref), "downloaded", str(fetch(ref, model))))
            except MissingWeightsError as err:
                rows.append(_row(model, str(ref), "missing", str(expected_path(ref)), str(err)))
    return rows


def _row(model: str, weights: str, status: str, path: str, reason: str = "") -> dict:
    return {"model": model, "weights": weights, "status": status, "path": path, "reason": reason}


def run(args: argparse.Namespace) -> int:
    rows = [row for model in selected_models(args.models) for row in model_rows(model, not args.check)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        from .._format import print_table

        print_table(rows, ["model", "weights", "status", "path"])
        for reason in dict.fromkeys(r["reason"] for r in rows if r["status"] in ("missing", "unavailable")):
            print(reason, file=sys.stderr)
    bad = [r for r in rows if r["status"] == "missing"]  # "unavailable": none exist (its recipe trains from scratch)
    if bad:
        print(f"{len(bad)} of {len(rows)} weights file(s) unavailable" + ("" if args.check else " after fetching"),
              file=sys.stderr)
    return 1 if bad else 0
