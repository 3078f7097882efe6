"""Segment new scans with a trained model: PNG slices or a NIfTI volume in, infection masks out.

Input (--input): one PNG slice, a folder of PNG slices (8-bit grey, as the datasets hold them), or a
NIfTI volume (.nii/.nii.gz), cut into slices along --slice-axis and mapped to 0..255 through --window
exactly as `prepare` does (use the values the training data were prepared with).
Output (--out): a folder with one 0/255 PNG mask per slice (same names), or, for a NIfTI input, a
NIfTI mask (0/1, uint8) with the input's shape, affine and header (orientation, spacing). Existing
masks are not overwritten without --force; each file is written atomically.

Weights (--weights): a `last.pt` of our `train` (results/runs/<dataset>/<model>/fold<k>/last.pt: the
model's name is read from the record.json beside it, and it runs with the input mean/std it was
trained with), or any state_dict for --model NAME, such as the authors' released MiniSeg weights.
Weights that record no input statistics need them given: --mean/--std, --dataset NAME --fold K (fold
K's training slices, as the paper normalises; K is 0-based, the release's CrossVal{K+1}), or --imagenet.
The model runs in eval mode at the size it was trained and tested at (a last.pt records it: slices
are resized to it and the logits back to each slice's size before the argmax, as `train` scores its
test fold), else at each slice's own size as `evaluate --model` runs it; --size PX chooses.

Backends (`pip install '.[deploy]'` for the runtimes), as `evaluate --backend`:
  --backend torch         the model in PyTorch (default), --precision float32 (default) or float64
  --backend onnxruntime   the model (weights loaded) exported to ONNX (--exporter) at the size it runs
                          at, one graph per size it runs at, and run by ONNX Runtime (CPU; CUDA/TensorRT
                          on --device cuda where the build has them)
  --backend openvino      the same graph on OpenVINO's CPU device
  Runtimes take --precision fp32 (default), bf16 or fp16; --json says the precision each graph really
  executed in, read back from the runtime. int8 is measured by `evaluate`, which has training slices
  to calibrate on.

EXAMPLES
  run_benchmark.py predict --weights results/runs/MyHospital/miniseg/fold0/last.pt \\
      --input new_scan.nii.gz --out new_scan_mask.nii.gz
  run_benchmark.py predict --weights results/runs/CT100/miniseg/fold0/last.pt --input slices/ --out masks/
  run_benchmark.py predict --model miniseg --weights MiniSeg_CrossVal1.pth --dataset CT100 --fold 0 \\
      --data-root ../shared/data --input ../shared/data/COVID-19-CT100/tr_im --out /tmp/masks
  run_benchmark.py predict --weights results/runs/MyHospital/miniseg/fold0/last.pt \\
      --input new_scan.nii.gz --out new_scan_mask.nii.gz --backend onnxruntime
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..cli import add_data_root, add_json
from ..deploy import BACKENDS, CALIBRATED, EXPORTERS, PRECISIONS

#: What --backend torch takes, its default first (evaluate's default is float64, for exact reproduction).
TORCH_PRECISIONS = ("float32", "float64")


def _floats(text: str) -> list[float]:
    """'0.5' or '0.485,0.456,0.406' -> floats."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or three comma-separated numbers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .prepare import parse_window

    parser.add_argument("--weights", type=Path, required=True,
                        help="a last.pt of our train, or a state_dict file (then --model NAME)")
    parser.add_argument("--model", default=None,
                        help="registered model (default: the one the record.json beside a last.pt names)")
    parser.add_argument("--input", type=Path, required=True,
                        help="a PNG slice, a folder of PNG slices, or a NIfTI volume (.nii, .nii.gz)")
    parser.add_argument("--out", type=Path, required=True,
                        help="a folder for PNG masks, or a .nii.gz file for a NIfTI input")
    parser.add_argument("--slice-axis", type=int, choices=(0, 1, 2), default=2,
                        help="NIfTI: the axis slices are cut along (default 2: volume[:, :, z].T, as prepare)")
    parser.add_argument("--window", type=parse_window, default=None, metavar="LOW,HIGH",
                        help="NIfTI: HU window mapped to 0..255 (default -1250,250, as prepare; a volume already "
                        "in 0..255 is kept as it is; write --window=-1000,400)")
    norm = parser.add_argument_group("input normalisation (default: what a last.pt of ours records)")
    norm.add_argument("--mean", type=_floats, default=None, help="input mean of x/255 (one value or three)")
    norm.add_argument("--std", type=_floats, default=None, help="input std of x/255 (one value or three)")
    norm.add_argument("--dataset", default=None,
                      help="with --fold: the statistics of that fold's training slices (built-in or your own)")
    norm.add_argument("--fold", type=int, default=None, help="with --dataset: the fold, 0-based")
    norm.add_argument("--imagenet", action="store_true", help="ImageNet's mean and std per channel")
    add_data_root(parser)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")
    parser.add_argument("--size", type=int, default=None, metavar="PX",
                        help="run the model on slices resized to PX x PX, masks back at each slice's size "
                        "(default: the training size a last.pt records, as its test fold was scored; else as is)")
    parser.add_argument("--precision", choices=TORCH_PRECISIONS + PRECISIONS, default=None,
                        help="arithmetic of the forward pass. torch: float32 (default) or float64 (evaluate's "
                        "default); runtimes: fp32 (default), bf16, fp16 (int8 needs training slices: see evaluate)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="what runs the forward: torch (default), onnxruntime or openvino")
    parser.add_argument("--exporter", choices=EXPORTERS, default="auto",
                        help="with --backend onnxruntime/openvino: the ONNX exporter (default auto: dynamo, "
                        "falling back to TorchScript)")
    parser.add_argument("--force", action="store_true", help="replace existing masks")
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from ..datasets.prepare import DEFAULT_WINDOW_HU
    from ..env import resolve_device
    from ..errors import NonFinite
    from ..evaluation import inference
    from .evaluate import checked_precision

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    args.precision = checked_precision(args.backend, args.precision, TORCH_PRECISIONS)
    if args.precision in CALIBRATED:
        raise ValueError(f"--precision {args.precision}: predict has no training slices to calibrate on; "
                         "evaluate --backend ... --precision int8 on a dataset measures int8, or pick fp32/bf16/fp16")
    if not args.input.exists():
        raise FileNotFoundError(f"--input {args.input}: not found")
    nifti = args.input.is_file() and inference.is_nifti(args.input)
    device = resolve_device(args.device)
    model_name = inference.model_name_for(args.weights, args.model)
    model, loaded = inference.load_model(model_name, args.weights, device)
    stats = inference.input_stats(loaded, args.weights, mean=args.mean, std=args.std, imagenet=args.imagenet,
                                  dataset=args.dataset, fold=args.fold, data_root=args.data_root)
    if nifti:
        window = args.window or DEFAULT_WINDOW_HU
        source, volume, images = inference.read_nifti_input(args.input, args.slice_axis, window)
        where = [f"{args.input} slice {z}" for z in range(len(images))]
    else:
        files, images = inference.read_png_inputs(args.input)
        names, where = [p.stem for p in files], [str(p) for p in files]
    inference.check_output(args.out, nifti, [] if nifti else names, args.force)
    size_px = inference.run_size(loaded, args.size)
    inference.check_sizes(images, where, model_name, size_px)
    try:
        masks, deployment = _segment(args, model, model_name, images, stats, device, size_px)
    except NonFinite as err:  # finite weights, non-finite logits: name the file they came from too
        raise NonFinite(f"{args.weights}: {err}") from None
    if nifti:
        written = [inference.write_nifti_mask(args.out, source,
                                              inference.mask_volume(masks, volume.shape, args.slice_axis))]
    else:
        written = inference.write_png_masks(args.out, names, masks)
    infected = sum(bool(m.any()) for m in masks)
    summary = {"input": str(args.input), "out": str(args.out), "model": model_name, "weights": str(args.weights),
               "normalization": {"mean": stats.mean, "std": stats.std, "source": stats.source},
               "backend": args.backend, "precision": args.precision, **deployment,
               "n_slices": len(masks), "n_slices_with_infection": infected, "files": [str(p) for p in written]}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        ran = "" if args.backend == "torch" else f" on {args.backend} {args.precision}"
        print(f"{args.out}: {len(masks)} slice(s), {infected} with infection ({model_name}{ran}, {args.weights}; "
              f"input normalised with {stats.source})")
    print(f"wrote {len(written)} file(s)", file=sys.stderr)
    return 0


def _segment(args: argparse.Namespace, model: Any, model_name: str, images: list[Any], stats: Any, device: Any,
             size_px: int | None) -> tuple[list[Any], dict[str, Any]]:
    """The masks, run by --backend; for a runtime, what ran (its version, device, the precision each graph
    executed in), as `evaluate --backend` records it, one graph per size the model runs at."""
    import tempfile

    import torch

    from ..evaluation import inference

    if args.backend == "torch":
        dtype = getattr(torch, args.precision)
        return inference.segment(model, images, stats, device, args.batch_size, dtype, size_px), {}
    from ..deploy.evaluate import FoldDeployer, deployment_target

    target = deployment_target(args.backend, device, args.precision)
    with tempfile.TemporaryDirectory(prefix="miniseg-bench-predict-") as workdir:
        deployer = FoldDeployer(model_name, target, workdir, torch.get_num_threads(), args.exporter)
        masks = inference.segment(model, images, stats, device, args.batch_size, torch.float32, size_px,
                                  deploy=deployer)
    source = deployer.source()
    source["deployment"]["graphs"] = source["deployment"].pop("folds")  # here: one graph per size it runs at
    return masks, source
