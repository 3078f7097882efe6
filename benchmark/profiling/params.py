"""Parameter counts: the training model, the inference model, and what the forward really uses."""
from __future__ import annotations

import copy
import inspect
from typing import Any, Iterator, Sequence

import torch
from torch import nn

#: Side of the small input used to find the parameters an eval forward touches.
ACTIVE_PROBE_SIZE = 64


def count_params(model: nn.Module) -> int:
    """All parameters of `model` (shared ones once): the paper's #Param for a training model."""
    return sum(p.numel() for p in model.parameters())


def output_tensors(output: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a model's output (a tensor, or nested tuples/lists/dicts of them)."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, dict):
        for value in output.values():
            yield from output_tensors(value)
    elif isinstance(output, (list, tuple)):
        for value in output:
            yield from output_tensors(value)


def active_params(
    model: nn.Module,
    input_shape: Sequence[int] = (1, 3, ACTIVE_PROBE_SIZE, ACTIVE_PROBE_SIZE),
    device: str | torch.device = "cpu",
) -> int:
    """Parameters that take part in an eval-mode forward: those the output's gradient reaches.

    Runs one forward and backward on a copy of `model` (the caller's model is untouched), so
    modules that are built but never run (smp PSPNet's unused encoder stages, auxiliary heads
    that only train mode calls) are not counted.
    """
    probe = copy.deepcopy(model).to(device).eval()
    for param in probe.parameters():
        param.requires_grad_(True)
        param.grad = None
    with torch.enable_grad():
        output = probe(torch.randn(*input_shape, device=device))
        torch.stack([t.float().sum() for t in output_tensors(output) if t.is_floating_point()]).sum().backward()
    return sum(p.numel() for p in probe.parameters() if p.grad is not None)


def inference_params(
    name: str, model: nn.Module, input_shape: Sequence[int], device: str | torch.device = "cpu"
) -> tuple[int, str]:
    """Parameters of registered model `name` without its auxiliary heads, and how they were found.

    No auxiliary outputs: the training model's count. A builder that takes `aux`: the count of
    the model built with `aux=False`. Otherwise: the parameters the eval-mode forward uses.
    """
    from models import create_model, get_model_info

    info = get_model_info(name)
    if not info.has_aux:
        return count_params(model), "training model (no auxiliary heads)"
    if "aux" in inspect.signature(info.builder).parameters:
        return count_params(create_model(name, aux=False)), "built with aux=False"
    return active_params(model, input_shape, device), "parameters used by the eval-mode forward"
