"""Executors run a list of picklable jobs with a function and yield each result as it finishes.

The runner only calls `Executor.map(jobs, run_job)`; `local` runs the jobs one after the
other in this process. Other executors (process pools, a Ray cluster) subclass `Executor`
and register in `EXECUTORS`; `run_job` is a module-level function and the jobs are frozen
dataclasses, so both pickle.
"""
from __future__ import annotations

import abc
import importlib
from types import MappingProxyType
from typing import Callable, ClassVar, Iterator, Mapping, Sequence, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


class Executor(abc.ABC):
    """Runs jobs; results may come back in any order, each must identify its job."""

    name: ClassVar[str]

    @abc.abstractmethod
    def map(self, jobs: Sequence[Job], run_job: Callable[[Job], Result]) -> Iterator[Result]:
        """Run `run_job(job)` for every job, yielding each result as soon as it is ready."""

    def close(self) -> None:
        """Release workers (nothing for in-process executors)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """One job at a time, in this process, in plan order (Ctrl-C stops at once)."""

    name = "local"

    def map(self, jobs: Sequence[Job], run_job: Callable[[Job], Result]) -> Iterator[Result]:
        for job in jobs:
            yield run_job(job)


def _imported(module: str, name: str) -> Callable[..., Executor]:
    """A factory that imports `module` on first use (the pool and Ray executors; Ray is optional)."""
    def make(**options: object) -> Executor:
        return getattr(importlib.import_module(module, __package__), name)(**options)
    return make


EXECUTORS: Mapping[str, Callable[..., Executor]] = MappingProxyType({
    LocalExecutor.name: LocalExecutor,
    "pool": _imported(".executors_pool", "PoolExecutor"),
    "ray": _imported(".executors_ray", "RayExecutor"),
})


def get_executor(name: str = "local", **options: object) -> Executor:
    """An executor by name; unknown names raise KeyError listing the known ones."""
    if name not in EXECUTORS:
        raise KeyError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
    return EXECUTORS[name](**options)
