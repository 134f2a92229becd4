"""The one atomic file write of the project: a reader sees the old file or the new one, never a torn
one, and a crash or an error leaves no temporary file behind.

How: the bytes go to a temporary file in the target's own directory (``os.replace`` is atomic only
within one filesystem), which is fsynced and given its mode, then renamed over the target; the
directory is fsynced so the rename itself survives a power cut.  The mode is explicit (0o644 unless
told otherwise) rather than mkstemp's 0o600, which would hide a registry pointer from a runtime that
runs as another user.  ``flows`` writes its files through here too.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["atomic_write", "write_new_file", "fsync_dir"]

DEFAULT_MODE = 0o644


def write_new_file(path: str | os.PathLike, data: bytes, *, mode: int = DEFAULT_MODE) -> None:
    """Create ``path`` (it must not exist), write ``data``, fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)  # os.open's mode went through the umask; the file gets the mode asked for
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str, *, mode: int = DEFAULT_MODE) -> None:
    """Replace ``path`` by ``data`` (str is written as UTF-8) atomically and durably."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    # A random part, not the pid alone: two threads writing the same target must not share a temp file.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        write_new_file(tmp, data, mode=mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
