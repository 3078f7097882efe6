"""Atomic writes: the usual file mode without touching the process umask, nothing half-written after a crash."""
from __future__ import annotations

import os
import stat

import pytest

from benchmark import io


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_file_gets_the_mode_a_plain_open_gives(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = io.atomic_write_json(tmp_path / "sub" / "record.json", {"a": 1.0, "b": float("nan")})
    assert _mode(written) == _mode(plain)
    assert written.read_text() == '{\n  "a": 1.0,\n  "b": null\n}\n'
    assert [p.name for p in written.parent.iterdir()] == ["record.json"]  # no temp file left


def test_the_process_umask_is_never_changed(tmp_path, monkeypatch):
    def refuse(_mask):
        raise AssertionError("atomic_write changed the process umask (races with other threads creating files)")

    monkeypatch.setattr(os, "umask", refuse)
    io.atomic_write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = io.atomic_write_text(tmp_path / "a.txt", "old")

    def crash(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        io.atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_taken_temp_name_is_skipped(tmp_path, monkeypatch):
    names = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(io.secrets, "token_hex", lambda _n: next(names))
    (tmp_path / ".a.txt.aaaa.tmp").write_text("someone else's")
    io.atomic_write_text(tmp_path / "a.txt", "mine")
    assert (tmp_path / "a.txt").read_text() == "mine"
    assert (tmp_path / ".a.txt.aaaa.tmp").read_text() == "someone else's"
