"""Hot reload's cheap half: noticing that a registry's CURRENT pointer moved.

The decision path pays at most one ``stat`` per interval, and never waits: a check that another
thread is making is skipped, not queued.  Loading and verifying the new version is the Router's
(``Router.reload``), on a background thread.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .errors import ContractError

__all__ = ["PointerWatch"]


class PointerWatch:
    """``changed()`` is True once each time the watched file's (inode, mtime, size) changes."""

    def __init__(self, path: Path, interval_ms: float):
        if not interval_ms > 0:
            raise ContractError("reload_interval_ms", f"must be > 0, got {interval_ms!r}")
        self.path = path
        self._interval = interval_ms / 1000.0
        self._next_check = time.monotonic() + self._interval
        self._signature = _stat_signature(path)
        self._lock = threading.Lock()

    def changed(self) -> bool:
        now = time.monotonic()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return False
        try:
            self._next_check = now + self._interval
            sig = _stat_signature(self.path)
            if sig == self._signature:
                return False
            self._signature = sig
            return True
        finally:
            self._lock.release()


def _stat_signature(path: Path | None) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, TypeError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
