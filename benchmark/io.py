"""Atomic file writes: a crash never leaves a half-written result behind."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from .storage import storage_guard

#: Random temp names tried before giving up (a clash needs the same 32 random bits twice).
TEMP_NAME_TRIES = 100


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` on a temp file beside `path`, then rename it onto `path`; a full or read-only
    disk raises a StorageFailure naming the folder and its free space (no temp file is left)."""
    path = Path(path)
    with storage_guard(path.parent):
        return _write_then_rename(path, write)


def _write_then_rename(path: Path, write: Callable[[Path], None]) -> Path:
    """The temp file, `write`, then the rename (the temp file is removed on any failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _new_temp_file(path: Path) -> Path:
    """An empty, new file `.<name>.<random>.tmp` beside `path`, created with the usual mode (0666 less the umask).

    `os.open` with mode 0666 lets the kernel apply the process umask, so it is never read or changed here
    (changing it would race with other threads creating files, such as a runner's lock heartbeat).
    """
    for _ in range(TEMP_NAME_TRIES):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after {TEMP_NAME_TRIES} tries")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text atomically (UTF-8)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically, indented, keys in insertion order, NaN written as null."""
    return atomic_write_text(path, json.dumps(nan_to_none(data), indent=2) + "\n")


def atomic_write_torch(path: str | Path, obj: Any) -> Path:
    """torch.save atomically, through a Python file: a full disk then raises OSError(ENOSPC), not torch's
    internal 'unexpected pos'."""
    import torch

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)

    return atomic_write(path, save)


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a corrupt one raises ValueError naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def nan_to_none(value: Any) -> Any:
    """Replace float NaN by None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    return value
