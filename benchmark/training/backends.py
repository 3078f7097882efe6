"""The function that trains one job: our trainer, or the backend of the external framework that trains the model.

Which one a job gets is its effective protocol's `trainer` (benchmark.frameworks decides it from the model's
recipe); every backend has `run_training`'s signature and returns the job's record, so the runner treats all alike.
"""
from __future__ import annotations

from typing import Any, Callable

from ..protocol import Protocol


def backend(protocol: Protocol) -> Callable[..., dict[str, Any]]:
    """The function that trains a job under `protocol` (`run_training`'s signature): ours or the framework's."""
    if protocol.trainer == "nnunet":
        from .nnunet.job import run

        return run
    from .train import run_training

    return run_training
