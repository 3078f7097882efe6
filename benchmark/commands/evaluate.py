"""Score segmentations with the paper's metrics: precomputed maps, or a model with per-fold weights.

Sources (one of):
  --maps DIR                 maps laid out as DIR/CrossVal{1..5}/<slice id>.png (the authors'
                             SegMaps layout; 0/255 PNGs the size of the masks, any value > 0 is infection)
  --model NAME --weights P   run model NAME with fold k's weights on fold k's test slices; in P,
                             {fold} stands for 1..5 (the release's CrossVal numbering) and {fold0}
                             for 0..4 (our run folders: runs/<DATASET>/<MODEL>/fold{fold0}/last.pt);
                             normalised as the weights were trained (--normalization:
                             by default what a checkpoint of our `train` records, else the model's
                             `paper` recipe: ImageNet statistics for the rows trained from ImageNet
                             weights, else fold k's training slices' statistics);
                             --save-maps DIR writes its predictions in the SegMaps layout

Ground truth is the dataset's masks on their own grid (512x512 for the paper's data), as training
scores its test fold; slices of mixed sizes are brought to one side only where the dataset's spec
says so (P9, P20: 512, nearest neighbour), elsewhere a differing size is an error. --model runs on
that grid too.

Deployment backends (with --model; `pip install '.[deploy]'`):
  --backend torch         the model in PyTorch (default), --precision float64 (default) or float32
  --backend onnxruntime   each fold's weights exported to ONNX (--exporter) and run by ONNX Runtime:
                          its CPU provider, or CUDA/TensorRT on --device cuda when the build has them
  --backend openvino      the same graph on OpenVINO's CPU device
  Runtimes take --precision fp32 (default), bf16 or fp16; the record's source says the precision each
  fold really executed in, read back from the runtime (OpenVINO runs bf16 where fp16 is not native).
  --precision int8 (ONNX Runtime's CPU provider, OpenVINO): each fold's graph is quantised statically
  (QDQ: convolutions and matrix products in int8, the rest fp32), its activation ranges calibrated on
  16 of that fold's training slices, evenly spaced: never on a slice it is scored on.
  The default label is <model>-<backend>-<precision>; `report` puts these beside fp32 PyTorch in its
  deployment table.

Policies (both are computed and stored; --policy picks the one printed):
  paper   the MiniSeg paper's semantics: per slice DSC, SEN, SPC (whole image) and HD (full
          symmetric Hausdorff distance between the foreground pixel sets, in pixels); an empty
          prediction scores 0 for all four and still counts; mean over a fold's slices, then the
          unweighted mean of the 5 fold means; mIoU from one confusion matrix pooled per fold
          (mean of background and infection IoU). This reproduces the paper's Table 5.
  strict  undefined values are NaN instead of 0 (DSC/IoU with both masks empty, SEN with an
          empty ground truth, precision with an empty prediction, HD/HD95 with either empty),
          left out of the means and counted (n_empty_pred, n_empty_gt); adds IoU, precision,
          HD95 (95th percentile of the boundary-to-boundary distances in each direction, the
          larger of the two, as MONAI's compute_hausdorff_distance), the Dice pooled
          over all pixels of a fold, NSD (normalised surface Dice: the share of both boundaries
          within --nsd-tolerance pixels of the other, default 2) and, where slice ids carry a
          volume (P9, P20, P1110, synthetic), per-volume 3-D DSC, SEN, HD and HD95 over each volume's
          stacked test slices (dsc_3d, sen_3d, hd_3d, hd95_3d: mean over the fold's volumes; pixel
          spacing 1 and one pixel per slice index along z, since PNGs carry no spacing).

--split grouped scores by the patient-grouped folds (see `folds`) and writes under
<results>/eval/<DATASET>-grouped/.

Writes <results>/eval/<DATASET>/<LABEL>.json (summary: per-fold values, mean and std across
folds, paper policy at the top level, strict under "strict") and <LABEL>.csv (one row per
slice, both policies; ratios as fractions, HD in pixels). DSC/SEN/SPC/mIoU print in percent.

EXAMPLES
  # the paper's MiniSeg CT100 row from the authors' released maps
  run_benchmark.py evaluate --dataset CT100 --data-root ../shared/data \\
      --maps ../shared/data/miniseg-release/SegMaps/COVID-19-CT100 --label miniseg-release-maps
  # ... and from the released weights, keeping the predicted maps
  run_benchmark.py evaluate --dataset CT100 --data-root ../shared/data --model miniseg \\
      --weights '../shared/data/miniseg-release/Pretrained/COVID-19-CT100/MiniSeg_CrossVal{fold}.pth' \\
      --save-maps /tmp/ct100-maps --label miniseg-release-weights
  # the five last.pt of our own `train` runs (fold0..fold4: {fold0} counts from 0)
  run_benchmark.py evaluate --dataset CT100 --model miniseg \\
      --weights 'results/runs/CT100/miniseg/fold{fold0}/last.pt' --label miniseg-ours
  # strict policy, machine-readable
  run_benchmark.py evaluate --dataset P1110 --maps DIR --policy strict --json
  # the released weights through OpenVINO in bf16 (label miniseg-openvino-bf16)
  run_benchmark.py evaluate --dataset CT100 --data-root ../shared/data --model miniseg \\
      --weights '../shared/data/miniseg-release/Pretrained/COVID-19-CT100/MiniSeg_CrossVal{fold}.pth' \\
      --backend openvino --precision bf16
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..cli import add_data_root, add_json, add_results
from ..deploy import BACKENDS, EXPORTERS, PRECISIONS
from ..evaluation import NSD_TOLERANCE_PX, PAPER_METRICS, POLICIES
from ..normalization import AUTO, CHOICES
from .folds import add_split

TORCH_PRECISIONS = ("float64", "float32")
STRICT_COLUMNS = PAPER_METRICS + ("hd95", "dsc_pooled", "iou", "precision", "nsd", "dsc_3d", "sen_3d", "hd_3d",
                                  "hd95_3d", "n_empty_pred", "n_empty_gt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True,
                        help="CT100, P9, P20, P1110, synthetic, or a dataset of your own under --data-root (scored "
                        "on its own slice size)")
    add_data_root(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--maps", metavar="DIR", help="precomputed maps: DIR/CrossVal{1..5}/<slice id>.png")
    source.add_argument("--model", metavar="NAME", help="registered model to run (needs --weights)")
    parser.add_argument(
        "--weights", metavar="PATTERN",
        help="per-fold weights file: {fold} = 1..5, the release's numbering (e.g. 'MiniSeg_CrossVal{fold}.pth'), or "
        "{fold0} = 0..4, our run folders' (e.g. 'results/runs/CT100/miniseg/fold{fold0}/last.pt')",
    )
    parser.add_argument("--save-maps", metavar="DIR", help="with --model: write predictions as DIR/CrossVal{k}/<id>.png")
    parser.add_argument("--policy", choices=POLICIES, default="paper", help="policy to print (both are stored)")
    parser.add_argument("--nsd-tolerance", type=float, default=NSD_TOLERANCE_PX, metavar="PX",
                        help=f"tolerance tau of the normalised surface Dice in pixels (strict policy; "
                        f"default {NSD_TOLERANCE_PX:g})")
    add_split(parser)
    add_results(parser)
    parser.add_argument("--label", help="name of the result files (default: 'maps', or the model name)")
    parser.add_argument("--device", default="auto", help="with --model: auto (cuda if available), cpu, cuda, cuda:1")
    parser.add_argument("--batch-size", type=int, default=8, help="with --model: slices per forward pass (default 8)")
    parser.add_argument(
        "--precision", choices=TORCH_PRECISIONS + PRECISIONS, default=None,
        help="with --model: arithmetic of the forward pass. torch: float64 (default: near-tied pixels then do not "
        "depend on thread count, CPU or cuDNN algorithm, so released weights reproduce released maps exactly) or "
        "float32 (faster); runtimes: fp32 (default), bf16, fp16, int8 (each fold's graph quantised, calibrated on "
        "16 of that fold's training slices)",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="with --model: what runs the forward: torch (default), onnxruntime or openvino")
    parser.add_argument("--exporter", choices=EXPORTERS, default="auto",
                        help="with --backend onnxruntime/openvino: the ONNX exporter (default auto: dynamo, "
                        "falling back to TorchScript)")
    parser.add_argument(
        "--normalization", choices=CHOICES, default=AUTO,
        help="with --model: input normalisation the weights were trained with: fold (the fold's training slices' "
        "mean/std), imagenet, or auto (default: the checkpoint's own protocol where it records one, else the "
        "model's paper recipe)",
    )
    add_json(parser)


def _check_arguments(args: argparse.Namespace) -> None:
    """Options that only make sense together."""
    if args.model and not args.weights:
        raise ValueError("--model needs --weights PATTERN (with {fold} standing for 1..5, or {fold0} for 0..4)")
    if args.maps and (args.weights or args.save_maps):
        raise ValueError("--weights and --save-maps go with --model, not with --maps")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not args.nsd_tolerance >= 0:
        raise ValueError(f"--nsd-tolerance must be >= 0 pixels, got {args.nsd_tolerance}")
    if args.maps and (args.backend != "torch" or args.precision):
        raise ValueError("--backend and --precision go with --model, not with --maps")
    args.precision = checked_precision(args.backend, args.precision)


def checked_precision(backend: str, precision: str | None, torch_precisions: tuple[str, ...] = TORCH_PRECISIONS) -> str:
    """The precision for `backend` (its default, the first it takes, when none is given); one the backend does not
    take is an error. `torch_precisions`: what --backend torch takes, its default first (predict: float32 first)."""
    accepted = torch_precisions if backend == "torch" else PRECISIONS
    if precision is None:
        return accepted[0]
    if precision not in accepted:
        raise ValueError(f"--precision {precision} does not go with --backend {backend}; "
                         f"it takes {', '.join(accepted)}")
    return precision


def _evaluate(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Run the evaluation; return it with the record's `source` and extra fields."""
    from ..evaluation import evaluate
    from ..env import environment, resolve_device

    device = resolve_device(args.device if args.model else "cpu")
    start = time.perf_counter()
    import torch

    from models import get_model_info

    if args.maps:
        result = evaluate.evaluate_maps(args.dataset, args.data_root, args.maps, args.split, args.nsd_tolerance)
        source = {"kind": "maps", "path": str(args.maps), "model": None}
    elif args.backend == "torch":
        result = evaluate.evaluate_weights(
            args.dataset, args.data_root, args.model, args.weights, device, args.batch_size, args.save_maps,
            getattr(torch, args.precision), args.split, args.nsd_tolerance, args.normalization,
        )
        source = {"kind": "weights", "path": args.weights, "model": args.model, "precision": args.precision,
                  "normalization": result.normalization}
    else:
        result, deployed = _evaluate_deployed(args, device)
        source = {"kind": "weights", "path": args.weights, "model": args.model, "precision": args.precision,
                  "normalization": result.normalization, **deployed}
    if args.model and get_model_info(args.model).low_res_logits:  # the record says its logits were upsampled
        source["low_res_logits"] = True
    extra = {"timings": {"eval_s": round(time.perf_counter() - start, 3)}, "environment": environment(device)}
    return result, source, extra


def _evaluate_deployed(args: argparse.Namespace, device: Any) -> tuple[Any, dict[str, Any]]:
    """evaluate_weights with each fold's model exported and run by --backend; the record's deployment fields."""
    import tempfile

    import torch

    from ..deploy.evaluate import FoldDeployer, deployment_target
    from ..evaluation import evaluate

    target = deployment_target(args.backend, device, args.precision)
    with tempfile.TemporaryDirectory(prefix="miniseg-bench-deploy-") as workdir:
        deployer = FoldDeployer(args.model, target, workdir, torch.get_num_threads(), args.exporter)
        result = evaluate.evaluate_weights(
            args.dataset, args.data_root, args.model, args.weights, device, args.batch_size, args.save_maps,
            torch.float32, args.split, args.nsd_tolerance, args.normalization, deploy=deployer,
        )
    return result, deployer.source()


def _table_rows(summary: dict[str, Any], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per fold, then mean and std across folds."""
    rows = [{"fold": f["fold"], "slices": f["n_slices"], **{c: f.get(c) for c in columns}} for f in summary["folds"]]
    for name in ("mean", "std"):
        rows.append({"fold": name, "slices": None, **{c: summary[name].get(c) for c in columns}})
    return rows


def _printable(summary: dict[str, Any], dataset: str, policy: str, json_path: str) -> dict[str, Any]:
    """The --json output: dataset, policy, folds, mean, std (percent; HD in px), and the summary file."""
    return {
        "dataset": dataset,
        "policy": policy,
        "folds": summary["folds"],
        "mean": summary["mean"],
        "std": summary["std"],
        "summary_json": json_path,
    }


def run(args: argparse.Namespace) -> int:
    from .._format import print_table
    from ..evaluation.evaluate import check_label, write_results
    from ..io import nan_to_none

    from ..errors import EXIT_USER_ERROR
    from ..preflight import evaluate_problems, report_problems

    _check_arguments(args)
    default = args.model if args.backend == "torch" else f"{args.model}-{args.backend}-{args.precision}"
    label = check_label(args.label or ("maps" if args.maps else default))
    problems = evaluate_problems(args.dataset, args.data_root, args.split, args.results, args.model, args.weights,
                                 args.maps)
    if problems:
        report_problems(problems, "nothing was evaluated")
        return EXIT_USER_ERROR
    result, source, extra = _evaluate(args)
    json_path = write_results(result, args.results, label, source, extra)
    summary = result.summary[args.policy]
    if args.json:
        print(json.dumps(nan_to_none(_printable(summary, result.dataset, args.policy, str(json_path))), indent=2))
        return 0
    columns = PAPER_METRICS if args.policy == "paper" else STRICT_COLUMNS
    print(f"{result.dataset} · {label} · policy {args.policy} · DSC/SEN/SPC/mIoU in %, HD in px")
    print_table(_table_rows(summary, columns), ("fold", "slices") + columns)
    print(f"wrote {json_path} and {json_path.with_suffix('.csv').name} ({extra['timings']['eval_s']:.1f} s)", file=sys.stderr)
    return 0
