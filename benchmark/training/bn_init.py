"""BatchNorm initialisation of the release's PyTorch: `bn_init=torch041` (an option; the default is today's).

PyTorch 0.4.1, which the MiniSeg release ran, initialised every BatchNorm/InstanceNorm weight
(gamma) from U(0, 1) and the bias with zeros; PyTorch 1.2 and later start gamma at 1. Building a
model inside `batchnorm_init("torch041")` makes every norm layer created in the block start the
0.4.1 way; what the model's own code initialises afterwards (torchvision's ResNets set gamma to 1,
as they did then) and ImageNet weights loaded afterwards overwrite it, as in the release.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _NormBase

_LOCK = threading.Lock()  # the swap below is process-wide: one model build at a time inside it


def _reset_torch041(self: _NormBase) -> None:
    """`_NormBase.reset_parameters` as PyTorch 0.4.1 had it: running stats reset, gamma ~ U(0, 1), beta = 0."""
    self.reset_running_stats()
    if self.affine:
        nn.init.uniform_(self.weight)
        nn.init.zeros_(self.bias)


@contextlib.contextmanager
def batchnorm_init(mode: str) -> Iterator[None]:
    """Norm layers built inside the block are initialised as `mode` says: "default" or "torch041"."""
    if mode == "default":
        yield
        return
    if mode != "torch041":
        raise ValueError(f"bn_init must be 'default' or 'torch041', got {mode!r}")
    with _LOCK:
        original = _NormBase.reset_parameters
        _NormBase.reset_parameters = _reset_torch041  # type: ignore[method-assign]
        try:
            yield
        finally:
            _NormBase.reset_parameters = original  # type: ignore[method-assign]
