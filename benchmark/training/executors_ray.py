"""The `ray` executor: each job is a Ray task, on this machine or on a Ray cluster.

`ray.init(address)` joins a running cluster ('auto', 'ray://host:10001') or, with no address,
starts a private one on this machine; an already initialised Ray is used as it is. Each task
asks for `gpus_per_job` GPUs (fractional values let several small jobs share one GPU; Ray
sets CUDA_VISIBLE_DEVICES for it) and `cpus_per_job` CPUs. Ray retries a task whose worker
died up to `retries` times; after that the job is recorded as failed with the reason. Tasks
run the runner's own `run_job`, which writes results atomically into the results folder:
on a cluster that folder must be shared storage (same path on every node).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from ..errors import UserError
from .executors import Executor, Job, Result
from .executors_pool import LostHandler, lost_reason, plugin_specs, record_lost_job, run_with_plugins

INSTALL_HINT = "--executor ray needs Ray, which is not installed: pip install '.[ray]' (or pip install 'ray>=2.9')"


def import_ray() -> Any:
    """The `ray` module, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return ray


class RayExecutor(Executor):
    """Ray tasks with `gpus_per_job` GPUs (default: 1 when the cluster has GPUs, else 0) and `cpus_per_job` CPUs."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        gpus_per_job: float | None = None,
        cpus_per_job: float | None = None,
        retries: int = 2,
        plugins: Sequence[str] = (),
        on_lost: LostHandler = record_lost_job,
    ) -> None:
        for option, value in (("--gpus-per-job", gpus_per_job), ("--cpus-per-job", cpus_per_job)):
            if value is not None and value < 0:
                raise ValueError(f"{option} must be >= 0, got {value}")
        if retries < 0:
            raise ValueError(f"--retries must be >= 0, got {retries}")
        self.ray = import_ray()
        self.started_ray = not self.ray.is_initialized()
        if self.started_ray:
            local = {"include_dashboard": False} if address is None else {}
            self.ray.init(address=address, **local)
        cluster_gpus = self.ray.cluster_resources().get("GPU", 0)
        if gpus_per_job is None:
            gpus_per_job = 1.0 if cluster_gpus > 0 else 0.0
        elif gpus_per_job > 0 and cluster_gpus == 0:
            self.close()
            raise ValueError(f"--gpus-per-job {gpus_per_job}: the Ray cluster has no GPU (its jobs would wait forever)")
        self.gpus_per_job = gpus_per_job
        self.cpus_per_job = 1.0 if cpus_per_job is None else cpus_per_job
        self.retries = retries
        self.plugins = plugin_specs(plugins)
        self.on_lost = on_lost

    def map(self, jobs: Sequence[Job], run_job: Callable[[Job], Result]) -> Iterator[Result]:
        ray = self.ray
        task = ray.remote(num_gpus=self.gpus_per_job, num_cpus=self.cpus_per_job, max_retries=self.retries,
                          retry_exceptions=False)(run_with_plugins)
        pending = {task.remote(run_job, self.plugins, job): job for job in jobs}
        try:
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ready)
                try:
                    result = ray.get(ready)
                except (ray.exceptions.RayTaskError, ray.exceptions.TaskCancelledError) as err:
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, UserError):  # e.g. a full disk: its one line, not the remote traceback
                        raise cause from None
                    raise  # run_job itself raised (or we were cancelled): as with the local executor
                except ray.exceptions.RayError as err:  # the worker or its node died
                    first_line = next(iter(str(err).strip().splitlines()), "")
                    result = self.on_lost(job, lost_reason(self.retries + 1, f"{type(err).__name__}: {first_line}"))
                yield result
        finally:
            for ref in pending:  # a running task gets KeyboardInterrupt: it keeps its checkpoint, frees its lock
                ray.cancel(ref)

    def close(self) -> None:
        if self.started_ray and self.ray.is_initialized():
            self.ray.shutdown()
