"""A disk that takes no more writes (full, over quota, read-only, permission lost): one line, and the run stops.

Writers wrap their file operations in `storage_guard(folder)`: an OSError of that kind becomes a
`StorageFailure` naming the folder and its free space, which stops a grid instead of failing each of
its jobs in turn. Any other OSError (a missing file, a bad name) passes through unchanged.
"""
from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import StorageFailure

#: errno -> what to do about it (the strerror text says what happened).
STORAGE_ERRNOS: dict[int, str] = {
    errno.ENOSPC: "free space there",
    errno.EDQUOT: "free space within your quota there",
    errno.EFBIG: "free space there or write to another file system",
    errno.EROFS: "remount it writable or pass another {option}",
    errno.EACCES: "restore your write permission there or pass another {option}",
    errno.EPERM: "restore your write permission there or pass another {option}",
}
RERUN_HINT = ("then rerun the same command (what was written before is kept; an interrupted training job resumes "
              "from its last checkpoint)")


def format_bytes(count: int) -> str:
    """A byte count for people: 0 B, 512 B, 3.2 MB, 41.0 GB (decimal units, as `df -H`)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def free_space(folder: str | Path) -> str:
    """'<free> free of <total>' on the file system holding `folder` (its nearest existing parent)."""
    path = Path(folder).absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    try:
        usage = shutil.disk_usage(existing)
    except OSError:
        return "free space unknown"
    return f"{format_bytes(usage.free)} free of {format_bytes(usage.total)}"


def is_storage_error(err: BaseException) -> bool:
    """Whether `err` says the disk takes no more writes (as opposed to a wrong path or a bug)."""
    return isinstance(err, OSError) and not isinstance(err, StorageFailure) and err.errno in STORAGE_ERRNOS


def storage_cause(err: BaseException) -> OSError | None:
    """The full or read-only disk's OSError that `err` is, or was raised from (a library such as an ONNX
    exporter may wrap it in its own exception); None when there is none."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if is_storage_error(err):
            return err  # type: ignore[return-value]
        seen.add(id(err))
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return None


def raise_if_storage(err: BaseException, folder: str | Path) -> None:
    """Raise the StorageFailure of `folder` when `err` is, or was caused by, a full or read-only disk (a library
    such as an ONNX exporter or quantiser may wrap it); for a caller that records every other failure."""
    full = storage_cause(err)
    if full is not None:
        raise storage_failure(full, folder) from err


def storage_failure(err: OSError, folder: str | Path, option: str = "--results") -> StorageFailure:
    """The one-line error for a write into `folder` (which `option` chooses) that failed with `err`."""
    what = os.strerror(err.errno).lower() if err.errno else str(err)
    target = f" (writing {Path(err.filename).name})" if err.filename else ""
    hint = STORAGE_ERRNOS[err.errno].format(option=option)
    return StorageFailure(f"{folder}: {what}{target}; {free_space(folder)}; {hint}, {RERUN_HINT}")


def _within(filename: Any, folder: str | Path) -> bool:
    """Whether an error's file lies in `folder` (an error without a file name is taken to be a write there)."""
    if filename is None:
        return True
    return Path(os.path.abspath(os.fsdecode(filename))).is_relative_to(os.path.abspath(folder))


@contextmanager
def storage_guard(folder: str | Path, option: str = "--results") -> Iterator[None]:
    """Turn an OSError of a full, read-only or no-longer-writable disk inside the block into a StorageFailure
    naming `folder` (chosen by `option`); such an error on a file elsewhere (an input that cannot be read)
    passes through unchanged."""
    try:
        yield
    except OSError as err:
        if is_storage_error(err) and _within(err.filename, folder):
            raise storage_failure(err, folder, option) from err
        raise
