"""The training grid: plan models x datasets x folds, skip finished jobs, resume, lock, report.

Each job owns `results/runs/<dataset>/<model>/fold<k>/`. A job whose record says "done"
under the same protocol is skipped; any other job trains, resuming from `last.pt` when it
holds a checkpoint of the same protocol. A lock file (created with O_CREAT|O_EXCL, holding
pid, host and time, touched every `LOCK_HEARTBEAT_S` by a background thread) keeps two runners
off the same job; a lock whose process is dead on this host, or untouched for
`LOCK_STALE_AFTER_S` (a holder on another host that died, e.g. a lost Ray node), is stale and
taken over.
"""
from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .executors import Executor, LocalExecutor
from ..io import read_json
from ..protocol import Protocol
from ..recipes import resolve
from ..records import CHECKPOINT_INFO_NAME, LOCK_NAME, RECORD_NAME, fold_dir_name, results_key, run_dir, same_protocol
from ..storage import storage_guard
from .backends import backend
from .train import TrainOptions

LOCK_HEARTBEAT_S = 60.0
LOCK_STALE_AFTER_S = 15 * 60.0  # fifteen missed heartbeats
BREAKER_STALE_AFTER_S = 60.0


@dataclass(frozen=True)
class TrainJob:
    """One (model, dataset, fold) of the grid, with everything a worker needs (picklable)."""

    model: str
    dataset: str
    fold: int
    protocol: Protocol
    options: TrainOptions
    data_root: str
    results: str
    split: str = "paper"  # the folds: the paper's, or "grouped" (results under runs/<dataset>-grouped/)

    @property
    def run_dir(self) -> Path:
        return run_dir(self.results, self.dataset, self.model, self.fold, self.split)

    @property
    def label(self) -> str:
        return f"{results_key(self.dataset, self.split)}/{self.model}/{fold_dir_name(self.fold)}"

    def effective_protocol(self) -> Protocol:
        """The protocol this job trains under (after any per-model exception)."""
        return resolve(self.protocol, self.model)[0]


@dataclass(frozen=True)
class JobState:
    """Where a job stands on disk: done, partial (epoch N), todo, failed or locked."""

    status: str
    detail: str = ""


@dataclass(frozen=True)
class JobOutcome:
    """What running a job did: done, failed, skipped (already done) or locked (another runner has it)."""

    job: TrainJob
    status: str
    detail: str = ""
    elapsed_s: float = 0.0
    record: dict[str, Any] | None = field(default=None, compare=False)


# --- planning -------------------------------------------------------------------------

def parse_folds(text: str, n_folds: int = 5) -> tuple[int, ...]:
    """'0-4', '0,2', '3' or '0-1,4' -> sorted unique fold indices, each in 0..n_folds-1."""
    folds: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ValueError(f"--folds: cannot read {part!r}; use e.g. 0-4 or 0,2")
        low, high = int(match[1]), int(match[2] or match[1])
        if low > high or high >= n_folds:
            raise ValueError(f"--folds: {part!r} is outside 0..{n_folds - 1}")
        folds.update(range(low, high + 1))
    return tuple(sorted(folds))


def expand_models(spec: str) -> list[str]:
    """Comma-separated names and fnmatch patterns -> registered names, in the given order, unique."""
    from models import get_model_info, list_models

    names: list[str] = []
    for item in (p.strip() for p in spec.split(",") if p.strip()):
        if any(ch in item for ch in "*?["):
            matched = list_models(item)
            if not matched:
                raise KeyError(f"--models: pattern {item!r} matches no registered model")
        else:
            matched = [get_model_info(item).name]
        names += [m for m in matched if m not in names]
    if not names:
        raise ValueError("--models: no model given")
    return names


def expand_datasets(spec: str, data_root: str | Path | None = None) -> list[str]:
    """Comma-separated dataset names (any accepted alias; yours: found under `data_root`) -> canonical names."""
    from ..datasets import get_spec

    names: list[str] = []
    for item in (p.strip() for p in spec.split(",") if p.strip()):
        name = get_spec(item, data_root).name
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("--datasets: no dataset given")
    return names


def plan_jobs(
    models: Sequence[str],
    datasets: Sequence[str],
    folds: Sequence[int],
    protocol: Protocol,
    options: TrainOptions,
    data_root: str | Path,
    results: str | Path,
    split: str = "paper",
) -> list[TrainJob]:
    """The grid in run order: dataset, then model, then fold."""
    return [
        TrainJob(m, d, k, protocol, options, str(data_root), str(results), split)
        for d in datasets for m in models for k in folds
    ]


# --- state on disk --------------------------------------------------------------------

def _read_or_none(path: Path) -> Any:
    """A JSON file's content, or None when absent or unreadable (half-written by another process)."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _record_or_warn(path: Path, warn: bool) -> dict[str, Any]:
    """A job's record.json as a dict; a damaged or foreign one is named on stderr (when `warn`) and read as {}.

    Records are written atomically, so one that does not parse is damaged, not half-written.
    """
    from ..errors import warn_damaged
    from ..records import READABLE_RUN_SCHEMAS

    if not path.exists():
        return {}
    try:
        record = read_json(path)
    except (OSError, ValueError) as err:
        problem = str(err)
    else:
        if isinstance(record, dict) and record.get("schema") in READABLE_RUN_SCHEMAS:
            return record
        kind = f"schema {record.get('schema')!r}" if isinstance(record, dict) else f"a JSON {type(record).__name__}"
        problem = f"not a run record ({kind})"
    if warn:
        warn_damaged(path, problem, "the job counts as not done and trains again (the file is replaced)")
    return {}


def _paper_dsc(record: dict[str, Any]) -> Any:
    """final.paper.dsc of a record, or None wherever a level is missing or not a mapping."""
    final = record.get("final")
    paper = final.get("paper") if isinstance(final, dict) else None
    return paper.get("dsc") if isinstance(paper, dict) else None


def job_state(job: TrainJob, warn: bool = True) -> JobState:
    """Read the job's folder: record, checkpoint summary and lock (files of another protocol are ignored).

    A damaged or foreign record.json is named on stderr (unless `warn` is False) and the job reads as not done.
    """
    folder = job.run_dir
    protocol = job.effective_protocol().to_dict()
    record = _record_or_warn(folder / RECORD_NAME, warn)
    record = record if same_protocol(record.get("protocol"), protocol) else {}
    if record.get("status") == "done":
        dsc = _paper_dsc(record)
        return JobState("done", f"DSC {dsc:.2f}" if isinstance(dsc, (int, float)) else "")
    holder = lock_holder(folder / LOCK_NAME)
    if holder is not None and not lock_is_stale(folder / LOCK_NAME, holder):
        return JobState("locked", f"by pid {holder.get('pid')} on {holder.get('host')} since {holder.get('time')}")
    if record.get("status") == "failed":
        return JobState("failed", str(record.get("error") or ""))
    info = _read_or_none(folder / CHECKPOINT_INFO_NAME)
    if isinstance(info, dict) and same_protocol(info.get("protocol"), protocol):
        return JobState("partial", f"epoch {info.get('epoch')}/{info.get('epochs')}")
    return JobState("todo")


# --- locks ----------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(path: Path) -> dict[str, Any] | None:
    """The lock's content ({} when it exists but is not readable yet), or None without a lock."""
    if not path.exists():
        return None
    content = _read_or_none(path)
    return content if isinstance(content, dict) else {}


def lock_is_stale(path: Path, holder: dict[str, Any], stale_after_s: float = LOCK_STALE_AFTER_S) -> bool:
    """Stale: its process is dead on this host, or it was not touched for `stale_after_s`."""
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        if not _pid_alive(holder["pid"]):
            return True
    try:
        return time.time() - path.stat().st_mtime > stale_after_s
    except FileNotFoundError:
        return True


class JobLock:
    """An exclusive lock file for one job folder (see the module docstring)."""

    def __init__(
        self, path: Path, stale_after_s: float = LOCK_STALE_AFTER_S, heartbeat_s: float = LOCK_HEARTBEAT_S
    ) -> None:
        self.path = Path(path)
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.token = uuid.uuid4().hex
        self.held = False
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lock (breaking a stale one); False when another live runner holds it. A disk that takes no
        more raises StorageFailure and leaves no lock file behind."""
        with storage_guard(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                with storage_guard(self.path.parent):
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._break_if_stale():
                    return False
                continue
            self._write_holder(fd)
            self.held = True
            self._start_heartbeat()
            return True
        return False

    def _write_holder(self, fd: int) -> None:
        """Write pid, host, time and token into the new lock file; an empty lock would look held for
        `stale_after_s`, so a failed write removes it."""
        info = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "token": self.token}
        try:
            with storage_guard(self.path.parent), os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(info, handle)
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise

    def _start_heartbeat(self) -> None:
        """Touch the lock every `heartbeat_s` from a daemon thread, however long an epoch takes."""
        self._stop.clear()
        self._beater = threading.Thread(target=self._beat, name=f"lock-heartbeat {self.path}", daemon=True)
        self._beater.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.heartbeat()

    def _break_if_stale(self) -> bool:
        """Remove a stale lock, serialised by a second O_EXCL file so two runners never both break it."""
        breaker = self.path.with_name(self.path.name + ".break")
        try:
            fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - breaker.stat().st_mtime > BREAKER_STALE_AFTER_S:
                    breaker.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return False
        os.close(fd)
        try:
            holder = lock_holder(self.path)
            if holder is not None and not lock_is_stale(self.path, holder, self.stale_after_s):
                return False
            self.path.unlink(missing_ok=True)
            return True
        finally:
            breaker.unlink(missing_ok=True)

    def heartbeat(self) -> None:
        """Mark the lock as alive (the heartbeat thread calls it; so does the trainer every epoch)."""
        if self.held:
            try:
                os.utime(self.path)
            except OSError:  # gone, or the disk went read-only: the job's own writes report that
                pass

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        if self._beater is not None:
            self._beater.join()
            self._beater = None
        if self.held and (lock_holder(self.path) or {}).get("token") == self.token:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:  # a read-only remount: the lock stays, and is stale once this process ends
                pass
        self.held = False


# --- running --------------------------------------------------------------------------

def run_job(job: TrainJob) -> JobOutcome:
    """Train one job unless it is done or locked; module-level so executors can pickle it."""
    start = time.monotonic()
    if job_state(job).status == "done":
        return JobOutcome(job, "skipped", "already done")
    lock = JobLock(job.run_dir / LOCK_NAME)
    if not lock.acquire():
        return JobOutcome(job, "locked", job_state(job, warn=False).detail)
    try:
        if job_state(job, warn=False).status == "done":  # finished by another runner meanwhile
            return JobOutcome(job, "skipped", "already done")
        train = backend(job.effective_protocol())  # our trainer, or the framework that trains this model
        record = train(
            job.model, job.dataset, job.fold, job.protocol, job.options, job.data_root, job.run_dir,
            on_epoch_end=lock.heartbeat, split=job.split,
        )
    finally:
        lock.release()
    detail = record["error"] or ""
    return JobOutcome(job, record["status"], detail, time.monotonic() - start, record)


def run_grid(jobs: Sequence[TrainJob], executor: Executor | None = None, progress: bool = True) -> list[JobOutcome]:
    """Run every job through `executor` (default: local), with a grid progress bar; return the outcomes."""
    from tqdm import tqdm

    executor = executor or LocalExecutor()
    outcomes: list[JobOutcome] = []
    with tqdm(total=len(jobs), desc="grid", unit="job", file=sys.stderr, disable=not progress or None,
              dynamic_ncols=True) as bar:
        for outcome in executor.map(list(jobs), run_job):
            outcomes.append(outcome)
            bar.set_postfix_str(f"{outcome.job.label} {outcome.status}")
            bar.update()
            if outcome.status == "failed":
                bar.write(f"{outcome.job.label}: failed: {outcome.detail}", file=sys.stderr)
    return outcomes


def iter_states(jobs: Sequence[TrainJob]) -> Iterator[tuple[TrainJob, JobState]]:
    """Each job with its state on disk (for --dry-run)."""
    for job in jobs:
        yield job, job_state(job)
