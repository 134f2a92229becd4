"""The one exclusive lock of the project: one writer at a time on a curated store or a registry.

Two ingests at once stored the same records twice; two pipelines at once both promoted "with no
champion yet", or one failed with "version already exists".  Each writer therefore holds
``<directory>/.zeta-lock`` with ``fcntl.flock`` for as long as it writes:

- the kernel drops a flock when its holder dies (``kill -9`` included), so a crash never leaves the
  lock held; the file stays, with the dead holder's pid in it, and the next writer simply takes it;
- a lock still held although the pid written in it is dead (a forked child that inherited the
  descriptor outlived its parent) is stale: the file is renamed away and a fresh one taken;
- a lock held by a live process is refused at once, or after ``timeout`` seconds, with a
  ``LockHeldError`` naming the holder (pid, command, since when);
- a thread that holds a lock may take it again (nested sections of one operation: the pipeline
  holds the registry while ``promote`` takes it too); another thread of the same process is refused
  like any other process.

flock is advisory and per host: on a shared filesystem across machines, run one pipeline at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .errors import LockHeldError

__all__ = ["LOCK_FILE", "exclusive"]

LOCK_FILE = ".zeta-lock"
_POLL_S = 0.05
_NAME_GRACE_S = 1.0  # how long a just-taken lock may stay without its holder's pid written

_held: dict[tuple[str, int], int] = {}  # (lock path, thread) -> nesting depth, in this process
_held_guard = threading.Lock()


def _holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # unknown holder: never break its lock
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} ({holder.get('command', '?')}, since {holder.get('since', '?')})"


@contextlib.contextmanager
def exclusive(directory: str | os.PathLike, what: str, *, timeout: float = 0.0) -> Iterator[Path]:
    """Hold ``<directory>/.zeta-lock`` for the ``with`` block; ``what`` names the resource in errors."""
    import fcntl  # POSIX only; the runtime's readers never lock

    directory = Path(directory)
    path = directory / LOCK_FILE
    key = (os.path.realpath(path), threading.get_ident())
    with _held_guard:
        if _held.get(key):
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield path
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not _alive(holder.get("pid")):
                # Held, but by nobody alive: move the file away (only if it is still this one).
                try:
                    if os.stat(path).st_ino == os.fstat(fd).st_ino:
                        os.rename(path, directory / f"{LOCK_FILE}.stale-{holder.get('pid')}-{os.getpid()}")
                except OSError:
                    pass
                os.close(fd)
                continue
            os.close(fd)
            if not holder and time.monotonic() < started + _NAME_GRACE_S:
                time.sleep(_POLL_S)  # taken a moment ago, its holder not written yet: read it again
                continue
            if time.monotonic() >= deadline:
                raise LockHeldError(f"{what} {directory} is locked by {_describe(holder)}; another ingest or "
                                    f"pipeline is writing it: wait for it, or stop it", path=str(path),
                                    pid=holder.get("pid")) from None
            time.sleep(_POLL_S)
            continue
        try:
            # The file may have been renamed away (a stale break) between open and flock: lock the
            # file that is at the path, not a detached one.
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                os.close(fd)
                continue
        except FileNotFoundError:
            os.close(fd)
            continue
        break
    try:
        argv = sys.argv or ["python"]
        command = "python -c" if argv[0] == "-c" else " ".join([os.path.basename(argv[0]), *argv[1:2]])
        info = {"pid": os.getpid(), "command": command,
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _held_guard:
            _held[key] = 1
        try:
            yield path
        finally:
            with _held_guard:
                _held.pop(key, None)
    finally:
        os.close(fd)  # releases the flock; the file stays (unlinking it would race the next taker)
