"""Export registered models to ONNX and verify each graph against eager PyTorch on a real slice.

Each model is exported in eval mode (main logits only) for a (N, 3, SIZE, SIZE) input, the batch
dimension dynamic, to <out>/<model>_<SIZE>px.onnx, with a manifest <model>_<SIZE>px.json beside it.
Exporters (--exporter): dynamo (torch.export + onnxscript; it exports every row of the paper's
Table 4), torchscript (the tracing exporter, dynamo=False: faster, but it fails on adaptive pooling
whose output does not divide its input: PSPNet, ANNNet, GFF), or auto (default: dynamo, then
TorchScript if dynamo fails). The manifest records which exporter and opset were used.

Verified after export: onnx.checker, then the graph on ONNX Runtime (CPU, fp32) against eager fp32
PyTorch on one slice, <data root>/COVID-19-CT100/tr_im/tr_im_0000.png when present (else a synthetic
slice; the manifest says which): max |logit difference| and the share of pixels whose argmax agrees.
A model that cannot be exported is listed with each exporter's reason (exit code 1); the others are
written. Without --weights the models are randomly initialised (the graph and its speed are what
count); --weights FILE loads a state_dict or one of our checkpoints (one model only).

Needs the deploy extras: pip install '.[deploy]' (onnx, onnxscript, onnxruntime, openvino).
Exported files are binaries: the default folder exports/ is git-ignored, never under results/.

EXAMPLES
  run_benchmark.py export --models miniseg,enet,espnet --data-root ../shared/data
  run_benchmark.py export --models miniseg \\
      --weights ../shared/data/miniseg-release/Pretrained/COVID-19-CT100/MiniSeg_CrossVal1.pth
  run_benchmark.py export --paper --size 256 --json      # the 32 rows of the paper's Table 4
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..cli import add_data_root, add_json
from .profile import add_paper
from ..deploy import DEFAULT_EXPORT_DIR, EXPORTERS

COLUMNS = ["model", "status", "exporter", "opset", "size_mb", "seconds", "max_abs_diff", "argmax_agree_pct", "reason"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=None,
                        help="fnmatch pattern(s) of registered models, comma-separated (default: all)")
    add_paper(parser)
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="output format (default: onnx)")
    parser.add_argument("--size", type=int, default=512,
                        help="input side in pixels, rounded up to what a model accepts (default: 512)")
    parser.add_argument("--exporter", choices=EXPORTERS, default="auto",
                        help="auto (default: dynamo, then TorchScript), dynamo or torchscript")
    parser.add_argument("--opset", type=int, default=None,
                        help="ONNX opset (default: the exporter's own: 20 for dynamo with torch 2.14, "
                        "17 for TorchScript)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="a state_dict or checkpoint to export instead of random weights (one model only)")
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_EXPORT_DIR),
                        help=f"output folder (default: {DEFAULT_EXPORT_DIR}/, git-ignored)")
    add_data_root(parser)
    add_json(parser)


def _build(name: str, weights: Path | None) -> Any:
    """The registered model, with `weights` loaded strictly (weights_only) when given."""
    import torch

    from models import create_model

    from ..evaluation.evaluate import load_weights

    model = create_model(name)
    if weights is not None:
        load_weights(model, weights, torch.device("cpu"), name)
    return model.eval()


def export_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Export and verify one model; its manifest (also written beside the graph when the export worked)."""
    import torch

    from models import get_model_info

    from ..deploy import backends
    from ..deploy.agreement import agreement, eager_logits, reference_slice
    from ..deploy.export import export_onnx, export_path
    from ..env import environment
    from ..io import atomic_write_json
    from ..profiling import fit_size

    info = get_model_info(name)
    side = fit_size(args.size, info.min_input_size, info.input_multiple)
    model = _build(name, args.weights)
    result = export_onnx(model, name, export_path(args.out, name, side), side, args.exporter, args.opset)
    manifest: dict[str, Any] = {"format": "onnx", **result.to_dict(), "weights": str(args.weights or "random init")}
    if result.ok:
        inputs, source = reference_slice(side, args.data_root)
        ort = backends.adapter("onnxruntime")
        target = ort.targets(torch.device("cpu"), ["fp32"])[0]
        session = ort.open(result.path, target, torch.get_num_threads())
        manifest["verification"] = {"input": source, "runtime": f"onnxruntime {session.runtime_version}",
                                    **agreement(eager_logits(model, inputs), session.run(inputs))}
        manifest["size_bytes"] = result.path.stat().st_size
        manifest["environment"] = environment(torch.device("cpu"))
        atomic_write_json(result.path.with_suffix(".json"), manifest)
    return manifest


def _row(manifest: dict[str, Any]) -> dict[str, Any]:
    check = manifest.get("verification") or {}
    diff, agree = check.get("max_abs_diff"), check.get("argmax_agreement")
    return {
        "model": manifest["model"], "status": "ok" if manifest["path"] else "failed",
        "exporter": manifest["exporter"], "opset": manifest["opset"],
        "size_mb": manifest["size_bytes"] / 1e6 if manifest.get("size_bytes") else None,
        "seconds": manifest["seconds"], "max_abs_diff": None if diff is None else f"{diff:.1e}",
        "argmax_agree_pct": None if agree is None else f"{100 * agree:.3f}", "reason": manifest["error"],
    }


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .._format import print_table
    from ..deploy.backends import require
    from .profile import model_names

    names = model_names(args.models, args.paper)
    if args.weights is not None and len(names) != 1:
        raise ValueError(f"--weights {args.weights} fits one model; --models {args.models!r} matches {len(names)}")
    if args.size < 1:
        raise ValueError(f"--size must be at least 1, got {args.size}")
    for module in ("onnx", "onnxruntime"):  # before the first export, not after it
        require(module)
    manifests = []
    bar = tqdm(names, desc="export", unit="model", file=sys.stderr, disable=None)
    for name in bar:
        bar.set_postfix_str(name)
        manifests.append(export_one(name, args))
    failed = [m for m in manifests if not m["path"]]
    if args.json:
        print(json.dumps(manifests, indent=2))
    else:
        print_table([_row(m) for m in manifests], COLUMNS)
        if len(manifests) > len(failed):
            print(f"\ngraphs and manifests under {args.out}")
    if failed:
        print(f"error: {len(failed)} of {len(manifests)} model(s) could not be exported: "
              f"{', '.join(m['model'] for m in failed)} (reasons above)", file=sys.stderr)
    return 1 if failed else 0
