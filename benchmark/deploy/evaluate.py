"""`evaluate --backend`: each fold's weights exported to ONNX and run by a runtime, then scored as usual.

`FoldDeployer` is the per-fold hook of `evaluation.evaluate.evaluate_weights`: it exports the fold's
model (weights loaded) at the size of the slices it runs on (the ground truth's grid) into a working
folder, opens it on the runtime target and hands back a module that `predict` calls like the model
(float32 NCHW in, logits out). What ran is kept for the eval record's `source`: runtime and version,
device, the precision asked for and the one each fold executed in, the exporter and opset of each
fold's graph. With `--precision int8`, each fold's graph is quantised (`quantize.py`) on
`CALIBRATION_SLICES` of that fold's training slices, evenly spaced and normalised as its test slices
are; the record keeps what calibrated each fold.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import Unavailable
from .backends import Session, Target, adapter
from .export import export_onnx
from .quantize import CALIBRATION_SLICES, Calibration, evenly_spaced, int8_path, quantize_int8

#: What `predict` (and any caller without training slices) is told when asked for int8.
NO_CALIBRATION = ("int8 needs calibration slices, a fold's training slices: quantise through `evaluate --backend "
                  "... --precision int8` on a dataset, or pick fp32/bf16/fp16")


class DeployedModel(nn.Module):
    """A runtime session called like a model: float32 NCHW tensor in, logits tensor (CPU) out.

    It carries the registry name of the model it was exported from (`model_name`, as `create_model` sets it),
    so `predict`'s logits check names that model and honours its `low_res_logits`.
    """

    def __init__(self, session: Session, model_name: str) -> None:
        super().__init__()
        self.session, self.model_name = session, model_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(np.ascontiguousarray(x.detach().cpu().float().numpy()))
        return torch.from_numpy(np.array(logits, dtype=np.float32, copy=True))  # the runtime reuses its buffer


def deployment_target(backend: str, device: torch.device, precision: str) -> Target:
    """The runtime target of `evaluate --backend B --precision P` on `device`; one that cannot run here raises."""
    matches = [t for t in adapter(backend).targets(device, [precision])]
    runnable = [t for t in matches if t.skip is None]
    if not runnable:
        reasons = "; ".join(t.skip.removeprefix("skipped: ") for t in matches if t.skip)
        raise Unavailable(f"--backend {backend} --precision {precision} on {device}: {reasons}")
    return runnable[0]


class FoldDeployer:
    """Export fold k's model and open it on `target` (the hook `evaluate_weights(deploy=...)` calls)."""

    def __init__(self, model_name: str, target: Target, workdir: str | Path, threads: int,
                 exporter: str = "auto") -> None:
        self.model_name, self.target, self.workdir = model_name, target, Path(workdir)
        self.threads, self.exporter = threads, exporter
        self.folds: list[dict[str, Any]] = []
        self.runtime_version: str | None = None

    def __call__(self, model: nn.Module, fold: int, size: tuple[int, int], training: Any = None) -> nn.Module:
        """Fold `fold`'s model as a runtime session at `size`; `training` (an `evaluation.evaluate.TrainingInputs`)
        calibrates an int8 graph."""
        path = self.workdir / f"{self.model_name}_fold{fold}.onnx"
        export = export_onnx(model, self.model_name, path, tuple(size), self.exporter)
        if not export.ok:
            raise Unavailable(f"{self.model_name}: fold {fold}'s weights cannot be exported to ONNX ({export.error}); "
                              "evaluate it with --backend torch")
        graph, info = export.path, {"fold": fold, "size": list(size), "exporter": export.exporter,
                                    "opset": export.opset}
        if self.target.precision == "int8":
            graph, info["quantization"] = self._quantized(export.path, fold, training)
        session = adapter(self.target.backend).open(graph, self.target, self.threads)
        self.runtime_version = session.runtime_version
        self.folds.append({**info, "execution_precision": session.execution_precision(), "notes": session.notes})
        return DeployedModel(session, self.model_name)

    def _quantized(self, fp32_path: Path, fold: int, training: Any) -> tuple[Path, dict[str, Any]]:
        """The int8 graph of fold `fold`, calibrated on its training slices; no slices or a failure raise."""
        if training is None or not len(training):
            raise Unavailable(NO_CALIBRATION)
        chosen = evenly_spaced(len(training), CALIBRATION_SLICES)
        calibration = Calibration(training.take(chosen), f"fold {fold}'s training slices ({len(chosen)} of "
                                                         f"{len(training)}, evenly spaced)")
        quantized = quantize_int8(fp32_path, int8_path(fp32_path), calibration)
        if not quantized.ok:
            raise Unavailable(f"{self.model_name}: fold {fold}'s graph cannot be quantised to int8 ({quantized.error})")
        return quantized.path, quantized.to_dict()

    def source(self) -> dict[str, Any]:
        """The eval record's deployment fields."""
        executed = sorted({f["execution_precision"] for f in self.folds})
        return {"backend": self.target.backend, "deployment": {
            "device": self.target.device, "precision": self.target.precision,
            "execution_precision": executed[0] if len(executed) == 1 else executed,
            "runtime_version": self.runtime_version, "threads": self.threads, "folds": self.folds}}
