"""The one atomic write (router_runtime._atomic): the new bytes or the old ones, an explicit mode
whatever the umask, and no temporary file left after a failure."""

from __future__ import annotations

import os
import stat

import pytest

from router_runtime import _atomic
from router_runtime._atomic import atomic_write


def test_replaces_the_content_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "CURRENT"
    target.write_text("old\n")
    atomic_write(target, "new\n")
    assert target.read_text() == "new\n" and sorted(os.listdir(tmp_path)) == ["CURRENT"]


def test_the_mode_is_explicit_whatever_the_umask(tmp_path):
    old = os.umask(0o077)  # mkstemp-like 0600 would hide the file from a runtime running as another user
    try:
        atomic_write(tmp_path / "a", b"x")
        atomic_write(tmp_path / "b", b"x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failure_keeps_the_old_file_and_removes_the_temp_file(tmp_path, monkeypatch, failing):
    target = tmp_path / "manifest.json"
    target.write_bytes(b"old")

    def fail(*args):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(_atomic.os, failing, fail)
    with pytest.raises(OSError, match="I/O error"):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["manifest.json"]
