"""INT8: an exported fp32 graph quantised statically by ONNX Runtime, calibrated on training slices only.

The graph is first prepared (`quant_pre_process`: ONNX shape inference and ONNX Runtime's basic
optimisations), then quantised in QDQ form: convolutions and matrix products only (`QUANTIZED_OPS`),
weights int8 per output channel, activations uint8 per tensor with ranges from the min and max seen on
the calibration slices. The element-wise layers between them (PReLU, additions, pooling, resizing)
stay fp32. The same QDQ graph runs on ONNX Runtime, which fuses each quantised convolution into an
integer kernel (QLinearConv), and on OpenVINO, which runs them in int8 on its CPU device.

Calibration slices never come from the slices scored: `evaluate --backend ... --precision int8` passes
fold k's training slices, normalised as fold k's weights are; `profile` takes the training slices of
CT100's fold 1 (paper split) where the data root has them, the agreement slice tr_im_0000 lying in fold
1's test set, else seeded synthetic slices. `CALIBRATION_SLICES` of them, evenly spaced.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..profiling.timing import error_text
from ..storage import raise_if_storage, storage_guard
from .agreement import standardised, synthetic_slice
from .backends import require

#: How many training slices calibrate the activation ranges.
CALIBRATION_SLICES = 16
#: The ONNX operators that get quantised; everything between them stays fp32.
QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
#: The dataset and fold whose training slices calibrate `profile`'s int8 graphs (the agreement slice is a test slice).
PROFILE_CALIBRATION = ("COVID-19-CT100", 1)


@dataclass(frozen=True)
class Calibration:
    """float32 (N, 3, H, W) inputs, normalised as the model sees them, and where they came from."""

    inputs: np.ndarray
    source: str


@dataclass
class QuantizeResult:
    """One quantisation: the int8 graph (None if it failed), the calibration it used, the time, and why not."""

    path: Path | None
    calibration: str
    calibration_slices: int
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.path is not None

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "format": "QDQ", "operators": list(QUANTIZED_OPS),
                "weights": "int8 per channel", "activations": "uint8 per tensor (min/max calibration)",
                "calibration": self.calibration, "calibration_slices": self.calibration_slices,
                "seconds": round(self.seconds, 2), "error": self.error}


def evenly_spaced(total: int, count: int) -> np.ndarray:
    """`count` indices spread evenly over range(total) (all of them when there are fewer)."""
    if total <= count:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, count).round().astype(int))


def int8_path(fp32_path: Path) -> Path:
    """Where the int8 graph of `<name>.onnx` goes: `<name>_int8.onnx` beside it."""
    return fp32_path.with_name(f"{fp32_path.stem}_int8.onnx")


def profile_calibration(side: int, data_root: str | Path | None, count: int = CALIBRATION_SLICES) -> Calibration:
    """`profile`'s calibration: CT100 fold 1's training slices at side x side, normalised with their own mean and
    std (the agreement slice's stand-in for fold statistics); seeded synthetic slices where CT100 is absent."""
    from ..datasets import dataset_dir, get_folds, load_on_truth_grid

    dataset, fold = PROFILE_CALIBRATION
    if data_root is not None and dataset_dir(dataset, data_root).is_dir():
        folds = get_folds(dataset, data_root)
        train_ids = [i for k, ids in enumerate(folds, start=1) if k != fold for i in ids]
        chosen = [train_ids[i] for i in evenly_spaced(len(train_ids), count)]
        grey = load_on_truth_grid(dataset, data_root, chosen).images
        source = f"{dataset} fold {fold}'s training slices ({len(chosen)} of {len(train_ids)}, evenly spaced)"
    else:
        grey = np.stack([synthetic_slice(side, seed) for seed in range(1, count + 1)])
        source = f"synthetic (seeds 1-{count}; no {dataset} under {data_root})"
    return Calibration(standardised(grey, side), source)


class _Reader:
    """ONNX Runtime's calibration reader over an array: one slice per call, then None."""

    def __init__(self, input_name: str, inputs: np.ndarray) -> None:
        self.batches = iter([{input_name: inputs[i:i + 1]} for i in range(len(inputs))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)

    def rewind(self) -> None:  # part of the reader interface; the calibrator reads once
        raise NotImplementedError("the calibration slices are read once")


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantiser logs every tensor it leaves alone at WARNING on the root logger; keep errors only."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(fp32_path: Path, out_path: Path, calibration: Calibration) -> QuantizeResult:
    """Quantise `fp32_path` into `out_path` (written whole or not at all); a failure is kept in the result.

    A full disk or a lost permission is not a failure of this graph: it raises (`storage.StorageFailure`).
    """
    quantization = require("onnxruntime.quantization", "ONNX Runtime's quantisation (onnxruntime)")
    onnx = require("onnx")
    begin = time.perf_counter()
    with storage_guard(out_path.parent):
        out_path.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_path.stem}-", dir=out_path.parent))
    n_slices = len(calibration.inputs)
    try:
        prepared, quantized = work / "prepared.onnx", work / out_path.name
        with _quiet_quantizer():
            quantization.quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            input_name = onnx.load(str(prepared), load_external_data=False).graph.input[0].name
            quantization.quantize_static(
                str(prepared), str(quantized), _Reader(input_name, calibration.inputs),
                quant_format=quantization.QuantFormat.QDQ, op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=True, activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8, calibrate_method=quantization.CalibrationMethod.MinMax)
        onnx.checker.check_model(str(quantized))
        quantized.replace(out_path)
        return QuantizeResult(out_path, calibration.source, n_slices, time.perf_counter() - begin)
    except Exception as err:  # noqa: BLE001 - a graph the quantiser cannot take is this result's failure
        raise_if_storage(err, out_path.parent)
        return QuantizeResult(None, calibration.source, n_slices, time.perf_counter() - begin, error_text(err))
    finally:
        shutil.rmtree(work, ignore_errors=True)
