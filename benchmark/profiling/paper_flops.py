"""The paper's "GFLOPs": the MiniSeg release's own counting convention, re-implemented with module hooks.

The figures of the paper's Table 4 come from the release's simple summary (`full_code/SegModels/
summary.py --mod simple`, model in eval mode, one 1x3x512x512 input). The release's models ran their
auxiliary heads in eval mode too; ours run them in train mode only, so a model with auxiliary heads is
counted on its training graph with inference-mode normalisation (`macs.training_graph`). The
counter's convention, as facts:

- It walks the module tree from the model through `children()`, recursing into every child, and puts a
  forward hook on each *leaf* (a module without children) it reaches. A module instance registered
  under two parents is reached, and hooked, twice, so each of its calls counts twice; a module called
  twice in one forward counts at each call. Modules that are not leaves (e.g. a conv subclass holding
  a submodule) and work done outside modules (functional ops, matmuls, interpolation) count nothing.
- Leaves are matched by `isinstance` on torch classes:
  nn.Conv2d    batch x out_channels x (kh x kw x in_channels / groups + 1 if bias) x out_h x out_w
               (one op per multiply-accumulate);
  nn.Linear    batch x (weight elements + bias elements), batch = input rows for a 2-D input, else 1
               (so a Linear applied to a token sequence counts its weights once);
  nn.Bilinear  batch x (weight elements + input2 features x output rows + bias elements);
  nn.BatchNorm2d, nn.ReLU   one op per input element;
  nn.MaxPool2d, nn.AvgPool2d  batch x out_channels x kernel area x out_h x out_w (adaptive pools,
               being other classes, count nothing);
  anything else (PReLU, ReLU6, Upsample, ConvTranspose2d, Dropout, Softmax, ...) counts nothing.
- GFLOPs = total / 1e9, printed with two decimals.

Counting runs on the meta device where the model allows it (no memory, no arithmetic), else on the
model's own device.
"""
from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

import torch
from torch import nn

from .macs import forward_mode
from .meta import meta_copy, model_device

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The module classes the convention counts, in the order the breakdown reports them.
KINDS: tuple[tuple[str, type[nn.Module]], ...] = (
    ("conv", nn.Conv2d),
    ("linear", nn.Linear),
    ("bilinear", nn.Bilinear),
    ("batchnorm", nn.BatchNorm2d),
    ("relu", nn.ReLU),
    ("pool", (nn.MaxPool2d, nn.AvgPool2d)),  # type: ignore[arg-type]
)


@dataclass(frozen=True)
class PaperFlops:
    """One forward counted the release's way: the total, per kind of module, per registration path."""

    total: int
    by_kind: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict, repr=False)
    device: str = "meta"

    @property
    def gflops(self) -> float:
        """The paper's GFLOPs (total / 1e9)."""
        return self.total / 1e9

    @property
    def printed(self) -> str:
        """The figure as the release prints it: two decimals."""
        return f"{self.gflops:.2f}"


def _first(value: Any) -> torch.Tensor:
    """The first tensor of a hook's input or output (a tensor or a tuple starting with one)."""
    return value if isinstance(value, torch.Tensor) else value[0]


def conv_ops(module: nn.Conv2d, inputs: tuple, output: Any) -> int:
    """Multiply-accumulates of a Conv2d call, plus one per output element when it has a bias."""
    batch = _first(inputs).shape[0]
    out_channels, out_h, out_w = _first(output).shape[-3:]
    kh, kw = module.kernel_size
    per_output = kh * kw * (module.in_channels // module.groups) + (module.bias is not None)
    return batch * out_channels * per_output * out_h * out_w


def linear_ops(module: nn.Linear, inputs: tuple, output: Any) -> int:
    """Weight plus bias elements, times the batch only for a 2-D input (the release's rule)."""
    x = _first(inputs)
    batch = x.shape[0] if x.dim() == 2 else 1
    return batch * (module.weight.numel() + (module.bias.numel() if module.bias is not None else 0))


def bilinear_ops(module: nn.Bilinear, inputs: tuple, output: Any) -> int:
    """The release's Bilinear rule: weights, plus input2 features times output rows, plus bias."""
    x1, x2 = inputs[0], inputs[1]
    batch = x1.shape[0] if x1.dim() == 2 else 1
    bias = module.bias.numel() if module.bias is not None else 0
    return batch * (module.weight.numel() + x2.shape[1] * _first(output).shape[0] + bias)


def elementwise_ops(module: nn.Module, inputs: tuple, output: Any) -> int:
    """One op per input element (BatchNorm2d, ReLU)."""
    return _first(inputs).numel()


def pool_ops(module: nn.Module, inputs: tuple, output: Any) -> int:
    """Kernel area per output element (MaxPool2d, AvgPool2d)."""
    batch = _first(inputs).shape[0]
    out_channels, out_h, out_w = _first(output).shape[-3:]
    k = module.kernel_size  # type: ignore[attr-defined]
    area = k * k if isinstance(k, int) else k[0] * k[1]
    return batch * out_channels * area * out_h * out_w


RULES: dict[str, Callable[[Any, tuple, Any], int]] = {
    "conv": conv_ops, "linear": linear_ops, "bilinear": bilinear_ops,
    "batchnorm": elementwise_ops, "relu": elementwise_ops, "pool": pool_ops,
}


def kind_of(module: nn.Module) -> str | None:
    """The counted kind of a leaf module, or None when the convention ignores its class."""
    for kind, cls in KINDS:
        if isinstance(module, cls):
            return kind
    return None


def leaf_registrations(model: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """(path, leaf) for every leaf reached by recursing through `children()`, once per registration path.

    A module held by two parents is yielded under both paths, as the release's walk hooks it twice.
    The model itself is its only leaf when it has no children.
    """
    children = list(model.named_children())
    if not children:
        yield prefix or type(model).__name__, model
        return
    for name, child in children:
        yield from leaf_registrations(child, f"{prefix}.{name}" if prefix else name)


@contextlib.contextmanager
def counting_hooks(model: nn.Module, by_module: Counter, by_kind: Counter) -> Iterator[None]:
    """One forward hook per counted leaf registration, adding its ops to the counters; removed after."""
    handles = []

    def hook_for(path: str, kind: str) -> Callable[[nn.Module, tuple, Any], None]:
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            ops = int(RULES[kind](module, inputs, output))
            by_module[path] += ops
            by_kind[kind] += ops

        return hook

    try:
        for path, leaf in leaf_registrations(model):
            kind = kind_of(leaf)
            if kind is not None:
                handles.append(leaf.register_forward_hook(hook_for(path, kind)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def count_paper_flops(
    model: nn.Module, input_size: int = 512, in_channels: int = 3, *, meta: bool = True, aux_heads: bool = False
) -> PaperFlops:
    """The release's count of one forward on a 1 x in_channels x input_size x input_size input.

    Eval mode; with `aux_heads` the training graph with inference-mode normalisation (`macs.training_graph`),
    as the release counted its training models, whose eval forward still ran their auxiliary heads.

    With `meta` the forward runs on meta tensors (instant even for ResNet-101 nets at 512); a model
    whose forward cannot run on meta (data-dependent code, tensors kept outside its state) is then
    counted by a real forward on its own device. A model built on meta is always counted on meta.
    """
    shape = (1, in_channels, input_size, input_size)
    device = model_device(model)
    if device.type == "meta":
        return _count(model, torch.empty(shape, device="meta"), aux_heads)
    if meta:
        try:
            return _count(meta_copy(model), torch.empty(shape, device="meta"), aux_heads)
        except Exception as err:  # noqa: BLE001 - meta is an optimisation; the real forward decides
            log.info("paper FLOPs of %s: meta forward failed (%s); counting on its device",
                     type(model).__name__, err)
    return _count(model, torch.rand(shape, device=device), aux_heads)


def _count(model: nn.Module, inputs: torch.Tensor, aux_heads: bool) -> PaperFlops:
    """Hook, run one forward, unhook, and package the counts."""
    return counted_forward(model, inputs, aux_heads)[0]


def counted_forward(model: nn.Module, inputs: torch.Tensor, aux_heads: bool) -> tuple[PaperFlops, Any]:
    """(the release's count, the outputs) of one forward of `model` on `inputs` (outputs for a counter
    that shares the forward, such as `macs.fvcore_counter`)."""
    by_module: Counter = Counter()
    by_kind: Counter = Counter()
    with counting_hooks(model, by_module, by_kind), forward_mode(model, aux_heads), torch.no_grad():
        outputs = model(inputs)
    ordered_kinds = {kind: by_kind[kind] for kind, _ in KINDS if kind in by_kind}
    count = PaperFlops(total=sum(by_kind.values()), by_kind=ordered_kinds, by_module=dict(by_module),
                       device=str(inputs.device))
    return count, outputs


def paper_gflops(model: nn.Module, input_size: int = 512, in_channels: int = 3, *, aux_heads: bool = False) -> float:
    """The paper's GFLOPs of `model` at input_size x input_size (the release's counter, total / 1e9)."""
    return count_paper_flops(model, input_size, in_channels, aux_heads=aux_heads).gflops


def measure_registered(name: str, measure: Callable[[nn.Module], T], **kwargs: Any) -> T:
    """`measure(model)` of registered model `name` built on the meta device (no memory, no arithmetic);
    built on CPU instead when its builder or forward needs real data."""
    from models import create_model

    try:
        with torch.device("meta"):
            model = create_model(name, **kwargs)
        return measure(model)
    except Exception as err:  # noqa: BLE001 - some builders or forwards need real data
        log.info("%s on meta failed (%s); building it on CPU", name, err)
    return measure(create_model(name, **kwargs))


def paper_flops_of(name: str, input_size: int = 512, **kwargs: Any) -> PaperFlops:
    """The release's count of registered model `name` as Table 4 counted it: the training model, its
    auxiliary heads included (see `measure_registered`, `macs.training_graph`)."""
    from models import get_model_info

    aux_heads = get_model_info(name).has_aux
    return measure_registered(name, lambda model: count_paper_flops(model, input_size, aux_heads=aux_heads), **kwargs)


def paper_gflops_of(name: str, input_size: int = 512, **kwargs: Any) -> float:
    """The paper's GFLOPs of registered model `name`."""
    return paper_flops_of(name, input_size, **kwargs).gflops
