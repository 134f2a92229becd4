"""Decision ids and timestamps, made on the decision path (one per call), so both are cheap."""

from __future__ import annotations

import os
import random
import time

__all__ = ["new_id", "utc_now"]

# Decision ids: 128 bits from a generator seeded with 256 bits of os.urandom, reseeded in every forked
# child (pre-fork servers must not repeat their parent's ids).  Uniqueness is all an id needs; not a
# syscall per decision matters because a syscall releases the GIL, and a busy background thread (the
# record writer) then holds the request thread up for up to the interpreter's switch interval.
_IDS = random.Random(os.urandom(32))


def _reseed_ids() -> None:
    _IDS.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_ids)


def new_id() -> str:
    return f"{_IDS.getrandbits(128):032x}"


_SECOND: tuple[int, str] = (-1, "")  # (Unix second, its ISO prefix): one strftime per second, not per call


def utc_now() -> str:
    """UTC now as ISO 8601 with microseconds and "Z", as ``datetime.isoformat`` writes it."""
    global _SECOND
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    cached = _SECOND  # one read: a thread that swaps it in between cannot pair a prefix with another second
    if cached[0] != sec:
        cached = _SECOND = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{cached[1]}.{ns // 1000:06d}Z"
