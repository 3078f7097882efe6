"""Train models x datasets x folds under one protocol; resumable, finished jobs are skipped.

Each job writes results/runs/<dataset>/<model>/fold<k>/record.json (protocol, model info,
environment, timings, per-epoch loss and test metrics, final metrics under the paper and
strict policies), per_slice.csv and last.pt (checkpoint of the last finished epoch).
Rerunning the same command skips finished jobs and resumes interrupted ones exactly;
two runners on one results folder never train the same job (lock files).

Presets: `paper` (default) trains each paper row as its authors did: MiniSeg (and its ablations)
with the root script's four-scale recipe, every other row with its full_code script's recipe
(one 512 px pass; ImageNet or fold normalisation; ImageNet or scratch backbone; its loss terms).
`uniform` trains every model with MiniSeg's recipe, keeping each row's initialisation. `fast` and
`smoke` shorten `paper`. Models without a paper row get the uniform recipe under every preset, except
nnU-Net's (nnunet-2d, nnunet-resenc-m-2d): under paper, fast and smoke nnU-Net v2 trains them itself
(its plan, trainer and schedule, 1000 epochs x 250 steps; --set epochs / steps_per_epoch shorten it).
Before the first job, `train` checks the preset, the --set fields against each model's recipe and
the ImageNet weights the models need (fetching missing ones; see the `weights` command), and
stops without training when something is wrong. `--dry-run --json` prints each job's recipe.

Examples:
  run_benchmark.py train --models miniseg --datasets CT100 --folds 0-4
  run_benchmark.py train --models miniseg,unet --datasets CT100,P9 --folds 0,2 --dry-run
  run_benchmark.py train --models 'pspnet-*,unet' --datasets CT100 --protocol uniform --dry-run --json
  run_benchmark.py train --models pspnet-resnet101 --datasets CT100 --set pretrained=false --set bn_init=torch041
  run_benchmark.py train --models 'smp-*' --datasets synthetic --protocol smoke
  run_benchmark.py train --models nnunet-2d --datasets CT100 --set epochs=50 --set steps_per_epoch=100
  run_benchmark.py train --models miniseg --datasets CT100 --folds 0 --protocol fast --set base_size=128
  run_benchmark.py train --models miniseg --datasets CT100 --set epochs=40 --set 'passes=((1.0, 16),)'
  run_benchmark.py train --models miniseg --datasets CT100 --amp bf16 --channels-last --compile
  run_benchmark.py train --models miniseg,unet --datasets CT100 --executor pool --workers 2
  run_benchmark.py train --models '*' --datasets CT100,P9 --executor ray --ray-address auto --gpus-per-job 0.25
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ..cli import add_data_root, add_json, add_results
from .folds import add_split

if TYPE_CHECKING:
    from ..training.runner import TrainJob


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", required=True, help="model names or fnmatch patterns, comma-separated ('smp-*')")
    parser.add_argument("--datasets", required=True,
                        help="CT100, P9, P20, P1110, synthetic, or datasets of your own under --data-root (laid out "
                        "by prepare); comma-separated")
    parser.add_argument("--folds", default="0-4", help="test folds 0..4: '0-4', '0,2' (default: 0-4)")
    parser.add_argument("--protocol", default="paper",
                        help="preset: paper (default; each paper row as its authors trained it), uniform (MiniSeg's "
                             "recipe for every model), fast, smoke (shortened paper)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a protocol field, e.g. epochs=10, 'passes=((1.0,16),)'; repeatable")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the protocol's, 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="mixed precision (default: fp32)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    parser.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                        help="torch.compile the model (MODE: default, reduce-overhead, max-autotune)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads of this process (default: torch's; on a busy or small machine "
                        "fewer threads than cores is often faster; pool/ray workers use --cpus-per-job)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--checkpoint-every", type=float, default=0.0, metavar="SECONDS",
                        help="write last.pt at most this often (default: 0, after every epoch; the last epoch is "
                        "always written). An interrupted job resumes from its last checkpoint")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and each job's status; train nothing")
    parser.add_argument("--executor", choices=("local", "pool", "ray"), default="local",
                        help="local: one job at a time here (default); pool: worker processes, one per visible "
                             "GPU; ray: Ray tasks on this machine or a cluster (pip install '.[ray]')")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="pool: worker processes (default: one per visible GPU, else 1)")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="ray: cluster to join, e.g. auto or ray://head:10001 (default: start Ray here)")
    parser.add_argument("--gpus-per-job", type=float, default=None, metavar="G",
                        help="ray: GPUs per job, fractional to share one (0.25) (default: 1 with GPUs, else 0)")
    parser.add_argument("--cpus-per-job", type=float, default=None, metavar="C",
                        help="ray: CPUs per job (default 1); pool: torch threads per worker (default: cores/workers); "
                        "an nnU-Net job gives nnU-Net that many threads and one fewer augmentation workers")
    parser.add_argument("--retries", type=int, default=None, metavar="N",
                        help="pool, ray: retries of a job whose worker died, then it is recorded as failed (default 2)")
    add_split(parser)
    add_data_root(parser)
    add_results(parser)
    add_json(parser)


def _job_row(job: "TrainJob", status: str, detail: str) -> dict:
    """One line of the plan / outcome table."""
    return {"dataset": job.dataset, "model": job.model, "fold": job.fold, "status": status, "detail": detail}


def _plan_row(job: "TrainJob", status: str, detail: str, as_json: bool) -> dict:
    """A --dry-run line: the job, its state, and its recipe (in full with --json, in a few words otherwise)."""
    from ..recipes import effective_recipe, short_label

    if as_json:
        return _job_row(job, status, detail) | {"recipe": effective_recipe(job.protocol, job.model)}
    return _job_row(job, status, detail) | {"recipe": short_label(job.protocol, job.model)}


def _print_rows(rows: list[dict], as_json: bool) -> None:
    """The table, or JSON with --json."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from .._format import print_table

    columns = ["dataset", "model", "fold", "status", "detail"]
    print_table(rows, columns + (["recipe"] if rows and "recipe" in rows[0] else []))


def preflight(args: argparse.Namespace, models: list[str]) -> list[str]:
    """The pre-run checks' problems (benchmark.preflight); a dry run looks in the caches without downloading."""
    from ..preflight import TrainRequest, run_checks

    datasets = tuple(dict.fromkeys(d.strip() for d in args.datasets.split(",") if d.strip()))
    request = TrainRequest(args.protocol, tuple(args.overrides), tuple(models), seed=args.seed,
                           download=not args.dry_run, datasets=datasets, data_root=str(args.data_root),
                           split=args.split, results=str(args.results))
    return run_checks(request)


#: The options each --executor takes: command-line name -> the executor's keyword.
EXECUTOR_OPTIONS = {
    "local": {},
    "pool": {"workers": "workers", "cpus_per_job": "cpus_per_job", "retries": "retries"},
    "ray": {"ray_address": "address", "gpus_per_job": "gpus_per_job", "cpus_per_job": "cpus_per_job",
            "retries": "retries"},
}


def _executor_options(args: argparse.Namespace) -> dict:
    """The chosen executor's keywords from the options given; an option of another executor is an error."""
    accepted = EXECUTOR_OPTIONS[args.executor]
    names = {name for options in EXECUTOR_OPTIONS.values() for name in options}
    given = {name: getattr(args, name) for name in sorted(names) if getattr(args, name) is not None}
    stray = [name for name in given if name not in accepted]
    if stray:
        raise ValueError(f"--{stray[0].replace('_', '-')} does not apply to --executor {args.executor}")
    options = {accepted[name]: value for name, value in given.items()}
    if args.executor != "local" and args.plugin:
        options["plugins"] = args.plugin  # workers are other processes: they load the plugins too
    return options


def run(args: argparse.Namespace) -> int:
    from ..env import set_threads
    from ..errors import EXIT_USER_ERROR
    from ..training.executors import get_executor
    from ..protocol import get_protocol
    from ..records import RECORD_NAME
    from ..training.runner import expand_datasets, expand_models, iter_states, parse_folds, plan_jobs, run_grid
    from ..training.train import TrainOptions

    set_threads(args.threads)
    models = expand_models(args.models)
    problems = preflight(args, models)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found before training; "
              + ("training would stop here" if args.dry_run else "no job was started"), file=sys.stderr)
        if not args.dry_run or any(p.startswith(("--protocol", "--set", "--datasets")) for p in problems):
            return EXIT_USER_ERROR
    protocol = get_protocol(args.protocol, args.overrides, seed=args.seed)
    options = TrainOptions(device=args.device, amp=args.amp, channels_last=args.channels_last,
                           compile=args.compile, progress=not args.no_progress,
                           checkpoint_every_s=args.checkpoint_every)
    jobs = plan_jobs(models, expand_datasets(args.datasets, args.data_root), parse_folds(args.folds),
                     protocol, options, args.data_root, args.results, args.split)
    if args.dry_run:
        _print_rows([_plan_row(job, s.status, s.detail, args.json) for job, s in iter_states(jobs)], args.json)
        return EXIT_USER_ERROR if problems else 0
    with get_executor(args.executor, **_executor_options(args)) as executor:
        outcomes = run_grid(jobs, executor, progress=not args.no_progress)
    rows = [_job_row(o.job, o.status, o.detail) | {"record": str(o.job.run_dir / RECORD_NAME)} for o in outcomes]
    _print_rows(rows, args.json)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} job(s) failed (reasons above; their records say why)",
              file=sys.stderr)
    return 1 if failed else 0
