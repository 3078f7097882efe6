"""Execution modes of a timed forward (`eager`, `bf16`, `fp16`, `channels_last`, `compile`, `cudagraph`).

A mode is `eager` or a `+`-joined set of options, e.g. `bf16+channels_last+cudagraph`.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
OPTIONS = ("channels_last", "compile", "cudagraph")
MODE_PARTS = ("eager", *DTYPES, *OPTIONS)
#: How many forwards run on a side stream before a CUDA graph is captured (as torch's docs advise).
GRAPH_WARMUP_CALLS = 3


@dataclass(frozen=True)
class Mode:
    """One way of running the forward; the default is the paper's fp32 eager forward."""

    dtype: str | None = None
    channels_last: bool = False
    compile: bool = False
    cudagraph: bool = False

    @property
    def name(self) -> str:
        """Canonical spelling: dtype, then channels_last, compile, cudagraph, joined by '+'."""
        parts = [self.dtype] if self.dtype else []
        parts += [option for option in OPTIONS if getattr(self, option)]
        return "+".join(parts) or "eager"

    @property
    def key_suffix(self) -> str:
        """Suffix of the flat result keys: '' for eager, else '_' + the name with '+' as '_'."""
        return "" if self.name == "eager" else "_" + self.name.replace("+", "_")

    @property
    def needs_cuda(self) -> bool:
        """CUDA graphs exist on CUDA devices only."""
        return self.cudagraph


def parse_mode(text: str) -> Mode:
    """Parse one mode such as 'eager', 'bf16' or 'fp16+channels_last+compile'."""
    parts = [p.strip().lower() for p in text.split("+")]
    if not text.strip() or "" in parts:
        raise ValueError(f"empty mode in {text!r}; modes are 'eager' or '+'-joined parts of {MODE_PARTS}")
    unknown = [p for p in parts if p not in MODE_PARTS]
    if unknown:
        raise ValueError(f"unknown mode part(s) {unknown} in {text!r}; known: {', '.join(MODE_PARTS)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"mode {text!r} repeats a part")
    if "eager" in parts and len(parts) > 1:
        raise ValueError(f"mode {text!r}: 'eager' is the plain fp32 forward and combines with nothing")
    dtypes = [p for p in parts if p in DTYPES]
    if len(dtypes) > 1:
        raise ValueError(f"mode {text!r}: choose one of bf16 and fp16")
    return Mode(dtype=dtypes[0] if dtypes else None, **{option: option in parts for option in OPTIONS})


def parse_modes(text: str) -> list[Mode]:
    """Parse a comma-separated list of modes; repeats are dropped, order kept."""
    modes: list[Mode] = []
    for item in text.split(","):
        mode = parse_mode(item)
        if mode not in modes:
            modes.append(mode)
    return modes


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool = True) -> Iterator[None]:
    """Set cudnn.benchmark for the block (the release's setting) and restore it after."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


@contextlib.contextmanager
def inference_context(mode: Mode, device: torch.device) -> Iterator[None]:
    """no_grad, cudnn.benchmark on, and autocast to the mode's dtype (uncached under CUDA graphs)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        stack.enter_context(cudnn_benchmark(True))
        if mode.dtype:
            # Graph capture needs autocast's weight-cast cache off (torch.cuda.graph docs).
            stack.enter_context(torch.autocast(device.type, dtype=DTYPES[mode.dtype], cache_enabled=not mode.cudagraph))
        yield


def prepare_forward(model: nn.Module, mode: Mode, inputs: torch.Tensor) -> Callable[[], Any]:
    """A no-argument callable running `mode`'s forward of a copy of `model` on `inputs`.

    Call it (and this function) inside `inference_context(mode, device)`. `compile+cudagraph`
    uses inductor's own CUDA graphs (torch.compile mode 'reduce-overhead').
    """
    net = copy.deepcopy(model).eval()
    if mode.channels_last:
        net = net.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    if mode.compile:
        torch.compiler.reset()
        net = torch.compile(net, mode="reduce-overhead" if mode.cudagraph else None)
        if mode.cudagraph:
            return marked_steps(net, inputs)
    elif mode.cudagraph:
        return capture_graph(net, inputs)
    return lambda: net(inputs)


def marked_steps(net: nn.Module, inputs: torch.Tensor) -> Callable[[], Any]:
    """Each call starts a new step of inductor's CUDA graph trees, as torch.compiler's docs ask for inference."""

    def step() -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        return net(inputs)

    return step


def capture_graph(net: nn.Module, static_inputs: torch.Tensor) -> Callable[[], Any]:
    """Capture `net(static_inputs)` in a CUDA graph; the callable replays it and returns the static output."""
    side = torch.cuda.Stream(device=static_inputs.device)
    side.wait_stream(torch.cuda.current_stream(static_inputs.device))
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARMUP_CALLS):
            net(static_inputs)
    torch.cuda.current_stream(static_inputs.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # Capture on the warm-up stream: per-stream library handles then exist before capture starts.
    with torch.cuda.graph(graph, stream=side):
        static_output = net(static_inputs)

    def replay() -> Any:
        graph.replay()
        return static_output

    return replay
