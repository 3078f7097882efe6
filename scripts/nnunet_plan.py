#!/usr/bin/env python3
"""Print nnU-Net's plan for a dataset exactly as the runner's nnU-Net jobs get it (JSON).

Lays the dataset out in nnU-Net's raw format and runs nnU-Net's fingerprint, planning and 2D
preprocessing (benchmark.training.nnunet.job.prepare_workspace, the same call `train` makes, so the
workspace under <results>/nnunet/ is reused by a later `train`), then prints the plan the run records
keep, the planned network's parameter count (1 input channel, 2 classes, as nnU-Net trains it) and the
size of nnU-Net's default schedule (1000 epochs x 250 steps of the plan's batch size).

Usage: .venv/bin/python scripts/nnunet_plan.py --dataset CT100 --data-root ../shared/data [--model nnunet-2d]
       [--size 512] [--split paper] [--results results]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="CT100, P9, P20, P1110, synthetic or one of your own")
    parser.add_argument("--data-root", type=Path, default=Path("datasets"), help="folder holding COVID-19-<NAME>/")
    parser.add_argument("--model", default="nnunet-2d", help="nnunet-2d or nnunet-resenc-m-2d")
    parser.add_argument("--size", type=int, default=512, help="the slices' side given to nnU-Net (base_size)")
    parser.add_argument("--split", default="paper", help="paper or grouped")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder (workspace inside)")
    args = parser.parse_args(argv)

    import torch

    from benchmark.datasets import get_folds, get_spec
    from benchmark.frameworks import FRAMEWORKS
    from benchmark.training.nnunet.job import nnunet_version, plan_summary, prepare_workspace
    from benchmark.io import read_json
    from models import create_model
    from models.nnunet import PLANNERS

    dataset = get_spec(args.dataset, args.data_root).name  # a built-in, or a dataset of your own under the root
    folds = get_folds(dataset, args.data_root, split=args.split)
    version = nnunet_version()
    workspace, digest = prepare_workspace(args.model, dataset, args.split, args.data_root, args.results,
                                          args.size, folds, max(1, torch.get_num_threads()), version)
    plans_file = workspace.plans_file(PLANNERS[args.model].plans_identifier)
    plan = plan_summary(read_json(plans_file))
    with torch.device("meta"):
        network = create_model(args.model, plans=plans_file, in_channels=1)
    epochs, steps = FRAMEWORKS["nnunet"].schedule("paper")
    print(json.dumps({
        "dataset": dataset, "split": args.split, "size_px": args.size, "model": args.model, "nnunetv2": version,
        "n_slices": sum(len(f) for f in folds), "plans_file": str(plans_file), "workspace_digest": digest,
        "plan": plan, "network_params": sum(p.numel() for p in network.parameters()),
        "default_schedule": {"epochs": epochs, "steps_per_epoch": steps, "steps": epochs * steps,
                             "images": epochs * steps * plan["batch_size"]},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
