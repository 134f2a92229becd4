"""Quality labels and which one a record gets: the rules written once, for both engines.

A quality is what a user, a check, a judge or a benchmark said; ``success`` is not quality.

- **A label line** (``is_label_record``; Polars: ``is_label``) adds a quality to an existing record: a
  valid line with a quality and quality_source "user" (explicit feedback, what ``/v1/feedback`` and
  ``RoutingService.feedback`` write), or "check" / "judge" with ``label`` metadata (``zeta judge``).
  It never takes the place of the record's own line: ingestion keeps label lines apart.
- **The winning label** of a record (``label_rank``; Polars: ``winning_label``), among its label lines
  and its own quality (a label of its own source with the record's ts): the highest source rank
  (``SOURCE_RANK``: user > check = benchmark > judge), then the latest ``ts``, then the lower quality (a
  tie-break that depends on neither file nor run order; last, the source's name).
- **The stand-in line**: a decision with labels and no record of its own is read from its earliest
  label line (smallest ``ts``, then the lower quality: ``stand_in_order``; Polars: ``STAND_IN_ORDER``),
  with the winning quality.
- **The same label twice**: lines equal in (decision_id, ts, quality, quality_source) are one
  (``label_key``).
- **Training quality** (``training_quality``): the winning quality; a failed call (``success`` false)
  without one is quality 0 from a check; a successful call without one is *unlabeled*: null, never a
  quality row (it still serves the cost and latency models).  A failure the client caused
  (``is_client_failure``: its own timeout, a cancel) is no row at all.

The Python engine (``flows.logs.read_outcome_logs``, records in memory) and the Polars engine (the
curated store, ``flows.curated.scan_curated``) both read these definitions; ``tests/pipeline/
test_labels.py`` checks that they pick the same lines.  ``label_counts`` is the one summary of a
training window's labels (the ``labels`` key of results and manifests).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import polars as pl

from router_runtime.records import CLIENT_ERROR_PREFIX, LABEL_SOURCES

__all__ = ["FEEDBACK_SOURCE", "LABEL_SOURCES", "SOURCE_RANK", "is_label_record", "is_label", "label_rank",
           "winning_label", "stand_in_order", "STAND_IN_ORDER", "label_key", "training_quality", "is_client_failure", "label_counts",
           "is_feedback_record", "is_feedback", "feedback_key", "feedback_rank", "latest_feedback_quality"]

FEEDBACK_SOURCE = "user"
# Who outranks whom when a record has several labels: a person over an automatic check or a benchmark's
# reference grade, both over a judge model.  Unknown sources rank lowest.
SOURCE_RANK = {"user": 3, "check": 2, "benchmark": 2, "judge": 1}


def is_label_record(rec: Any) -> bool:
    """A parsed ``OutcomeRecord`` is a label line (see the module docstring)."""
    if rec.quality is None or rec.quality_source not in LABEL_SOURCES:
        return False
    return rec.quality_source == FEEDBACK_SOURCE or rec.label is not None


def is_label() -> pl.Expr:
    """The same rule over curated columns (``label`` is its JSON text; a null anywhere: not a label)."""
    src = pl.col("quality_source")
    return (pl.col("quality").is_not_null() & src.is_in(sorted(LABEL_SOURCES))
            & ((src == FEEDBACK_SOURCE) | pl.col("label").is_not_null())).fill_null(False)


def label_rank(source: str | None, ts: datetime, quality: float) -> tuple[int, datetime, float, str]:
    """The winning label of a record has the largest rank: source first, then latest ts, then lower quality
    (and, between a check and a benchmark grade equal in all three, the source's name: no order left open)."""
    return SOURCE_RANK.get(source, 0), ts, -quality, source or ""


def _source_rank() -> pl.Expr:
    return pl.col("quality_source").replace_strict(SOURCE_RANK, default=0, return_dtype=pl.Int8)


def winning_label() -> pl.Expr:
    """``label_rank`` as a Polars aggregation: a struct (quality, quality_source, label) of each group's
    winning row (rows: decision_id, ts, quality, quality_source, label)."""
    return (pl.struct("quality", "quality_source", "label")
            .sort_by([_source_rank(), pl.col("ts"), pl.col("quality"), pl.col("quality_source").fill_null("")],
                     descending=[True, True, False, True]).first())


def stand_in_order(ts: datetime, quality: float) -> tuple[datetime, float]:
    """The stand-in line of a decision without its own record is the smallest: earliest, then lower quality."""
    return ts, quality


STAND_IN_ORDER = ["ts", "quality"]  # ``stand_in_order`` as Polars sort columns (ascending)


def label_key() -> pl.Expr:
    """What makes two label lines the same label: (decision_id, ts, quality, quality_source), as one
    string (the last three parts hold no "|", so the key is unambiguous whatever the decision_id
    holds).  In Python the key is the tuple ``(decision_id, ts, quality, quality_source)``."""
    return pl.concat_str([pl.col("decision_id"), pl.col("ts").dt.epoch("us").cast(pl.String),
                          pl.col("quality").cast(pl.String), pl.col("quality_source")], separator="|")


def is_client_failure() -> pl.Expr:
    """``records.is_client_error`` over curated columns: a failure the client caused (its timeout, its
    cancel) says nothing about the model; training and evaluation leave the record out."""
    return pl.col("error").str.starts_with(CLIENT_ERROR_PREFIX).fill_null(False)


def training_quality() -> tuple[pl.Expr, pl.Expr]:
    """(quality, quality_source) a training row gets from a record with its winning label applied."""
    q, ok = pl.col("quality"), pl.col("success")
    failed = ok.not_().fill_null(False)
    quality = pl.when(q.is_not_null()).then(q).when(failed).then(pl.lit(0.0)).otherwise(pl.lit(None, pl.Float64))
    source = (pl.when(q.is_not_null()).then(pl.col("quality_source")).when(failed).then(pl.lit("check"))
              .otherwise(pl.lit(None, pl.String)))
    return quality.alias("quality"), source.alias("quality_source")


def label_counts(rows: pl.DataFrame) -> dict[str, Any]:
    """The labels of training rows (``flows.curated.training_columns``): labeled rows per quality_source
    and per model, unlabeled rows, shadow rows, and the judge(s) and rubric(s) behind judge labels, with
    the agreement their validation measured when the label metadata carries one (else null)."""
    labeled = rows.filter(pl.col("quality").is_not_null())
    by_source = dict(labeled.group_by("quality_source").len().sort("quality_source").iter_rows())
    by_model = dict(labeled.group_by("model").len().sort("model").iter_rows())
    out: dict[str, Any] = {"by_source": by_source, "by_model": by_model, "labeled": len(labeled),
                           "unlabeled": len(rows) - len(labeled),
                           "shadow": int(rows["shadow_of"].is_not_null().sum()) if "shadow_of" in rows.columns else 0,
                           "judge": None}
    if "label" in rows.columns:
        metas = [json.loads(x) for x in labeled.filter(pl.col("quality_source") == "judge")["label"].drop_nulls()
                 .unique().sort().to_list()]
        if metas:
            def one(key: str) -> Any:
                values = sorted({json.dumps(m.get(key), sort_keys=True) for m in metas})
                return json.loads(values[0]) if len(values) == 1 else [json.loads(v) for v in values]
            out["judge"] = {"model": one("judge"), "rubric_version": one("rubric_version"),
                            "agreement": one("agreement")}
    return out


# -- the names of the feedback-only rule this generalises (flows.feedback, before issue 10) --------------

def is_feedback_record(rec: Any) -> bool:
    """A user's label (explicit feedback) in particular."""
    return rec.quality_source == FEEDBACK_SOURCE and rec.quality is not None


def is_feedback() -> pl.Expr:
    return ((pl.col("quality_source") == FEEDBACK_SOURCE) & pl.col("quality").is_not_null()).fill_null(False)


def feedback_rank(ts: datetime, quality: float) -> tuple[datetime, float]:
    """Between a user's labels alone, ``label_rank`` without its (equal) source terms."""
    return ts, -quality


def latest_feedback_quality() -> pl.Expr:
    """The quality of the winning line among one decision's user labels (``feedback_rank`` in Polars)."""
    return pl.col("quality").sort_by(["ts", "quality"], descending=[True, False]).first()


feedback_key = label_key
