"""Field checks, written once: what counts as a number, a finite number, an integer, and the
refusals that name the field.

Python's ``bool`` is an ``int`` (``True == 1``), so every check refuses it explicitly: a JSON
``true`` where a count or a price belongs is a mistake, not 1.  An integer beyond float range (JSON
allows ``1e400`` as ``10**400``) is not a finite number: ``math.isfinite`` would raise
OverflowError on it, a vaguer error than the ContractError these checks promise.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ContractError

__all__ = ["is_number", "is_finite", "is_integer", "finite", "integer", "boolean", "string", "mapping", "unicode_text"]


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_finite(v: Any) -> bool:
    if not is_number(v):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def is_integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def finite(v: Any, field: str, *, low: float | None = None) -> float:
    """``v`` as a float, or ContractError naming ``field``."""
    if not is_finite(v):
        raise ContractError(field, f"must be a finite number, got {v!r}")
    if low is not None and v < low:
        raise ContractError(field, f"must be >= {low}, got {v!r}")
    return float(v)


def integer(v: Any, field: str, *, low: int | None = None) -> int:
    if not is_integer(v) or (low is not None and v < low):
        bound = f" >= {low}" if low is not None else ""
        raise ContractError(field, f"must be an integer{bound}, got {v!r}")
    return v


def boolean(v: Any, field: str) -> bool:
    if not isinstance(v, bool):
        raise ContractError(field, f"must be true or false, got {v!r}")
    return v


def string(v: Any, field: str) -> str:
    if not isinstance(v, str) or not v:
        raise ContractError(field, f"must be a non-empty string, got {v!r}")
    return v


def mapping(v: Any, field: str) -> dict:
    if not isinstance(v, dict):
        raise ContractError(field, f"must be an object, got {type(v).__name__}")
    return v


def unicode_text(v: str, field: str) -> str:
    """``v`` if it is valid Unicode, or ContractError naming ``field``.  JSON lets a client send a lone
    surrogate (``"\\ud800"``); no tokenizer can encode it, so it is the request's fault, refused before
    any model sees it rather than failing inside one."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ContractError(field, f"lone surrogate at index {exc.start}: not valid Unicode text") from None
    return v
