"""Run-time checks of the numbers a model holds and gives: NaN/Inf weights and logits are an error, never a score.

An argmax over NaN logits reads as background everywhere, so a broken model would score as one that
predicts nothing. Weights are checked where they are loaded (a weights file, a checkpoint, a freshly
built model), logits where they are turned into predictions; the error names the file or the model and
the first non-finite tensor (a parameter or buffer by name, else the first module whose output is).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

import torch
from torch import nn

from .contract import logits_problem
from .errors import ContractViolation, NonFinite

NON_FINITE_HINT = "the file is damaged or was saved after training diverged"


def nested_tensors(value: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """(dotted name, tensor) of every tensor inside nested dicts, lists and tuples (a checkpoint, a state_dict)."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from nested_tensors(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from nested_tensors(item, f"{prefix}.{index}" if prefix else str(index))


def _counts(tensor: torch.Tensor) -> str:
    """'3 NaN and 1 Inf of 9 values'."""
    nan, inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
    found = " and ".join(f"{count:,} {kind}" for count, kind in ((nan, "NaN"), (inf, "Inf")) if count)
    return f"{found} of {tensor.numel():,} values"


def first_non_finite(named: Iterable[tuple[str, Any]]) -> str | None:
    """"'<name>' holds 3 NaN of 9 values" for the first floating tensor holding NaN or Inf; None when all are finite."""
    for name, tensor in named:
        if (isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.device.type != "meta"
                and not bool(torch.isfinite(tensor).all())):
            return f"{name!r} holds {_counts(tensor)}"
    return None


def check_finite_weights(weights: Any, where: str, hint: str = NON_FINITE_HINT) -> None:
    """Raise NonFinite naming `where` and the first non-finite tensor of `weights` (a state_dict or a checkpoint)."""
    problem = first_non_finite(nested_tensors(weights))
    if problem:
        raise NonFinite(f"{where}: non-finite weights: {problem}; {hint}")


def weights_note(model: nn.Module) -> str:
    """What a diverged run's message adds: the first non-finite parameter or buffer, or that every one is finite."""
    problem = first_non_finite(model.state_dict().items())
    return f"first non-finite tensor: {problem}" if problem else "every parameter and buffer is still finite"


def model_label(model: nn.Module) -> str:
    """The registry name `create_model` gave the model, else its class name."""
    return str(getattr(model, "model_name", None) or type(model).__name__)


def declares_low_res(model: nn.Module) -> bool:
    """Whether the model's registry entry says its logits may be smaller than its input."""
    from models import get_model_info

    name = getattr(model, "model_name", None)
    try:
        return bool(name) and get_model_info(name).low_res_logits
    except KeyError:
        return False


def check_logits(model: nn.Module, batch: torch.Tensor, logits: Any) -> None:
    """Eval logits of `batch` against the contract (ContractViolation) and for NaN/Inf (NonFinite), naming the model."""
    problem = logits_problem(logits, tuple(batch.shape), None, declares_low_res(model))
    if problem:
        raise ContractViolation(f"{model_label(model)}: {problem}")
    if not bool(torch.isfinite(logits).all()):
        raise NonFinite(f"{model_label(model)}: {describe_non_finite(model, batch, logits)}")


def describe_non_finite(model: nn.Module, batch: torch.Tensor, logits: torch.Tensor) -> str:
    """How many slices got NaN/Inf logits, and the first non-finite tensor behind them."""
    bad_slices = int((~torch.isfinite(logits)).flatten(1).any(dim=1).sum())
    text = f"non-finite logits ({_counts(logits)}) for {bad_slices} of {len(logits)} slice(s) of a batch"
    cause = first_non_finite(model.state_dict().items())
    if cause is None and not bool(torch.isfinite(batch).all()):
        cause = f"the normalised input holds {_counts(batch)} (a zero std?)"
    if cause is None:
        cause = first_non_finite_activation(model, batch)
    return f"{text}; first non-finite tensor: {cause}" if cause else text


def first_non_finite_activation(model: nn.Module, batch: torch.Tensor) -> str | None:
    """'the output of module <name> (<Type>)': the first module, in the order they finish, whose output holds NaN/Inf."""
    found: list[str] = []

    def hook(name: str) -> Any:
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            tensors = [t for _, t in nested_tensors(output)]
            if not found and any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors):
                where = f"module {name!r}" if name else "the model's own forward"
                found.append(f"the output of {where} ({type(module).__name__})")
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in model.named_modules()]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else None
