"""Strict state-dict loading: one check and one message for ImageNet backbones and evaluated checkpoints alike."""
from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def state_dict_mismatch(module: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """Why `state` does not fit `module`: the first key whose shape differs (both shapes), else the missing or
    unexpected keys (how many, the first); None when every key fits."""
    expected = module.state_dict()
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            return f"{key} is {tuple(tensor.shape)} in the file but {tuple(expected[key].shape)} in the model"
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        return f"{len(missing)} key(s) of the model missing from the file, first {missing[0]!r}"
    if unexpected:
        return f"{len(unexpected)} key(s) the model does not have, first {unexpected[0]!r}"
    return None


def load_checked(
    module: M, state: dict[str, torch.Tensor], source: str, name: str | None = None,
    error: type[Exception] = ValueError,
) -> M:
    """Load `state` into `module` strictly; a mismatch raises `error` naming `source`, the module (`name`, else its
    class) and the problem, before anything is loaded."""
    problem = state_dict_mismatch(module, state)
    if problem:
        raise error(f"{source}: does not fit {name or type(module).__name__}: {problem}")
    module.load_state_dict(state)
    return module
