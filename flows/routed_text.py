"""The routed-text contract in Polars: a conversation column -> the text a decision reads and the
conversation features, exactly as ``router_runtime.routed_text.routed_text`` computes them per request.

The contract (sources, features, why) is documented once, in ``router_runtime/routed_text.py``;
``tests/runtime/test_routed_text.py`` holds the two interpreters to identical values.  The input is a
column of ``List(Struct{role: String, content: String})`` (a null content counts as empty text).
A benchmark table's ``query`` is one user turn: its routed text is the query itself.
"""

from __future__ import annotations

import polars as pl

from router_runtime.errors import ContractError
from router_runtime.routed_text import CODE_CUES, DEFAULT_SOURCE, SOURCES

__all__ = ["routed_text_exprs", "add_routed_text"]

_UPPER = [chr(c) for c in range(65, 91)]
_LOWER = [chr(c) for c in range(97, 123)]
_SYSTEM = ["system", "developer"]


def routed_text_exprs(messages: str = "messages", source: str = DEFAULT_SOURCE) -> list[pl.Expr]:
    """Expressions for ``query`` (the routed text), ``turns``, ``system_chars``, ``history_code``
    (Float64 0/1, like a feature) and ``context_chars`` of the conversation column ``messages``."""
    if source not in SOURCES:
        raise ContractError("routed_text.source", f"must be one of {list(SOURCES)}, got {source!r}")
    msgs = pl.col(messages)
    content = pl.element().struct.field("content").fill_null("")
    role = pl.element().struct.field("role")
    contents = msgs.list.eval(content)
    is_user = msgs.list.eval(role == "user")
    whole = contents.list.join("\n")
    n = msgs.list.len()
    any_user = is_user.list.any()
    # The last user turn's index: the first True of the reversed mask, counted from the end.
    last = (n - 1 - is_user.list.reverse().list.arg_max()).cast(pl.Int64)
    code = msgs.list.eval(content.str.replace_many(_UPPER, _LOWER).str.contains_any(list(CODE_CUES)))
    history = pl.when(any_user).then(code.list.slice(0, last).list.any()).otherwise(False)
    text = whole if source == "conversation" else (
        pl.when(any_user).then(contents.list.get(last, null_on_oob=True)).otherwise(whole))
    return [
        text.alias("query"),
        is_user.list.sum().cast(pl.Float64).alias("turns"),
        msgs.list.eval(pl.when(role.is_in(_SYSTEM)).then(content.str.len_chars()).otherwise(0))
        .list.sum().cast(pl.Float64).alias("system_chars"),
        history.cast(pl.Float64).alias("history_code"),
        whole.str.len_chars().cast(pl.Float64).alias("context_chars"),
    ]


def add_routed_text(frame: pl.DataFrame | pl.LazyFrame, messages: str = "messages",
                    source: str = DEFAULT_SOURCE) -> pl.DataFrame | pl.LazyFrame:
    """``frame`` with the routed-text columns of its conversation column added (``query`` replaced)."""
    return frame.with_columns(routed_text_exprs(messages, source))
