"""Hot reload's cheap half: noticing that a registry's CURRENT pointer moved.

The decision path pays at most one ``stat`` per interval, and never waits: a check that another
thread is making is skipped, not queued.  Loading and verifying the new version is the Router's
(``Router.reload``, which logs to "zeta.reload" what it swapped in or why it refused), on a
background thread.  A process that gets no traffic must still pick up a promotion (its next first
request would otherwise answer on the old version): ``ReloadTimer`` makes the same check on a timer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Callable

from .errors import ContractError

__all__ = ["PointerWatch", "ReloadTimer"]

log = logging.getLogger("zeta.reload")


class PointerWatch:
    """``changed()`` is True once each time the watched file's (inode, mtime, size) changes."""

    def __init__(self, path: Path, interval_ms: float):
        if not interval_ms > 0:
            raise ContractError("reload_interval_ms", f"must be > 0, got {interval_ms!r}")
        self.path = path
        self.interval_ms = float(interval_ms)
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


class ReloadTimer:
    """Calls ``check`` every ``interval_s`` on a daemon thread until ``stop()``; an exception in
    ``check`` is logged and the timer keeps going (a broken registry must not end hot reload).

    A bound method is held weakly: a host that is dropped without ``close()`` ends its timer at the
    next tick instead of being kept alive, and stat'ing its registry, by its own thread."""

    def __init__(self, check: Callable[[], object], interval_s: float, *, name: str = "zeta-reload-timer"):
        if not interval_s > 0:
            raise ContractError("interval_s", f"must be > 0, got {interval_s!r}")
        self._check = weakref.WeakMethod(check) if hasattr(check, "__self__") else (lambda: check)
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            check = self._check()
            if check is None:  # the host is gone
                return
            try:
                check()
            except Exception:
                log.exception("hot reload check failed")
            del check

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


def _stat_signature(path: Path | None) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, TypeError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
