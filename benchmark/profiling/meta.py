"""Meta-device copies of models: shapes without memory or arithmetic, for counting at full input size."""
from __future__ import annotations

import copy

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without tensors)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers are meta tensors; the model itself is untouched.

    The copy keeps the module structure, including a module held by two parents (deepcopy keeps
    aliasing), and copies no parameter data: each tensor is mapped to its meta stand-in up front.
    """
    memo: dict[int, object] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo)
