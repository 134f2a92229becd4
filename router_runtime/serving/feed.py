"""``Feed``: a backend's event iterator run on a thread of its own, read under a deadline.

A deadline checked between events holds only while events keep coming: a backend that blocks (a
stalled model, a load that hangs, an instance that never frees up) blocks the thread that checks it.
So the backend runs on the feed's thread and the request's thread only waits on a queue, with the
deadline (and a cancellation flag) as its limit: the request ends on time even when the backend does
not, and the backend's own thread stops at its next event.

Closing never waits for a backend that is stuck: it asks the feed's thread to stop, gives it
``_CLOSE_GRACE_S`` to release what it holds (the next request on a one-instance model then finds the
instance free), and returns.  A thread that is stuck for good stays a daemon thread holding its model
instance, which is right: that instance cannot serve anyone else either.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterator

__all__ = ["Feed"]

_CLOSE_GRACE_S = 0.1   # how long close() lets the backend's thread finish after asking it to stop
_POLL_S = 0.05         # how often a cancellable wait looks at the cancellation flag


class Feed:
    """Iterate ``start()``'s events on a daemon thread; ``events()`` hands them over on the caller's."""

    class Expired(Exception):
        """The deadline passed before the backend's next event."""

    class Cancelled(Exception):
        """The cancellation flag was set while waiting."""

    def __init__(self, start: Callable[[], Iterator[Any]], *, name: str = "zeta-gen"):
        self._start = start
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def _run(self) -> None:
        gen = None
        try:
            gen = self._start()
            for ev in gen:
                self._queue.put((True, ev))
                if self._stop.is_set():
                    break
            else:
                self._queue.put((False, None))  # exhausted: the backend's own finally has run
        except BaseException as exc:  # handed to the waiting thread, which owns the error handling
            self._queue.put((False, exc))
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                try:
                    close()  # on this thread: a generator must be closed by the thread that runs it
                except Exception:
                    pass
            self._done.set()

    def events(self, deadline: float | None, cancel: threading.Event | None = None) -> Iterator[Any]:
        """The backend's events in order; raises what it raised, ``Expired`` once ``deadline``
        (``time.monotonic()``) passes without the next event, ``Cancelled`` when ``cancel`` is set."""
        if not self._started:
            self._started = True
            self._thread.start()
        get = self._queue.get
        while True:
            if cancel is not None and cancel.is_set():
                raise Feed.Cancelled()
            wait = None if deadline is None else deadline - time.monotonic()
            if cancel is not None:
                wait = _POLL_S if wait is None else min(wait, _POLL_S)
            try:
                ok, item = get(timeout=wait) if wait is None or wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise Feed.Expired() from None
                continue
            if not ok:
                if item is None:
                    return
                raise item
            yield item

    def close(self) -> None:
        """Ask the backend's thread to stop at its next event; wait a moment for it, never longer."""
        self._stop.set()
        if self._started:
            self._done.wait(_CLOSE_GRACE_S)
