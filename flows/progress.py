"""Progress bars for the long commands (train, calibrate, simulate-logs, judge, shadow, bench).

The work reports its steps to ``bar(label, total)``; nothing is drawn unless the ``zeta`` command
switched drawing on for this process (``enable``), so library callers, Prefect deployments and tests
that call the flows directly see no output.  The command decides with ``wanted``:

- ``--no-progress`` or ``ZETA_NO_PROGRESS=1``: off;
- ``--progress``: on, whatever stderr is;
- neither: on when stderr is a terminal, off under ``--json`` (a program reads that output).

Bars go to stderr only, never to stdout, so a piped or ``--json`` stdout stays exactly what it was.
On a terminal a bar redraws one line in place (at most 10 times a second); on anything else
(``--progress`` into a log file) it writes a line at each tenth of the way, so a log stays readable.
A module global and a lock, not a context variable: Prefect runs tasks in worker threads.

Standard library only.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO

__all__ = ["Bar", "bar", "enable", "disable", "enabled", "wanted", "fit_catboost", "ENV_OFF"]

ENV_OFF = "ZETA_NO_PROGRESS"
_WIDTH = 28
_REDRAW_S = 0.1

_lock = threading.Lock()
_stream: IO[str] | None = None


def wanted(flag: bool | None, *, json_output: bool = False, stream: IO[str] | None = None) -> bool:
    """Whether a command draws bars: ``flag`` is ``--progress`` (True), ``--no-progress`` (False) or
    neither (None)."""
    if os.environ.get(ENV_OFF, "").strip().lower() not in ("", "0", "false", "no") or flag is False:
        return False
    if flag:
        return True
    stream = sys.stderr if stream is None else stream
    return not json_output and _isatty(stream)


def enable(stream: IO[str] | None = None) -> None:
    global _stream
    _stream = sys.stderr if stream is None else stream


def disable() -> None:
    global _stream
    _stream = None


def enabled() -> bool:
    return _stream is not None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a file
        return False


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Bar:
    """One bar: ``advance()`` per step done, ``note`` for what is being done now; a context manager
    that ends the line.  Thread-safe; a no-op when drawing is off."""

    def __init__(self, label: str, total: int | None = None, *, stream: IO[str] | None = None):
        self.label, self.total, self.done, self.note = label, total, 0, ""
        self._stream = stream
        self._tty = stream is not None and _isatty(stream)
        self._t0 = time.monotonic()
        self._drawn_at = 0.0
        self._tenth = -1
        self._written = -1  # steps done at the last line written (not on a terminal)
        self._closed = False
        self._draw(force=True)

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, n: int = 1, note: str | None = None) -> None:
        if self._stream is None:
            return
        with _lock:
            self.done += n
            if note is not None:
                self.note = note
            self._draw()

    def set_total(self, total: int) -> None:
        if self._stream is None:
            return
        with _lock:
            self.total = total
            self._draw(force=True)

    def close(self) -> None:
        if self._stream is None or self._closed:
            return
        with _lock:
            self._closed = True
            self._draw(force=True, final=True)

    def text(self) -> str:
        elapsed = time.monotonic() - self._t0
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = int(share * _WIDTH)
            eta = f" eta {_clock(elapsed * (1 - share) / share)}" if 0 < share < 1 else ""
            body = (f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {self.done}/{self.total} {share:4.0%} "
                    f"{_clock(elapsed)}{eta}")
        else:
            body = f"{self.done} done {_clock(elapsed)}"
        return f"{self.label} {body}" + (f"  {self.note}" if self.note else "")

    def _draw(self, *, force: bool = False, final: bool = False) -> None:
        if self._stream is None:
            return
        now = time.monotonic()
        try:
            if self._tty:
                if force or now - self._drawn_at >= _REDRAW_S:
                    self._stream.write("\r\x1b[K" + self.text() + ("\n" if final else ""))
                    self._stream.flush()
                    self._drawn_at = now
                return
            tenth = int(10 * self.done / self.total) if self.total else -1
            if (final and self.done != self._written) or (force and self._tenth < 0) or tenth > self._tenth:
                self._tenth, self._written = max(tenth, 0), self.done
                self._stream.write(self.text() + "\n")
                self._stream.flush()
        except (OSError, ValueError):  # a closed stderr never breaks the work it reports on
            self._stream = None


def bar(label: str, total: int | None = None) -> Bar:
    """A bar on the enabled stream, or a silent one."""
    return Bar(label, total, stream=_stream)


class _CatBoostSteps:
    """CatBoost's ``fit(callbacks=[...])`` protocol: ``after_iteration`` per tree, True to go on."""

    def __init__(self, b: Bar):
        self._bar = b

    def after_iteration(self, info) -> bool:
        self._bar.advance()
        return True


def fit_catboost(model, pool, label: str, trees: int) -> None:
    """``model.fit(pool)``, with a bar over its trees when drawing is on (off: the plain call, as before)."""
    if _stream is None:
        model.fit(pool)
        return
    with bar(label, trees) as b:
        model.fit(pool, callbacks=[_CatBoostSteps(b)])
