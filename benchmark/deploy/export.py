"""Export a model to ONNX: eval-mode logits for a (N, 3, side, side) input, the batch dimension dynamic.

Exporters (torch.onnx.export in torch >= 2.5): `dynamo` (torch.export + onnxscript; exports every row
of the paper's Table 4) and `torchscript` (`dynamo=False`, the tracing exporter: fast, but it fails
on adaptive pooling whose output does not divide its input, as in PSPNet, ANNNet and GFF). `auto`
tries dynamo first and falls back to TorchScript; every attempt's error is kept. The file is checked
with onnx.checker and written atomically (a temporary folder beside it, then renamed).
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from . import EXPORTERS
from ..contract import main_output
from ..storage import raise_if_storage, storage_guard
from .backends import require

INPUT_NAME, OUTPUT_NAME = "input", "logits"
#: Loggers the exporters write progress and diagnostics to (silenced during an export; errors still raise).
EXPORT_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript")


@dataclass
class ExportResult:
    """What one export gave: the file (None if every exporter failed), by which exporter, and why not."""

    model: str
    path: Path | None
    exporter: str | None
    opset: int | None
    input_shape: list[Any]
    seconds: float
    attempts: list[dict[str, str | None]] = field(default_factory=list)  # [{exporter, error}] in the order tried

    @property
    def ok(self) -> bool:
        return self.path is not None

    @property
    def error(self) -> str | None:
        """Why no file was written: each exporter's error, joined."""
        if self.ok:
            return None
        return "; ".join(f"{a['exporter']}: {a['error']}" for a in self.attempts if a['error']) or "not exported"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path) if self.path else None
        out["error"] = self.error
        return out


class MainOutput(nn.Module):
    """The model's main logits only (a model returning a tuple in eval mode exports its first element)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return main_output(self.model(x))


def exporter_order(exporter: str) -> list[str]:
    """The exporters `exporter` stands for, in the order tried."""
    if exporter not in EXPORTERS:
        raise ValueError(f"--exporter {exporter!r}: choose one of {', '.join(EXPORTERS)}")
    return ["dynamo", "torchscript"] if exporter == "auto" else [exporter]


@contextlib.contextmanager
def _fds_silenced() -> Iterator[None]:
    """Send the process's stdout and stderr file descriptors to /dev/null for the block: the TorchScript
    exporter prints a whole graph from C++ when it fails, which Python-level redirection does not catch."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporters' progress lines, warnings and diagnostics off the command's output."""
    previous = {name: logging.getLogger(name).level for name in EXPORT_LOGGERS}
    sink = io.StringIO()
    try:
        for name in EXPORT_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
                _fds_silenced():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


def _export_once(net: nn.Module, sample: torch.Tensor, path: Path, exporter: str, opset: int | None) -> None:
    """One exporter's export of `net` at `sample`'s shape, batch dynamic, to `path`."""
    common = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": opset}
    if exporter == "dynamo":
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.onnx.export(net, (sample,), dynamo=True, dynamic_shapes=({0: batch},), optimize=True,
                                    external_data=False, **common)
        program.save(str(path))
    else:
        torch.onnx.export(net, (sample,), str(path), dynamo=False, do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          **{**common, "opset_version": opset or TORCHSCRIPT_OPSET})


#: The TorchScript exporter's opset when none is asked for (17: LayerNormalization and every op our models use).
TORCHSCRIPT_OPSET = 17


def onnx_opset(path: Path) -> int | None:
    """The default-domain opset a saved graph imports."""
    onnx = require("onnx")
    graph = onnx.load(str(path), load_external_data=False)
    return next((entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx")), None)


def check_onnx(path: Path) -> None:
    """onnx.checker on the file (by path: large graphs and external data are checked too); raises when invalid."""
    require("onnx").checker.check_model(str(path))


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
SUMMARY_CAUSE = re.compile(r"^<class '(?:[\w.]+\.)?(\w+)'>: (.+)$")


def _error_text(err: BaseException) -> str:
    """One line: the root cause where the dynamo exporter summarises one, else the exception's first line
    (the TorchScript exporter appends a whole graph; the dynamo one a page of advice)."""
    text = ANSI_ESCAPE.sub("", str(err)).strip()
    kind, first = type(err).__name__, (text.splitlines() or [""])[0]
    if "## Exception summary" in text:
        causes = [SUMMARY_CAUSE.match(line) for line in text.split("## Exception summary", 1)[1].splitlines()]
        found = next((m for m in causes if m), None)
        if found:
            kind, first = found.group(1), found.group(2)
    return f"{kind}: {first.split(' Please feel free to request support')[0]}"[:300]


def export_onnx(
    model: nn.Module, name: str, path: str | Path, side: int | tuple[int, int], exporter: str = "auto",
    opset: int | None = None,
) -> ExportResult:
    """Export `model` (eval mode, on CPU, main logits only) to `path` at side x side (or (height, width)); never
    raises for a model that does not export: the result says why (`ok` False, `error`). Missing onnx/onnxscript
    raises Unavailable."""
    require("onnx")
    order = exporter_order(exporter)
    if "dynamo" in order:
        require("onnxscript", "onnxscript (the dynamo exporter's ONNX builder)")
    path = Path(path)
    with storage_guard(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()  # the caller's model stays on its device
    net = MainOutput(model).eval()
    height, width = (side, side) if isinstance(side, int) else side
    sample = torch.zeros(1, 3, height, width)
    result = ExportResult(name, None, None, None, ["N", 3, height, width], 0.0)
    begin = time.perf_counter()
    for attempt in order:
        with storage_guard(path.parent):
            workdir = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
        try:
            with _quiet(), torch.no_grad():
                _export_once(net, sample, workdir / path.name, attempt, opset)
            check_onnx(workdir / path.name)
            for produced in workdir.iterdir():  # the graph, and external data files if the exporter wrote any
                os.replace(produced, path.parent / produced.name)
            result.attempts.append({"exporter": attempt, "error": None})
            result.path, result.exporter, result.opset = path, attempt, onnx_opset(path)
            break
        except Exception as err:  # noqa: BLE001 - an exporter's failure is recorded; the next one is tried
            raise_if_storage(err, path.parent)  # a full disk, not the model: every later export would fail too
            result.attempts.append({"exporter": attempt, "error": _error_text(err)})
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    result.seconds = round(time.perf_counter() - begin, 3)
    return result


def export_path(export_dir: str | Path, model: str, side: int) -> Path:
    """`<export_dir>/<model>_<side>px.onnx`."""
    return Path(export_dir) / f"{model}_{side}px.onnx"
