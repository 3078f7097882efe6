"""A training job's record.json as the runner writes it: done (with its final metrics) or failed (with why)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..protocol import Protocol
from ..records import RunRecord

#: `timings` of a job that never trained.
NO_TIMINGS = {"train_s": None, "eval_s": None, "train_img_s": None}


def utc_now() -> str:
    """ISO time stamp (UTC, seconds) for records."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def job_record(
    model: str,
    dataset: str,
    fold: int,
    protocol: Protocol,
    exception: dict[str, Any] | None,
    options: dict[str, Any],
    env: dict[str, Any],
    *,
    error: str | None,
    started_at: str,
    timings: dict[str, float | None] | None = None,
    history: list[dict[str, Any]] | None = None,
    iterations: int = 0,
    data: dict[str, Any] | None = None,
    final: dict[str, dict[str, float]] | None = None,
    per_slice_csv: str | None = None,
    resumed_from: int | None = None,
) -> dict[str, Any]:
    """The record.json of one job, done or failed; a job that never trained passes no timings, history or data."""
    from models import get_model_info

    return RunRecord(
        status="failed" if error else "done",
        model=model,
        dataset=dataset,
        fold=fold,
        seed=protocol.seed,
        protocol=protocol.to_dict(),
        protocol_exception=exception,
        model_info=get_model_info(model).to_dict(),
        environment=env,
        options=options,
        data=data or {},
        timings=timings or dict(NO_TIMINGS),
        history=history or [],
        final=final,
        error=error,
        per_slice_csv=per_slice_csv,
        iterations=iterations,
        resumed_from_epoch=resumed_from,
        started_at=started_at,
        finished_at=utc_now(),
    ).to_dict()
