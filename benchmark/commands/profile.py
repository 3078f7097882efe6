"""Profile models: parameters, MACs, latency and throughput on this machine's CPU or GPU.

For each model: `params` (training model, auxiliary heads included: the paper's #Param),
`params_inference` (auxiliary heads dropped), `params_active` (parameters the eval forward
actually uses), `gmacs` (fvcore, one 1x3xSIZExSIZE input, multiply-accumulates), `gflops` (= 2 x gmacs),
fvcore's uncounted ops, torch's FlopCounterMode count as a cross-check, and `gflops_paper`: the
count of the MiniSeg release's own counter, the convention of the paper's Table 4 "GFLOPs" (conv
MACs + 1 per output for a bias, one op per BatchNorm/ReLU input element and per pooling-window
element, Linear weights; PReLU, upsampling and functional ops uncounted; a module held by two
parents counted twice). For the rows whose Table 4 figures are a backbone alone (MobileNet(v2),
ShuffleNet(v2)) `params_backbone` and `gflops_paper_backbone` are recorded too. Then every
(method, mode, batch size) is timed in eval mode under no_grad with
cudnn.benchmark on. Records go to <results>/profile/<device-slug>/<model>.json.

Modes (--modes, comma-separated; join options with '+'):
  eager          fp32, no options: the paper's forward
  bf16, fp16     autocast to bfloat16 / float16 (one of the two)
  channels_last  model and input in channels_last memory format
  compile        torch.compile (inductor); the warm-up absorbs compilation
  cudagraph      capture the forward on a static input in a CUDA graph and time its replay
                 (with compile: torch.compile mode 'reduce-overhead'); CUDA only, recorded
                 as "skipped: needs CUDA" on a CPU
  e.g. --modes eager,bf16+channels_last,bf16+channels_last+cudagraph,bf16+channels_last+compile

Methods (--method, comma-separated):
  events  --warmup untimed calls, then --repeats calls each timed alone (CUDA events on a GPU,
          perf_counter on a CPU), synchronised; reports the median and the IQR
  paper   the MiniSeg release's loop: 100 calls between synchronisations, wall clock, first 11
          dropped; throughput from the mean, as the release reports it (--warmup/--repeats unused)

Backends (--backends, comma-separated; default torch):
  torch        the modes above
  onnxruntime  the model exported to ONNX (see `export`), run by ONNX Runtime: its CPU provider in
               fp32; on --device cuda its CUDA (fp32) and TensorRT (fp32, fp16) providers, recorded as
               skipped with the reason when the installed build lacks them
  openvino     the same graph on OpenVINO's CPU device: f32, and the reduced precisions this CPU runs
               natively (bf16 with AVX512-BF16 or AMX, f16 with AVX512-FP16); --precisions picks others
  int8         --precisions auto,int8 (or fp32,int8; never under auto alone): the exported graph
               quantised once per model by ONNX Runtime (QDQ: convolutions and matrix products in
               int8, the rest fp32), activation ranges from 16 training slices of CT100's fold 1 (the
               agreement slice is in its test set; synthetic slices without CT100), run on ONNX
               Runtime's CPU provider and on OpenVINO; the record's `quantization` says how, and
               whether integer kernels really ran is read back from each runtime
  Each (backend, device, precision) gets entries under `backends` in the record, timed like the torch
  modes (a first untimed call, then --warmup and --repeats; median, IQR, threads), with the runtime's
  version, the precision it really executed in (read back from the runtime) and its agreement with fp32
  eager PyTorch on one slice: max |logit difference| and the share of pixels whose argmax agrees. The
  slice is <data root>/COVID-19-CT100/tr_im/tr_im_0000.png when present, else a synthetic one. The
  exported graph is kept as <export-dir>/<model>_<side>px.onnx. Needs `pip install '.[deploy]'`.
  A run rewrites each model's record: keep torch in --backends for the speed-ups (same run's eager).

On a shared or busy CPU, fewer threads than cores (--threads 1) avoids OpenMP oversubscription;
each timing entry records the 1-minute load average (load_avg_1m) beside its figures.

latency_ms_* is the time of one forward of the whole batch; throughput_img_s = batch / that time.
Out of memory: the batch is halved until it fits (recorded as oom_fallback_from); any other
failure is recorded in that timing entry and the run goes on.

Examples:
  run_benchmark.py profile --models miniseg --device cuda
  run_benchmark.py profile --models 'miniseg,smp-*' --modes eager,bf16+channels_last+compile --json
  run_benchmark.py profile --models miniseg --method events,paper --batch-sizes 30
  run_benchmark.py profile --device cpu --threads 1 --batch-sizes 1 --repeats 5 --warmup 1
  run_benchmark.py profile --no-timing --size 256      # counts only
  run_benchmark.py profile --backends torch,onnxruntime,openvino --models miniseg,enet,espnet,unet \\
      --device cpu --threads 1 --batch-sizes 1 --data-root ../shared/data
  run_benchmark.py profile --backends torch,openvino --precisions fp32,bf16,fp16 --models miniseg --device cpu
  run_benchmark.py profile --backends torch,onnxruntime,openvino --precisions auto,int8 --models miniseg,unet \
      --device cpu --threads 1 --batch-sizes 1 --data-root ../shared/data
  run_benchmark.py profile --paper --backends torch,onnxruntime --device cpu --threads 1 --batch-sizes 1 \\
      --warmup 1 --repeats 3                             # every Table 4 row exported and timed
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..cli import add_data_root, add_json, add_results
from ..deploy import DEFAULT_EXPORT_DIR, EXPORTERS

DEFAULT_COUNTS = {"cuda": (10, 50), "cpu": (2, 10)}  # (warmup, repeats) per device type
COUNT_COLUMNS = [
    "model", "params", "params_inference", "params_active", "gmacs", "gflops", "flop_counter_gmacs", "gflops_paper",
]
TIMING_COLUMNS = [
    "model", "mode", "method", "batch_size", "latency_ms_median", "latency_ms_iqr", "throughput_img_s",
    "peak_memory_mib", "oom_fallback_from", "error",
]
BACKEND_COLUMNS = [
    "model", "backend", "device", "precision", "executed", "method", "batch_size", "latency_ms_median",
    "latency_ms_iqr", "speedup_vs_torch_eager", "max_abs_diff", "argmax_agree_pct", "error",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=None, help="fnmatch pattern(s), comma-separated (default: all)")
    add_paper(parser)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--modes", default="eager",
                        help="comma-separated modes, options joined by '+' (default: eager)")
    parser.add_argument("--batch-sizes", default="1,30", help="comma-separated batch sizes (default: 1,30)")
    parser.add_argument("--size", type=int, default=512,
                        help="input side in pixels, for MACs and timing (default: 512)")
    parser.add_argument("--method", default="events",
                        help="events, paper, or both comma-separated (default: events)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed calls before timing (default: 10 on GPU, 2 on CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default: 50 on GPU, 10 on CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice); recorded, part of a CPU's slug")
    parser.add_argument("--no-timing", action="store_true", help="count parameters and MACs only")
    parser.add_argument("--backends", default="torch",
                        help="comma-separated: torch, onnxruntime, openvino (default: torch, the modes above)")
    parser.add_argument("--precisions", default="auto",
                        help="runtime precisions, comma-separated fp32, bf16, fp16, int8, auto (default: auto, fp32 "
                        "plus what the device runs natively in reduced precision; auto,int8 adds int8)")
    parser.add_argument("--exporter", choices=EXPORTERS, default="auto",
                        help="ONNX exporter for the runtimes (default auto: dynamo, falling back to TorchScript)")
    parser.add_argument("--export-dir", type=Path, default=Path(DEFAULT_EXPORT_DIR),
                        help=f"where the exported graphs are kept (default: {DEFAULT_EXPORT_DIR}/)")
    add_data_root(parser)
    add_results(parser)
    add_json(parser)


def add_paper(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--paper", action="store_true",
                        help="only the registered model of each row of the paper's Table 4 (32; with --models, "
                        "those of them that match)")


def model_names(pattern: str | None, paper: bool = False) -> list[str]:
    """Registered models matching `pattern` (all when None); with `paper`, only those standing for Table 4 rows."""
    from models import list_models

    names = list_models(pattern)
    if paper:
        from ..paper import registered_rows

        rows = set(registered_rows().values())
        names = [name for name in names if name in rows]
    if not names:
        raise ValueError(f"no registered model matches {pattern!r}{' among the paper rows' if paper else ''}; "
                         "`run_benchmark.py list` shows all")
    return names


def parse_batch_sizes(text: str) -> list[int]:
    """'1,30' -> [1, 30]; anything but positive integers is a ValueError."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--batch-sizes {text!r}: expected comma-separated positive integers") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--batch-sizes {text!r}: batch sizes must be >= 1")
    return list(dict.fromkeys(sizes))


def parse_methods(text: str) -> list[str]:
    """'events,paper' -> ['events', 'paper'], checked against the known methods."""
    from ..profiling import METHODS

    methods = list(dict.fromkeys(part.strip() for part in text.split(",")))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--method: unknown {unknown}; known: {', '.join(METHODS)}")
    return methods


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Validated keyword arguments of profile_model (the device included)."""
    from ..deploy import parse_backends
    from ..env import resolve_device, set_threads
    from ..profiling import parse_modes

    set_threads(args.threads)
    device = resolve_device(args.device)
    warmup, repeats = DEFAULT_COUNTS["cuda" if device.type == "cuda" else "cpu"]
    warmup = warmup if args.warmup is None else args.warmup
    repeats = repeats if args.repeats is None else args.repeats
    if warmup < 0 or repeats < 1 or args.size < 1:
        raise ValueError("--warmup must be >= 0, --repeats >= 1 and --size >= 1")
    backends = parse_backends(args.backends)
    if args.no_timing and backends != ["torch"]:
        raise ValueError(f"--no-timing counts only; it cannot time --backends {args.backends}")
    return {
        "device": device, "size": args.size, "modes": parse_modes(args.modes),
        "batch_sizes": parse_batch_sizes(args.batch_sizes), "methods": parse_methods(args.method),
        "warmup": warmup, "repeats": repeats, "timing": not args.no_timing and "torch" in backends,
    }


def _deploy_settings(args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The runtimes' targets and options, checked before any model is profiled (a missing runtime stops here)."""
    from ..deploy import parse_backends, parse_precisions
    from ..deploy.backends import plan_targets

    backends = parse_backends(args.backends)
    if backends == ["torch"]:
        return None
    targets = plan_targets(backends, settings["device"], parse_precisions(args.precisions))
    return {"targets": targets, "batch_sizes": settings["batch_sizes"], "methods": settings["methods"],
            "warmup": settings["warmup"], "repeats": settings["repeats"], "exporter": args.exporter,
            "export_dir": args.export_dir, "data_root": args.data_root}


def _backend_hook(name: str, deploy: dict[str, Any] | None, show: Any) -> Any:
    """profile_model's `extra` for one model: its backend entries (None when only torch is profiled)."""
    if deploy is None:
        return None
    from ..deploy.timing import profile_backends

    def hook(model: Any, side: int) -> dict[str, Any]:
        import torch

        return profile_backends(model, name, side, deploy["targets"], batch_sizes=deploy["batch_sizes"],
                                methods=deploy["methods"], warmup=deploy["warmup"], repeats=deploy["repeats"],
                                threads=torch.get_num_threads(), export_dir=deploy["export_dir"],
                                exporter=deploy["exporter"], data_root=deploy["data_root"], on_entry=show)

    return hook


def _profile_all(
    names: list[str], settings: dict[str, Any], results: Path, deploy: dict[str, Any] | None = None
) -> tuple[list[dict], list[str]]:
    """Profile and write each model's record; failures are reported and the others go on."""
    from tqdm import tqdm

    from ..io import atomic_write_json
    from ..profiling import profile_model, profile_path

    records, failures = [], []
    bar = tqdm(names, desc="profile", unit="model", file=sys.stderr, disable=None)
    for name in bar:
        bar.set_postfix_str(name)
        show = lambda e: bar.set_postfix_str(  # noqa: E731
            f"{name} {e.get('mode') or e['backend'] + ' ' + e['precision']} {e['method']} bs{e['batch_size']}")
        try:
            record = profile_model(name, on_timing=show, extra=_backend_hook(name, deploy, show), **settings)
        except Exception as err:  # noqa: BLE001 - one model's failure must not stop the others
            failures.append(f"{name}: {type(err).__name__}: {err}")
            continue
        path = atomic_write_json(profile_path(results, settings["device"], name), record)
        record["record_path"] = str(path)
        records.append(record)
    return records, failures


def _print_tables(records: list[dict]) -> None:
    from .._format import print_table

    print_table(records, COUNT_COLUMNS)
    timings = [{"model": r["model"], **t} for r in records for t in r["timings"]]
    if timings:
        print()
        print_table(timings, TIMING_COLUMNS)
    backends = [_backend_row(r, e) for r in records for e in r.get("backends", [])]
    if backends:
        print()
        print_table(backends, BACKEND_COLUMNS)
    if records:
        env = records[0]["environment"]
        print(f"\n{env['device_name']} ({env['device']}), torch {env['torch']}, {env['torch_threads']} threads; "
              f"records under {Path(records[0]['record_path']).parent}")


def _backend_row(record: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """A printed row of a backend entry: its figures, the speed-up over torch eager, the agreement."""
    from ..deploy.summary import speedup_vs_torch_eager

    match = entry.get("agreement") or {}
    diff, agree = match.get("max_abs_diff"), match.get("argmax_agreement")
    return {**entry, "model": record["model"], "executed": entry.get("execution_precision"),
            "speedup_vs_torch_eager": speedup_vs_torch_eager(record, entry),
            "max_abs_diff": None if diff is None else f"{diff:.1e}",
            "argmax_agree_pct": None if agree is None else f"{100 * agree:.3f}"}


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    names = model_names(args.models, args.paper)
    deploy = _deploy_settings(args, settings)
    records, failures = _profile_all(names, settings, args.results, deploy)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        _print_tables(records)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0
