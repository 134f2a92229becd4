"""Turning whatever a caller hands us into the text the features see.

Both interpreters (this runtime and the Polars pipeline) see valid Unicode: Polars strings are UTF-8 by
construction, so the runtime must map everything Polars could never hold (undecodable bytes, lone
surrogates) the same way the pipeline's inputs were mapped when they were written.
"""

from __future__ import annotations

import re

__all__ = ["as_text", "ascii_lower"]

_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def as_text(value: str | bytes | bytearray | memoryview | None) -> str | None:
    """Return ``value`` as a str that is valid UTF-8 (None stays None: a missing query).

    Undecodable bytes become U+FFFD (one per invalid sequence, as Python's "replace" handler does)
    and lone surrogates (from JSON such as ``"\\ud800"``) become U+FFFD, so the text always
    round-trips through UTF-8 and therefore through Polars and Parquet.
    """
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise TypeError(f"query must be str, bytes or None, got {type(value).__name__}")
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only: Unicode case folding differs between engines (İ, ı, ß)."""
    return text.translate(_ASCII_LOWER)
