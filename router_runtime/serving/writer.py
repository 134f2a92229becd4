"""The record writer: OutcomeRecords appended off the request's path, in submission order.

A full disk must not turn an answer into an error: a record that cannot be written is logged and
counted (``zeta_record_errors_total``), and the answer goes out.  At interpreter exit every writer is
flushed (bounded), so a process that ends normally loses no record it answered.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque

from ..records import OutcomeRecord
from ..router import Decision, Outcome, Router
from .metrics import Metrics

__all__ = ["RecordWriter", "write_record"]

log = logging.getLogger("zeta.serving")

_WRITER_IDLE_S = 5.0             # the record writer thread ends after this long without work
_WRITER_PERIOD_S = 0.01          # how often the record writer looks for records to write


def write_record(router: Router, metrics: Metrics, decision: Decision, outcome: Outcome) -> OutcomeRecord | None:
    try:
        return router.record(decision, outcome)
    except Exception as exc:  # a full disk must not turn an answer into an error
        log.error("could not record the outcome of %s: %s", decision.decision_id, exc)
        metrics.inc("zeta_record_errors_total")
        return None


_WRITERS: "weakref.WeakSet[RecordWriter]" = weakref.WeakSet()


class RecordWriter:
    """One daemon thread appending OutcomeRecords in submission order.

    The request's thread only appends to a deque: no lock wait, no wake-up.  A wake-up would let the
    writer take the GIL from the request for the whole write; instead the writer looks every
    ``_WRITER_PERIOD_S``, mostly while requests are inside llama.cpp (which releases the GIL)."""

    def __init__(self, router: Router, metrics: Metrics, maxsize: int = 100_000):
        self._router = router
        self._metrics = metrics
        self._items: deque = deque()
        self._maxsize = maxsize
        self._busy = False
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        _WRITERS.add(self)

    def submit(self, decision: Decision, outcome: Outcome) -> None:
        self.later(write_record, self._router, self._metrics, decision, outcome)

    def later(self, fn, *args) -> None:
        """Run ``fn(*args)`` on the writer thread, after everything submitted before it."""
        if len(self._items) >= self._maxsize:  # back-pressure, never loss: this request pays for a write
            self.flush(timeout=None)
            fn(*args)
            return
        with self._start:  # the writer ends when idle: queueing and (re)starting it are one step
            self._items.append((fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="zeta-records", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(_WRITER_PERIOD_S)
            if not self._items:
                if time.monotonic() - idle_since > _WRITER_IDLE_S:
                    with self._start:
                        if not self._items:  # idle: end the thread (a service no longer used frees it)
                            self._thread = None
                            return
                continue
            self._busy = True
            try:
                while self._items:
                    fn, args = self._items.popleft()
                    try:
                        fn(*args)
                    except Exception:  # one bad job must not stop the log
                        log.exception("deferred serving job failed")
            finally:
                self._busy = False
            idle_since = time.monotonic()

    def flush(self, timeout: float | None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while self._items or self._busy:
            if end is not None and time.monotonic() > end:
                return False
            time.sleep(0.001)
        return True


@atexit.register
def _flush_at_exit() -> None:
    for w in list(_WRITERS):
        w.flush(timeout=5.0)
