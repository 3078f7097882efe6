"""Runtimes that run an exported ONNX graph: one small adapter per runtime behind one interface.

An adapter says which `Target`s (device or execution provider x precision) it can run on this machine,
and why not where it cannot (`Target.skip`); `open` turns an ONNX file into a `Session` whose `run`
maps a float32 NCHW batch to logits. Each session records the runtime's version, the threads it was
given and the precision it actually executes in, read back from the runtime, never assumed.

- ONNX Runtime: the CPU execution provider (fp32; int8 for a quantised graph, `quantize.py`), and on
  `--device cuda` the CUDA (fp32) and TensorRT (fp32, fp16) providers when the installed build has them.
- OpenVINO: its CPU device in f32 and in the reduced precisions the CPU runs natively
  (`OPTIMIZATION_CAPABILITIES`: BF16 on AVX512-BF16 or AMX, FP16 on AVX512-FP16/AMX-FP16). A precision
  asked for that is not native still runs: the execution precision OpenVINO reports is recorded with a note.
  int8 runs a quantised graph: its quantised convolutions in int8, the rest in f32.

An int8 target is opened on the quantised graph (`quantize.int8_path`), never on the fp32 one; whether the
runtime really runs integer kernels is read back (ONNX Runtime: the integer operators of its optimised
graph; OpenVINO: the nodes whose runtime precision is i8/u8).
"""
from __future__ import annotations

import importlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import Unavailable
from . import CALIBRATED, INSTALL_HINT, PRECISIONS

ORT_PROVIDERS = {"cpu": ("CPUExecutionProvider",), "cuda": ("CUDAExecutionProvider", "TensorrtExecutionProvider")}
ORT_PRECISIONS = {"CPUExecutionProvider": ("fp32", "int8"), "CUDAExecutionProvider": ("fp32",),
                  "TensorrtExecutionProvider": ("fp32", "fp16")}
OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}  # ours -> OpenVINO's inference_precision names
OV_INT8_REST = "f32"  # the precision hint of an int8 graph: its layers that are not quantised run in f32
OV_INTEGER = ("i8", "u8")  # OpenVINO runtime precisions of integer execution
#: ONNX Runtime's operators that compute on integers (its optimised graph of a QDQ model holds them).
ORT_INTEGER_OPS = frozenset({"QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "QGemm",
                             "DynamicQuantizeMatMul", "QLinearConvTranspose"})
OV_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}  # ours -> OPTIMIZATION_CAPABILITIES entries
OV_NOT_ON_GPU = "skipped: OpenVINO runs on the CPU here (an NVIDIA GPU is not an OpenVINO device)"


def require(module: str, runtime: str | None = None) -> ModuleType:
    """Import an optional dependency; missing, it is an `Unavailable` naming the extras to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise Unavailable(f"{runtime or module} is not installed ({err}); {INSTALL_HINT} adds it") from None


@dataclass(frozen=True)
class Target:
    """Where and how a runtime runs a graph: its device or execution provider, and the precision asked for."""

    backend: str
    device: str
    precision: str
    skip: str | None = None  # why this target cannot run here (None: it can)

    @property
    def key(self) -> str:
        """'onnxruntime:CPUExecutionProvider:fp32' (unique within a record)."""
        return f"{self.backend}:{self.device}:{self.precision}"


@dataclass
class Session:
    """A graph loaded by a runtime for one target; `run(float32 NCHW) -> logits` (the runtime's own array)."""

    target: Target
    runtime_version: str
    threads: int
    execution_precision: Callable[[], str]
    run: Callable[[np.ndarray], np.ndarray]
    details: Callable[[], dict[str, Any]] = field(default=lambda: {})
    notes: list[str] = field(default_factory=list)


class RuntimeAdapter:
    """The interface of every runtime: its package, the targets it runs here, and sessions on an ONNX file."""

    name = ""  # the package, as imported and as `--backends` names it
    label = ""  # its name for people

    def module(self) -> ModuleType:
        """The runtime's package; missing, an Unavailable naming the extras to install."""
        return require(self.name, f"{self.label} ({self.name})")

    def version(self) -> str:
        return self.module().__version__

    def targets(self, device: torch.device, precisions: Sequence[str] | None = None) -> list[Target]:
        raise NotImplementedError

    def open(self, onnx_path: Path, target: Target, threads: int) -> Session:
        raise NotImplementedError


class OnnxRuntimeAdapter(RuntimeAdapter):
    """ONNX Runtime: CPU provider on a CPU; CUDA and TensorRT providers on a GPU when the build has them."""

    name, label = "onnxruntime", "ONNX Runtime"

    def targets(self, device: torch.device, precisions: Sequence[str] | None = None) -> list[Target]:
        """Every provider of the device type x precision; absent providers and unsupported precisions are skips."""
        available = set(self.module().get_available_providers())
        out = []
        for provider in ORT_PROVIDERS["cuda" if device.type == "cuda" else "cpu"]:
            supported = ORT_PRECISIONS[provider]
            for precision in precisions or [p for p in supported if p not in CALIBRATED]:
                skip = None
                if provider not in available:
                    skip = (f"skipped: this onnxruntime build has no {provider} (it has {', '.join(sorted(available))};"
                            " a GPU build such as onnxruntime-gpu adds it)")
                elif precision not in supported:
                    skip = f"skipped: {provider} runs {', '.join(supported)} graphs here, not {precision}"
                out.append(Target(self.name, provider, precision, skip))
        return out

    def open(self, onnx_path: Path, target: Target, threads: int) -> Session:
        """An InferenceSession with `threads` intra-op threads, sequential execution, every graph optimisation."""
        if target.precision == "int8":
            return self._open_int8(onnx_path, target, threads)
        provider_options: dict[str, Any] = {}
        if target.device == "TensorrtExecutionProvider" and target.precision == "fp16":
            provider_options["trt_fp16_enable"] = True
        providers = [(target.device, provider_options)]
        if target.device != "CPUExecutionProvider":
            providers.append(("CPUExecutionProvider", {}))  # for nodes the GPU provider does not take
        session = self.module().InferenceSession(str(onnx_path), self._options(threads), providers=providers)
        # ONNX Runtime computes a float32 graph in float32 on CPU and CUDA; TensorRT with fp16 enabled picks
        # fp16 or fp32 per layer, which the session does not report.
        executed = "fp16 allowed (TensorRT picks per layer)" if provider_options else "fp32"
        return self._session(session, target, threads, executed, {})

    def _options(self, threads: int) -> Any:
        """Session options: `threads` intra-op threads, sequential execution, every graph optimisation, errors only."""
        ort = self.module()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        return options

    def _open_int8(self, onnx_path: Path, target: Target, threads: int) -> Session:
        """A quantised graph on the CPU provider; its integer operators counted in the graph ONNX Runtime optimised."""
        onnx = require("onnx")
        options = self._options(threads)
        with tempfile.TemporaryDirectory(prefix="miniseg-bench-ort-") as folder:
            options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
            session = self.module().InferenceSession(str(onnx_path), options, providers=[target.device])
            nodes = onnx.load(options.optimized_model_filepath, load_external_data=False).graph.node
        integer = sum(node.op_type in ORT_INTEGER_OPS for node in nodes)
        executed = "int8" if integer else "fp32 (no integer kernel in the optimised graph)"
        return self._session(session, target, threads, executed, {"integer_nodes": integer, "nodes": len(nodes)})

    def _session(self, session: Any, target: Target, threads: int, executed: str, extra: dict[str, Any]) -> Session:
        input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
        used = session.get_providers()
        notes = [] if used[0] == target.device else [f"asked for {target.device}, ONNX Runtime chose {used}"]
        return Session(
            target=target, runtime_version=self.module().__version__, threads=threads,
            execution_precision=lambda: executed, run=lambda batch: session.run([output_name], {input_name: batch})[0],
            details=lambda: {"providers": used, **extra}, notes=notes,
        )


class OpenVinoAdapter(RuntimeAdapter):
    """OpenVINO on its CPU device: f32, and the reduced precisions the CPU runs natively."""

    name, label = "openvino", "OpenVINO"

    def native_precisions(self) -> list[str]:
        """The reduced precisions this CPU runs natively, as OpenVINO reports them."""
        capabilities = self.module().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return [ours for ours, name in OV_CAPABILITY.items() if name in capabilities]

    def targets(self, device: torch.device, precisions: Sequence[str] | None = None) -> list[Target]:
        """fp32 plus the native reduced precisions (or those asked for); on a GPU run, skipped with the reason."""
        wanted = list(precisions) if precisions else ["fp32", *self.native_precisions()]  # int8 only when asked
        skip = None if device.type == "cpu" else OV_NOT_ON_GPU
        return [Target(self.name, "CPU", precision, skip) for precision in wanted]

    def open(self, onnx_path: Path, target: Target, threads: int) -> Session:
        """Compile the graph for each batch size on first use (static shapes), with the precision hint and threads."""
        ov = self.module()
        graph = _OpenVinoGraph(ov.Core(), onnx_path, target, threads)
        notes = []
        native = self.native_precisions()
        if target.precision in OV_CAPABILITY and target.precision not in native:
            notes.append(f"{target.precision} is not native on this CPU (OpenVINO's native reduced precisions here: "
                         f"{', '.join(native) or 'none'})")
        return Session(target=target, runtime_version=ov.__version__, threads=threads,
                       execution_precision=graph.execution_precision, run=graph.run,
                       details=lambda: {"runtime_precisions": graph.runtime_precisions(), "native_reduced": native},
                       notes=notes)


class _OpenVinoGraph:
    """One ONNX graph on OpenVINO's CPU device, compiled once per batch size (static shapes run fastest)."""

    def __init__(self, core: Any, onnx_path: Path, target: Target, threads: int) -> None:
        self.core, self.target = core, target
        self.graph = core.read_model(str(onnx_path))
        self.config = {"INFERENCE_PRECISION_HINT": OV_PRECISION.get(target.precision, OV_INT8_REST),
                       "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        self.compiled: dict[int, tuple[Any, Any]] = {}

    def compiled_for(self, batch_size: int) -> tuple[Any, Any]:
        """(compiled model, infer request) for a batch size, compiled on first use."""
        if batch_size not in self.compiled:
            shaped = self.graph.clone()
            port = shaped.inputs[0]
            dims = list(port.get_partial_shape())[1:]
            if not all(d.is_static for d in dims):
                shape = port.get_partial_shape()
                raise ValueError(f"{port.any_name}: only the batch dimension may be dynamic, got {shape}")
            shaped.reshape({port.any_name: [batch_size, *(d.get_length() for d in dims)]})
            model = self.core.compile_model(shaped, self.target.device, self.config)
            self.compiled[batch_size] = (model, model.create_infer_request())
        return self.compiled[batch_size]

    def run(self, batch: np.ndarray) -> np.ndarray:
        _, request = self.compiled_for(batch.shape[0])
        request.infer({0: batch})
        return request.get_output_tensor(0).data

    def any_compiled(self) -> Any:
        """A compiled model (batch 1 if none was compiled yet): they share their execution settings."""
        return next(iter(self.compiled.values()))[0] if self.compiled else self.compiled_for(1)[0]

    def execution_precision(self) -> str:
        """The inference precision OpenVINO settled on, read back from the compiled model; for an int8 graph,
        int8 when some of its nodes run in i8/u8."""
        if self.target.precision == "int8" and any(p in OV_INTEGER for p in self.runtime_precisions()):
            return "int8"
        return _ours(self.any_compiled().get_property("INFERENCE_PRECISION_HINT").get_type_name())

    def runtime_precisions(self) -> dict[str, int]:
        return runtime_precisions(self.any_compiled())


def _ours(ov_type_name: str) -> str:
    """OpenVINO's element type name -> our precision name ('f32' -> 'fp32'); others kept."""
    return {value: key for key, value in OV_PRECISION.items()}.get(ov_type_name, ov_type_name)


def runtime_precisions(compiled: Any) -> dict[str, int]:
    """How many nodes of the compiled graph execute in each precision (OpenVINO's `runtimePrecision`)."""
    counts: dict[str, int] = {}
    for node in compiled.get_runtime_model().get_ordered_ops():
        info = node.get_rt_info()
        if "runtimePrecision" in info:
            name = _ours(str(info["runtimePrecision"].astype(str)))
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


ADAPTERS = {adapter.name: adapter for adapter in (OnnxRuntimeAdapter(), OpenVinoAdapter())}


def adapter(name: str) -> RuntimeAdapter:
    """The adapter of runtime `name` (a KeyError listing the known ones otherwise)."""
    if name not in ADAPTERS:
        raise KeyError(f"unknown runtime {name!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[name]


def plan_targets(backends: Sequence[str], device: torch.device, precisions: Sequence[str] | None) -> list[Target]:
    """Every target of the runtimes among `backends` (`torch` is the profiler's own); a missing runtime raises.
    `precisions` None is each runtime's default; 'auto' among others is that default plus the others."""
    unknown = [p for p in precisions or () if p not in (*PRECISIONS, "auto")]
    if unknown:
        raise ValueError(f"unknown precision(s) {unknown}; known: auto, {', '.join(PRECISIONS)}")
    asked = [p for p in precisions or () if p != "auto"]
    with_default = precisions is None or "auto" in precisions
    planned: dict[str, Target] = {}
    for name in backends:
        if name == "torch":
            continue
        runtime = adapter(name)
        found = runtime.targets(device, None) if with_default else []
        for target in found + (runtime.targets(device, asked) if asked else []):
            planned.setdefault(target.key, target)
    return list(planned.values())
