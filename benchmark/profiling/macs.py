"""Multiply-accumulate counts: fvcore (cross-checked by torch's FlopCounterMode), and fvcore's rules on meta tensors."""
from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.utils._pytree as pytree
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass(frozen=True)
class MacCount:
    """MACs of one forward; `flop_counter_gmacs` is torch's count (FLOPs / 2), None if it failed.

    `counted_on` is "meta" (fvcore's rules on a meta forward: the ops fvcore cannot count are not
    listed, so `unsupported_ops` is None) or "trace" (fvcore's own jit trace, which lists them)."""

    gmacs: float
    unsupported_ops: dict[str, int] | None = field(default_factory=dict)
    flop_counter_gmacs: float | None = None
    counted_on: str = "trace"

    @property
    def gflops(self) -> float:
        """FLOPs counting one multiply-accumulate as two operations."""
        return 2 * self.gmacs


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the block and restore its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def training_graph(model: nn.Module) -> Iterator[nn.Module]:
    """The training model's forward (auxiliary heads run and returned) with normalisation and dropout as
    in inference, for the block; every module's mode is restored after.

    This is how the release counted its models: their eval forward still ran the auxiliary heads
    (MiniSeg's pred2-4, ANN's dsn, DFN's border branch, Inf-Net's side maps), and Table 4 counts the
    training model. Ours run auxiliary heads in train mode only, so train mode gives the same graph.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.train()
    for module in model.modules():
        if isinstance(module, (nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd)):
            module.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def forward_mode(model: nn.Module, aux_heads: bool) -> contextlib.AbstractContextManager:
    """`training_graph` when the auxiliary heads are to be counted, else plain eval mode."""
    return training_graph(model) if aux_heads else eval_mode(model)


@contextlib.contextmanager
def _quiet_fvcore() -> Iterator[None]:
    """Silence fvcore's logger and the tracer's Python warnings (deprecations, TracerWarning)."""
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def fvcore_macs(model: nn.Module, inputs: torch.Tensor) -> tuple[int, dict[str, int]]:
    """fvcore's total (one count per multiply-accumulate) and the ops it could not count."""
    with _quiet_fvcore(), eval_mode(model), torch.no_grad():
        from fvcore.nn import FlopCountAnalysis  # importing it warns about torch.jit.script

        analysis = FlopCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        total = analysis.total()
        unsupported = dict(sorted(analysis.unsupported_ops().items()))
    return int(total), unsupported


def flop_counter_macs(model: nn.Module, inputs: torch.Tensor) -> int:
    """torch.utils.flop_counter's FLOPs of one forward, halved to MACs (it counts 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    with eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(inputs)
    return counter.get_total_flops() // 2


def count_macs(
    model: nn.Module, input_shape: Sequence[int] = (1, 3, 512, 512), device: str | torch.device = "cpu"
) -> MacCount:
    """MACs of one eval-mode forward on `input_shape` (fvcore's rules), with torch's count beside it.

    Counted on a meta copy (about a second even for a ResNet-101 net at 512, where fvcore's own jit
    trace runs a real forward: ~30 s on one CPU thread); a model whose forward needs real values falls
    back to fvcore's trace, which also lists the ops fvcore cannot count.
    """
    try:
        return _count_macs_on_meta(model, input_shape)
    except Exception:  # noqa: BLE001 - data-dependent forwards cannot run on meta: trace a real one
        pass
    inputs = torch.randn(*input_shape, device=device)
    total, unsupported = fvcore_macs(model, inputs)
    try:
        cross_check: float | None = flop_counter_macs(model, inputs) / 1e9
    except Exception:  # noqa: BLE001 - the cross-check is optional; fvcore's count stands alone
        cross_check = None
    return MacCount(gmacs=total / 1e9, unsupported_ops=unsupported, flop_counter_gmacs=cross_check)


def _count_macs_on_meta(model: nn.Module, input_shape: Sequence[int]) -> MacCount:
    """fvcore's rules and torch's FlopCounterMode, both on one meta copy of `model`."""
    from .meta import meta_copy

    net = meta_copy(model)
    total = fvcore_macs_meta(net, input_shape)
    cross_check = flop_counter_macs(net, torch.empty(*input_shape, device="meta")) / 1e9
    return MacCount(gmacs=total / 1e9, unsupported_ops=None, flop_counter_gmacs=cross_check, counted_on="meta")


# --- fvcore's rules on meta tensors ----------------------------------------------------------------
# fvcore traces the model with torch.jit, which needs a real forward (30 s for a ResNet-101 net at 512
# on one CPU thread) and fails on meta tensors. The counter below applies fvcore's default op handles
# (fvcore/nn/flop_count.py, jit_handles.py) to the aten ops of a meta forward instead, in about a
# second. It equals fvcore on every Table 4 model and ablation at 96x96 except for einsum equations
# fvcore estimates with numpy's contraction path (CCNet: 292 of 12.4e9 MACs); tests compare the two.

def _numel(shape: Sequence[int]) -> int:
    out = 1
    for side in shape:
        out *= int(side)
    return out


def _conv(args: tuple, out: torch.Tensor) -> int:
    """fvcore's conv rule: batch x weight elements x output (input, if transposed) spatial size."""
    x, w, transposed = args[0], args[1], args[6]
    return x.shape[0] * w.numel() * _numel((x if transposed else out).shape[2:])


def _matmul(args: tuple, out: torch.Tensor) -> int:
    """fvcore's matmul/mm rule: elements of the first operand x columns of the second."""
    return args[0].numel() * args[1].shape[-1]


def _addmm(args: tuple, out: torch.Tensor) -> int:
    """fvcore's addmm rule (nn.Linear): rows x input features x output features."""
    return args[1].shape[0] * args[1].shape[1] * args[2].shape[1]


def _bmm(args: tuple, out: torch.Tensor) -> int:
    """fvcore's bmm rule: n x c x t x d."""
    n, c, t = args[0].shape
    return n * c * t * args[1].shape[-1]


def _batch_norm(training_index: int | None) -> Callable[[tuple, torch.Tensor], int]:
    """fvcore's batch-norm rule: 1 (2 with affine) per element in eval; 4 (5 with affine) in training."""

    def rule(args: tuple, out: torch.Tensor) -> int:
        training = bool(args[training_index]) if training_index is not None else False
        affine = args[1] is not None
        return args[0].numel() * ((5 if affine else 4) if training else (2 if affine else 1))

    return rule


def _norm(affine_index: int) -> Callable[[tuple, torch.Tensor], int]:
    """fvcore's group/layer-norm rule: 4 (5 with affine) per input element."""
    return lambda args, out: args[0].numel() * (5 if args[affine_index] is not None else 4)


def _per_output(scale: int) -> Callable[[tuple, torch.Tensor], int]:
    """fvcore's upsampling rules: `scale` per output element (nearest 1, bilinear 4)."""
    return lambda args, out: scale * out.numel()


_ATEN = torch.ops.aten
FVCORE_RULES: dict[Any, Callable[[tuple, torch.Tensor], int]] = {
    _ATEN.convolution: _conv,
    _ATEN.mm: _matmul,
    _ATEN.addmm: _addmm,
    _ATEN.bmm: _bmm,
    _ATEN.native_batch_norm: _batch_norm(5),
    _ATEN._native_batch_norm_legit: _batch_norm(5),
    _ATEN._native_batch_norm_legit_no_training: _batch_norm(None),
    _ATEN.native_group_norm: _norm(1),
    _ATEN.native_layer_norm: _norm(2),
    _ATEN.upsample_nearest2d: _per_output(1),
    _ATEN.upsample_bilinear2d: _per_output(4),
    _ATEN.grid_sampler_2d: _per_output(4),
}
#: fvcore counts one op per input element of adaptive_avg_pool2d; aten turns a 1x1 one into a mean,
#: so these calls are counted where Python makes them (a torch-function mode), not per aten op.
ADAPTIVE_AVG_POOLS = (nn.functional.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d)


class _FvcoreDispatch(TorchDispatchMode):
    """Records every aten op as a node (fvcore's count, the nodes its inputs came from), so that only the
    ops the output depends on are summed: fvcore counts a traced graph, from which torch.jit drops dead
    code (e.g. an auxiliary head computed in eval mode and thrown away)."""

    def __init__(self) -> None:
        super().__init__()
        self.macs: list[int] = []
        self.inputs: list[tuple[int, ...]] = []
        self.producer: dict[int, int] = {}  # id(tensor) -> node that last wrote it
        self.alive: list[torch.Tensor] = []  # keeps every seen tensor alive, so ids are never reused

    def producers(self, tensors: Iterable[torch.Tensor]) -> tuple[int, ...]:
        """The nodes that last wrote `tensors` (none for inputs and parameters)."""
        return tuple(self.producer[id(t)] for t in tensors if id(t) in self.producer)

    def add_to_producer(self, tensor: torch.Tensor, macs: int) -> None:
        """Charge `macs` to the node that produced `tensor` (counts made outside the dispatcher)."""
        node = self.producer.get(id(tensor))
        if node is not None:
            self.macs[node] += macs

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        ins = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        outs = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        # An op writing into a view (x[:, :c].copy_(y)) writes its base too: the base then depends on it.
        written_bases = [t._base for t in outs if t._base is not None and any(t is i for i in ins)]
        rule = FVCORE_RULES.get(func.overloadpacket)
        node = len(self.macs)
        self.macs.append(int(rule(args, outs[0])) if rule is not None and outs else 0)
        self.inputs.append(self.producers(ins + written_bases))
        for tensor in outs + written_bases:
            self.producer[id(tensor)] = node
        self.alive += ins + outs
        return out

    def live_total(self, outputs: Any) -> int:
        """fvcore's total over the ops that `outputs` depend on."""
        todo = list(self.producers(t for t in pytree.tree_leaves(outputs) if isinstance(t, torch.Tensor)))
        seen: set[int] = set()
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo += self.inputs[node]
        return sum(self.macs[node] for node in seen)


class _AdaptivePoolFunction(TorchFunctionMode):
    """Charges fvcore's count of adaptive_avg_pool2d (one per input element) to the op that made its output."""

    def __init__(self, dispatch: _FvcoreDispatch) -> None:
        super().__init__()
        self.dispatch = dispatch

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        out = func(*args, **(kwargs or {}))
        if func in ADAPTIVE_AVG_POOLS:
            self.dispatch.add_to_producer(out, args[0].numel())
        return out


@contextlib.contextmanager
def fvcore_counter() -> Iterator[_FvcoreDispatch]:
    """Record the forwards run in the block; `.live_total(outputs)` is then fvcore's count for `outputs`."""
    dispatch = _FvcoreDispatch()
    with _AdaptivePoolFunction(dispatch), dispatch:
        yield dispatch


def fvcore_macs_meta(
    model: nn.Module, input_shape: Sequence[int] = (1, 3, 512, 512), *, aux_heads: bool = False
) -> int:
    """fvcore's MAC count of one eval forward, from a forward on meta tensors (no memory, no arithmetic).

    With `aux_heads`, of the training graph (`training_graph`): the convention of the paper's Table 4.
    A model on another device is counted through a meta copy (`meta.meta_copy`); one whose forward
    needs real values raises (count it with `fvcore_macs` instead).
    """
    from .meta import meta_copy, model_device

    net = model if model_device(model).type == "meta" else meta_copy(model)
    with forward_mode(net, aux_heads), torch.no_grad(), fvcore_counter() as counter:
        outputs = net(torch.empty(*input_shape, device="meta"))
    return counter.live_total(outputs)
