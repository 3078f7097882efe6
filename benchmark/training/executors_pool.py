"""The `pool` executor: worker processes on this machine, one per visible GPU or N on the CPU.

Each worker is a single-process `ProcessPoolExecutor` (the 'spawn' context: forking a process
that has initialised torch is unsafe), pinned to one GPU through CUDA_VISIBLE_DEVICES and
limited to its share of the CPU threads. One job runs per worker at a time, so a worker that
dies (killed, segfault, out of host memory) names exactly the job it was running: that job
is retried on a fresh worker up to `retries` times, then recorded as failed with the reason.
The workers run the runner's own `run_job`, which writes every result atomically and locks
its job folder, so the results are those of the `local` executor.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..env import visible_gpus
from .executors import Executor, Job, Result

LostHandler = Callable[[Any, str], Any]


def record_lost_job(job: Any, reason: str) -> Any:
    """A training job whose worker died on every attempt: write its failed record.json, return the outcome.

    A job that wrote its done record before its worker died is left as it is. The checkpoint of
    the last finished epoch stays, so the next run resumes the job from there.
    """
    import torch

    from ..env import environment
    from ..io import atomic_write_json
    from ..records import RECORD_NAME
    from ..recipes import resolve
    from .runner import JobOutcome, job_state
    from .run_record import job_record, utc_now

    if job_state(job).status == "done":
        return JobOutcome(job, "done", "finished before its worker died")
    protocol, exception = resolve(job.protocol, job.model)
    options = {k: v for k, v in dataclasses.asdict(job.options).items() if k != "progress"}
    env = environment(torch.device("cpu")) | {"note": "the driver's: the worker was lost"}
    record = job_record(
        job.model, job.dataset, job.fold, protocol, exception, options, env, error=reason, started_at=utc_now()
    )
    job.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(job.run_dir / RECORD_NAME, record)
    return JobOutcome(job, "failed", reason, record=record)


def lost_reason(attempts: int, cause: str) -> str:
    """The `error` of a job whose worker died on each of `attempts` attempts."""
    return f"worker lost: its process died on each of {attempts} attempt(s) (last: {cause})"


def plugin_specs(plugins: Sequence[str]) -> tuple[str, ...]:
    """`--plugin` values as workers elsewhere can load them: model files by absolute path."""
    return tuple(str(Path(spec).resolve()) if spec.endswith(".py") else spec for spec in plugins)


def run_with_plugins(run_job: Callable[[Job], Result], plugins: Sequence[str], job: Job) -> Result:
    """`run_job(job)` in a worker, after registering the driver's model plugins there (once per process)."""
    from models import load_plugin

    for spec in plugins:
        load_plugin(spec)
    return run_job(job)


def _init_worker(gpu: str | None, threads: int) -> None:
    """Pin a fresh worker to its GPU (before CUDA starts) and to its share of CPU threads."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class PoolExecutor(Executor):
    """Worker processes on this machine: one per visible GPU (default), or `workers` of them."""

    name = "pool"

    def __init__(
        self,
        workers: int | None = None,
        cpus_per_job: float | None = None,
        retries: int = 2,
        gpus: Sequence[str] | None = None,
        plugins: Sequence[str] = (),
        on_lost: LostHandler = record_lost_job,
    ) -> None:
        self.gpus = list(visible_gpus() if gpus is None else gpus)
        self.workers = workers if workers is not None else max(1, len(self.gpus))
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        if retries < 0:
            raise ValueError(f"--retries must be >= 0, got {retries}")
        self.threads = max(1, round(cpus_per_job)) if cpus_per_job else max(1, (os.cpu_count() or 1) // self.workers)
        self.retries = retries
        self.plugins = plugin_specs(plugins)
        self.on_lost = on_lost
        self._pools: dict[int, ProcessPoolExecutor] = {}

    def _pool(self, slot: int) -> ProcessPoolExecutor:
        """Worker `slot`'s single-process pool, started on first use (or again after it died)."""
        if slot not in self._pools:
            gpu = self.gpus[slot % len(self.gpus)] if self.gpus else None
            self._pools[slot] = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(gpu, self.threads),
            )
        return self._pools[slot]

    def _discard(self, slot: int) -> None:
        """Drop a worker whose process died; the next job on this slot starts a fresh one."""
        pool = self._pools.pop(slot, None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def map(self, jobs: Sequence[Job], run_job: Callable[[Job], Result]) -> Iterator[Result]:
        queue: deque[tuple[Job, int]] = deque((job, 1) for job in jobs)  # (job, attempt number)
        running: dict[Future, tuple[int, Job, int]] = {}
        idle = list(range(self.workers - 1, -1, -1))
        try:
            while queue or running:
                while queue and idle:
                    slot = idle.pop()
                    job, attempt = queue.popleft()
                    future = self._pool(slot).submit(run_with_plugins, run_job, self.plugins, job)
                    running[future] = (slot, job, attempt)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    slot, job, attempt = running.pop(future)
                    idle.append(slot)
                    try:
                        result = future.result()
                    except BrokenProcessPool as err:
                        self._discard(slot)
                        if attempt <= self.retries:
                            queue.appendleft((job, attempt + 1))
                            continue
                        result = self.on_lost(job, lost_reason(attempt, str(err)))
                    yield result
        finally:
            for future in running:
                future.cancel()

    def close(self) -> None:
        for slot in list(self._pools):
            self._pools.pop(slot).shutdown(wait=True, cancel_futures=True)
