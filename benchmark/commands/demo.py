"""Run the whole pipeline on a small scale: train, profile, evaluate, report (what `make demo` runs).

Trains MiniSeg and two of the paper's light baselines (EDANet, CGNet) with the `fast`
protocol on 5 folds of the synthetic dataset (generated under --data-root on first use),
or of the real COVID-19-CT100 when --data-root holds it; the test fold of each job is
evaluated under both policies as it finishes. Then profiles the models on --device (params
and GMACs at 512x512 as in the paper, batch-1 throughput), evaluates the authors' released
MiniSeg maps where --data-root has them (miniseg-release/SegMaps/<dataset>, real data
only), and writes the report. Output
goes to demo-output/ by default, never into the committed results/. Finished jobs are
skipped when the demo runs again; the last line printed is the report's path.

The demo trains at --size 96 (`--set base_size=96`; the synthetic slices are 128 px and are
scored at 128) with a short recipe (8 epochs of one pass, batch 2, lr 4e-3, test DSC every
2 epochs, a checkpoint at the end of each job) so that it takes minutes on a CPU and still
trains every model to a sensible segmentation; on a CPU its jobs run in parallel worker
processes, one per core. --size 512 and `--protocol paper` give the paper's setting.

EXAMPLES
  run_benchmark.py demo
  run_benchmark.py demo --data-root ../shared/data            # real CT100
  run_benchmark.py demo --models miniseg,enet,unet --device cuda --size 512
  run_benchmark.py demo --protocol smoke --folds 0-1 --size 64 --out /tmp/demo-reports
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from ..cli import add_data_root

DEFAULT_MODELS = "miniseg,edanet,cgnet"
DEFAULT_RESULTS = Path("demo-output/results")
DEFAULT_OUT = Path("demo-output/reports")
# MiniSeg (83K params) beside two of the paper's light baselines with 6-8x its parameters, EDANet and
# CGNet. The `fast` preset's 10 epochs at batch 5 are ~60 optimiser steps on the 32 training slices of a
# synthetic fold: too few for any model. Measured on the 5 synthetic folds at 96 px (mean paper-policy
# DSC MiniSeg / CGNet / EDANet; training wall time with two one-thread workers on 2 cores):
#   12 epochs, batch 2, lr 3e-3: 80.1 / 77.0 / 75.6, ~300 s
#   10 epochs, batch 2, lr 3e-3: 76.1 / 75.5 / 74.6, 241 s
#   12 epochs, batch 4, lr 5e-3: 78.2 / 75.2 / 72.9, 229 s
#    8 epochs, batch 2, lr 4e-3: 77.4 / 75.8 / 73.5, 186 s   <- the demo's
#    8 epochs, batch 2, lr 5e-3: 80.6 / 75.8 / 72.1
# On a CPU per-layer overhead dominates these nets: a step (batch 2, one thread) at 64 px vs 96 px costs
# MiniSeg 146 vs 175 ms, EDANet 93 vs 129, CGNet 114 vs 180, so fewer steps, not smaller images, is what
# shortens the demo most for the model it is about. ENet, the cheapest per image, needs ~20
# epochs to pass DSC 70. The test fold is scored every 2 epochs so the report's test-DSC plot is a curve.
DEMO_OVERRIDES = ("epochs=8", "batch_size=2", "lr=0.004", "eval_every=2")
# A job's epochs last a few seconds: one checkpoint per job (its last epoch) instead of one per epoch.
CHECKPOINT_EVERY_S = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_root(parser)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help=f"results folder of the demo (default: {DEFAULT_RESULTS})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default: {DEFAULT_OUT})")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated models (default: {DEFAULT_MODELS})")
    parser.add_argument("--dataset", default=None,
                        help="dataset to train on (default: CT100 where --data-root holds COVID-19-CT100, "
                        "else synthetic)")
    parser.add_argument("--protocol", default="fast", help="training preset (default: fast; smoke for a quick check)")
    parser.add_argument("--folds", default="0-4", help="test folds (default: 0-4)")
    parser.add_argument("--size", type=int, default=96, help="training side in pixels, the protocol's base_size "
                        "(default: 96; 512 is the paper's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="further protocol overrides passed to `train`; repeatable (the demo already "
                        f"sets {', '.join(DEMO_OVERRIDES)}: a short schedule needs a larger step)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of this process (default: one core left free, at least 1; on a "
                        "2-core machine 1, because 2 threads on 2 busy cores run several times slower)")
    parser.add_argument("--workers", type=int, default=None,
                        help="training jobs run at once in worker processes of one thread each (default on a CPU: "
                        "one per core; on a GPU: 1, in this process)")
    parser.add_argument("--profile-size", type=int, default=512,
                        help="input side for MACs and timing (default: 512, the paper's)")


def choose_dataset(requested: str | None, data_root: Path) -> str:
    """The requested dataset, else CT100 where the data root holds it, else synthetic."""
    if requested:
        return requested
    from ..datasets import dataset_dir

    return "CT100" if dataset_dir("CT100", data_root).is_dir() else "synthetic"


def step(number: int, total: int, text: str) -> None:
    print(f"[demo {number}/{total}] {text}", file=sys.stderr, flush=True)


def call(argv: Sequence[str]) -> None:
    """Run one CLI command (train, profile) in this process; a non-zero exit stops the demo."""
    from ..cli import main

    code = main(list(argv))
    if code != 0:
        from ..errors import StepFailed

        raise StepFailed(f"demo: `run_benchmark.py {' '.join(argv)}` exited with {code} (see above)")


def train_argv(args: argparse.Namespace, dataset: str) -> list[str]:
    argv = ["train", "--models", args.models, "--datasets", dataset, "--folds", args.folds,
            "--protocol", args.protocol, "--set", f"base_size={args.size}",
            "--data-root", str(args.data_root), "--results", str(args.results)]
    for item in (*DEMO_OVERRIDES, *args.overrides):
        argv += ["--set", item]
    argv += ["--checkpoint-every", str(CHECKPOINT_EVERY_S)]
    workers = demo_workers(args)
    if workers > 1:
        argv += ["--executor", "pool", "--workers", str(workers), "--cpus-per-job", "1"]
    return argv + (["--device", args.device] if args.device else [])


def demo_workers(args: argparse.Namespace) -> int:
    """--workers, else one worker per core on a CPU (tiny models on one thread each scale almost linearly)
    and 1 on a GPU."""
    if args.workers is not None:
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        return args.workers
    from ..env import resolve_device

    return 1 if resolve_device(args.device).type != "cpu" else max(1, os.cpu_count() or 1)


def profile_argv(args: argparse.Namespace) -> list[str]:
    argv = ["profile", "--models", args.models, "--batch-sizes", "1", "--size", str(args.profile_size),
            "--warmup", "1", "--repeats", "3", "--results", str(args.results)]
    return argv + (["--device", args.device] if args.device else [])


def released_maps(dataset: str, data_root: Path) -> Path | None:
    """The authors' released MiniSeg maps of the dataset under the data root, where present."""
    from ..datasets import dataset_dir

    maps = Path(data_root) / "miniseg-release" / "SegMaps" / dataset_dir(dataset, data_root).name
    return maps if dataset != "synthetic" and maps.is_dir() else None


def evaluate_argv(args: argparse.Namespace, dataset: str, maps: Path) -> list[str]:
    return ["evaluate", "--dataset", dataset, "--data-root", str(args.data_root), "--maps", str(maps),
            "--label", "miniseg-release-maps", "--results", str(args.results)]


def default_threads() -> int:
    """torch's thread count with one core left free (at least 1): oversubscribed cores make torch crawl."""
    import torch

    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1))


def run(args: argparse.Namespace) -> int:
    import torch

    from ..env import set_threads

    threads_before = torch.get_num_threads()
    set_threads(args.threads or default_threads())
    try:
        return _run_steps(args)
    finally:
        torch.set_num_threads(threads_before)  # callers in this process (tests) keep their setting


def _run_steps(args: argparse.Namespace) -> int:
    """Train, profile, evaluate (where released maps exist), report."""
    from ..reporting import write_report

    dataset = choose_dataset(args.dataset, args.data_root)
    maps = released_maps(dataset, args.data_root)
    total = 4 if maps else 3
    step(1, total, f"train {args.models} on {dataset}, folds {args.folds}, protocol {args.protocol} at "
                   f"{args.size}px (each test fold is evaluated as its job finishes)")
    call(train_argv(args, dataset))
    step(2, total, f"profile {args.models} (params, GMACs and batch-1 throughput at {args.profile_size}px)")
    call(profile_argv(args))
    if maps:
        step(3, total, f"evaluate the authors' released MiniSeg maps of {dataset} ({maps})")
        call(evaluate_argv(args, dataset, maps))
    step(total, total, f"report from {args.results}")
    report = write_report(args.results, args.out)
    print(f"report: {report.index}")
    return 0
