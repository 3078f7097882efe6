"""Deployment: export registered models to ONNX and run them on ONNX Runtime and OpenVINO.

- `export.py`     torch -> ONNX (the dynamo exporter, the TorchScript one as fallback), ONNX checker
- `backends.py`   one small adapter per runtime behind one interface (targets, sessions, precision read back)
- `quantize.py`   INT8: the exported graph quantised statically (QDQ), calibrated on training slices only
- `agreement.py`  exported graph vs eager PyTorch on one slice: max |Δ| of the logits, argmax agreement
- `timing.py`     backend entries of a profile record, with the profiler's timing discipline
- `evaluate.py`   the per-fold hook that runs `evaluate --backend` through a runtime

The constants below are what the CLI offers; they live here, apart from the modules that import
torch.onnx, onnxruntime or openvino, so that building the parser stays fast. The runtimes are
optional (`pip install '.[deploy]'`); a missing one is an `errors.Unavailable` naming that command.
"""
from __future__ import annotations

#: `profile --backends`: `torch` is the profiler's own modes, the others run an exported ONNX graph.
BACKENDS = ("torch", "onnxruntime", "openvino")
RUNTIMES = BACKENDS[1:]
#: Precisions a runtime can be asked for; `auto` = fp32 plus what the device runs natively in reduced precision.
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
#: Precisions whose graph needs calibration slices (`quantize.py`): only when asked for, never under `auto`.
CALIBRATED = ("int8",)
#: `--exporter`: `auto` tries the dynamo exporter (exports every paper row) and falls back to TorchScript.
EXPORTERS = ("auto", "dynamo", "torchscript")
#: The optional dependencies of this package, and how to get them.
INSTALL_HINT = "pip install '.[deploy]'"
#: Where exported graphs go by default (git-ignored: binaries, not results).
DEFAULT_EXPORT_DIR = "exports"


def parse_backends(text: str) -> list[str]:
    """'torch,openvino' -> ['torch', 'openvino'] (order kept, repeats dropped); unknown names are a ValueError."""
    names = list(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in BACKENDS]
    if not names or unknown:
        raise ValueError(f"--backends {text!r}: unknown {unknown or 'empty'}; known: {', '.join(BACKENDS)}")
    return names


def parse_precisions(text: str) -> list[str] | None:
    """'auto' -> None (each runtime's default); 'fp32,bf16' -> ['fp32', 'bf16']; 'auto,int8' -> ['auto', 'int8']
    (each runtime's default plus int8); unknown names are a ValueError."""
    names = list(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if names == ["auto"]:
        return None
    unknown = [n for n in names if n not in (*PRECISIONS, "auto")]
    if not names or unknown:
        raise ValueError(f"--precisions {text!r}: unknown {unknown or 'empty'}; known: auto, {', '.join(PRECISIONS)}")
    return names
