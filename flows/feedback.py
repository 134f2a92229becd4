"""Explicit feedback and which of its lines counts: the rule written once, for both engines.

A valid outcome line with ``quality_source`` "user" and a quality is feedback on its decision_id (what
``/v1/feedback`` and ``RoutingService.feedback`` write).  It never takes the place of the answer's
record; instead, for each decision:

- **the winning line** gives the record its quality (with quality_source "user"): the latest feedback,
  largest ``ts``; on equal ``ts`` the lower quality, a tie-break that depends on neither file nor run
  order (``feedback_rank``; Polars: ``latest_feedback_quality``);
- **the stand-in line**: a decision with feedback and no record of its own is read from its earliest
  feedback line (smallest ``ts``, then the lower quality: ``stand_in_order``; Polars: ``STAND_IN_ORDER``);
- **the same feedback twice**: lines equal in (decision_id, ts, quality) are one (``feedback_key``).

The Python engine (``flows.logs.read_outcome_logs``, records in memory) and the Polars engine (the
curated store, ``flows.curated.scan_curated``) both read these definitions; ``tests/pipeline/
test_feedback.py`` checks that they pick the same lines.  When labels from a judge or a check join the
user's (issue 10: user > check > judge), the source's precedence becomes the first term of the rank.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

__all__ = ["FEEDBACK_SOURCE", "is_feedback_record", "is_feedback", "feedback_rank", "latest_feedback_quality",
           "stand_in_order", "STAND_IN_ORDER", "feedback_key"]

FEEDBACK_SOURCE = "user"


def is_feedback_record(rec: Any) -> bool:
    """A parsed ``OutcomeRecord`` is feedback: quality_source "user" with a quality."""
    return rec.quality_source == FEEDBACK_SOURCE and rec.quality is not None


def is_feedback() -> pl.Expr:
    """The same rule over curated columns (a null in either column: not feedback)."""
    return ((pl.col("quality_source") == FEEDBACK_SOURCE) & pl.col("quality").is_not_null()).fill_null(False)


def feedback_rank(ts: datetime, quality: float) -> tuple[datetime, float]:
    """The winning feedback line of a decision has the largest rank: latest ts, then the lower quality."""
    return ts, -quality


def latest_feedback_quality() -> pl.Expr:
    """``feedback_rank`` as a Polars aggregation: the quality of the winning line of each group."""
    return pl.col("quality").sort_by(["ts", "quality"], descending=[True, False]).first()


def stand_in_order(ts: datetime, quality: float) -> tuple[datetime, float]:
    """The stand-in line of a decision without its own record is the smallest: earliest, then lower quality."""
    return ts, quality


STAND_IN_ORDER = ["ts", "quality"]  # ``stand_in_order`` as Polars sort columns (ascending)


def feedback_key() -> pl.Expr:
    """What makes two feedback lines the same feedback: (decision_id, ts, quality), as one string (the
    last two parts hold no "|", so the key is unambiguous whatever the decision_id holds).  In Python
    the key is the tuple ``(decision_id, ts, quality)``."""
    return pl.concat_str([pl.col("decision_id"), pl.col("ts").dt.epoch("us").cast(pl.String),
                          pl.col("quality").cast(pl.String)], separator="|")
