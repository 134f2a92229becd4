"""The one guarded read of a registry file (CURRENT, router.json, manifest.json).

A registry is written by a pipeline but may be edited by hand or by an attacker, and the runtime
reads it on its reload thread under the reload lock.  So a read must never block, never read without
bound and never leave the registry:

- only a regular file is read: a FIFO would block ``open`` forever (no writer), a device such as
  ``/dev/zero`` reports size 0 and reads without end.  The type is checked before opening (opening
  a device can have side effects) and again on the open descriptor (the name may be swapped in
  between); ``O_NONBLOCK`` keeps even that open from waiting for a writer;
- a symbolic link is refused (``O_NOFOLLOW``): a link could point anywhere, out of the registry;
- the size cap is enforced while reading, not trusted from ``st_size``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import ArtifactError, ArtifactNotFoundError

__all__ = ["read_regular_file"]

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str | os.PathLike, *, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit`` of them), or an ArtifactError."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ArtifactNotFoundError(f"missing file {path.name}", path=str(path)) from None
    except OSError as exc:
        raise ArtifactError(f"{path.name}: cannot stat ({exc.strerror})", path=str(path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{path.name} is {_kind(st.st_mode)}, not a regular file: refused", path=str(path))
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise ArtifactNotFoundError(f"missing file {path.name}", path=str(path)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ArtifactError(f"{path.name} is a symbolic link, not a regular file: refused",
                                path=str(path)) from None
        raise ArtifactError(f"{path.name}: cannot open ({exc.strerror})", path=str(path)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"{path.name} is {_kind(st.st_mode)}, not a regular file: refused", path=str(path))
        if st.st_size > limit:
            raise ArtifactError(f"{path.name} is {st.st_size} bytes, above the {limit} limit", path=str(path))
        chunks, total = [], 0
        while True:
            block = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
            if total > limit:  # the file grew after fstat: the cap holds all the same
                raise ArtifactError(f"{path.name} is above the {limit} byte limit", path=str(path))
        return b"".join(chunks)
    except OSError as exc:
        raise ArtifactError(f"{path.name}: read failed ({exc.strerror})", path=str(path)) from None
    finally:
        os.close(fd)
