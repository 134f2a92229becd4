"""The curated store: its layout, its schema, and every reader of it.

``<curated>/day=YYYY-MM-DD/*.parquet`` holds one row per outcome record (``CURATED_SCHEMA``, LZ4),
``<curated>/_feedback/*.parquet`` the label lines (the same columns; the directory keeps the name it
had when only users' feedback went there).  The readers (``scan_curated``, ``read_curated``: training,
evaluation and off-policy estimates) give each record the quality, quality_source and label metadata
of its winning label (user > check > judge, then the latest ts: ``flows.labels``), and read a decision
with labels but no record of its own from its stand-in label line.  So a label may come in the same
run as its answer, in a later run (after the answer is in a day partition) or before it (another file
or unit), any number of times: nothing is lost, and the answer line takes over when it arrives.

``curated_row`` is the one mapping of a validated ``OutcomeRecord`` to a curated row; ``scores``,
``label`` and ``extra`` are canonical JSON (keys sorted, compact; ``scores`` without null entries, its
numbers formatted by Polars: ``_canonical``, the one encoder of both validation paths).  Written by
``flows.ingest``; ``default_curated_dir`` is where it lives when nobody says.  Partitions written before
a column was added read it as null (``scan_parts``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from router_runtime.records import OutcomeRecord

from .labels import STAND_IN_ORDER, is_client_failure, training_quality, winning_label

__all__ = ["CURATED_SCHEMA", "LABELS_DIR", "FEEDBACK_DIR", "PARQUET_COMPRESSION", "curated_row", "scan_parts",
           "scan_labels", "scan_feedback", "scan_curated", "read_curated", "training_columns",
           "curated_training_table", "default_curated_dir"]

LABELS_DIR = "_feedback"     # label lines (user feedback, checks, judges), applied when reading
FEEDBACK_DIR = LABELS_DIR
PARQUET_COMPRESSION = "lz4"  # measured: a third faster to write than zstd, files about twice as large

CURATED_SCHEMA = {
    "decision_id": pl.String, "ts": pl.Datetime("us", "UTC"), "day": pl.String,
    "artifact_version": pl.String, "query": pl.String, "query_sha256": pl.String, "request_kind": pl.String,
    "candidates": pl.List(pl.String), "model": pl.String, "propensity": pl.Float64, "scores": pl.String,
    "explored": pl.Boolean, "fallback_from": pl.String, "latency_ms": pl.Float64, "ttft_ms": pl.Float64,
    "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "success": pl.Boolean, "error": pl.String,
    "quality": pl.Float64, "quality_source": pl.String, "features": pl.List(pl.Float64), "cost": pl.Float64,
    "context_chars": pl.Int64, "sticky": pl.Boolean,
    "response": pl.String, "response_truncated": pl.Boolean, "shadow_of": pl.String, "label": pl.String,
    "request_id": pl.String, "retry_of": pl.String,
    "extra": pl.String, "source_file": pl.String,
}
_KV = pl.List(pl.Struct({"k": pl.String, "v": pl.Float64}))
_LINE = "__zeta_line"
# Rows before canonical encoding: scores as (model, score) pairs, and the unit-local line number.
_STAGE_SCHEMA = {**CURATED_SCHEMA, "scores": _KV, _LINE: pl.Int64}


def default_curated_dir(logs: str | os.PathLike) -> Path:
    """Beside the logs, never inside them (ingestion reads every *.jsonl under a log directory)."""
    p = Path(logs)
    return p.parent / f"{p.name}-curated" if p.is_dir() else p.parent / "curated"


def _curated_parts(curated: Path) -> list[Path]:
    return sorted(curated.glob("day=*/*.parquet"))


def _feedback_parts(curated: Path) -> list[Path]:
    return sorted((curated / LABELS_DIR).glob("*.parquet"))


def scan_parts(parts: list[Path]) -> pl.LazyFrame:
    """Curated Parquet files as one lazy frame of ``CURATED_SCHEMA``: a file written before a column was
    added (``response``, ``shadow_of``, ...) reads it as null."""
    return pl.scan_parquet(parts, schema=CURATED_SCHEMA, missing_columns="insert")


def curated_row(rec: OutcomeRecord, source: str) -> dict[str, Any]:
    """One validated record as a row of the curated schema: exactly what ingestion writes for it
    (``scores`` through the same Polars encoder as the fast path, so a record with scores costs a
    one-row frame here; ingestion itself encodes whole blocks)."""
    row = _row(rec, source, 0)
    del row[_LINE]
    row["scores"] = (_canonical(pl.DataFrame({"scores": [row["scores"]]}, schema={"scores": _KV}))["scores"][0]
                     if row["scores"] else "{}")
    return row


def _row(rec: OutcomeRecord, source: str, line: int) -> dict[str, Any]:
    """A record in the staging shape (see ``_STAGE_SCHEMA``)."""
    ts = datetime.fromisoformat(rec.ts).astimezone(timezone.utc)
    return {
        "decision_id": rec.decision_id, "ts": ts, "day": ts.strftime("%Y-%m-%d"),
        "artifact_version": rec.artifact_version, "query": rec.query, "query_sha256": rec.query_sha256,
        "request_kind": rec.request_kind, "candidates": list(rec.candidates), "model": rec.model,
        "propensity": rec.propensity,
        "scores": [{"k": k, "v": float(v)} for k, v in sorted(rec.scores.items()) if v is not None],
        "explored": rec.explored, "fallback_from": rec.fallback_from, "latency_ms": rec.latency_ms,
        "ttft_ms": rec.ttft_ms, "prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens,
        "success": rec.success, "error": rec.error, "quality": rec.quality, "quality_source": rec.quality_source,
        "features": None if rec.features is None else list(rec.features), "cost": rec.cost,
        "context_chars": rec.context_chars, "sticky": rec.sticky,
        "response": rec.response, "response_truncated": rec.response_truncated, "shadow_of": rec.shadow_of,
        "label": (json.dumps(dict(rec.label), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                  if rec.label is not None else None),
        "request_id": rec.request_id, "retry_of": rec.retry_of,
        "extra": (json.dumps(dict(rec.extra), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                  if rec.extra else None),
        "source_file": source, _LINE: line,
    }


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Staging shape → curated shape: ``scores`` pairs as JSON, one encoder for both paths."""
    pair = (pl.element().struct.json_encode().str.strip_prefix('{"k":')
            .str.replace(',"v":', ":", literal=True, n=1).str.strip_suffix("}"))
    return frame.with_columns(pl.format("{{{}}}", pl.col("scores").list.eval(pair).list.join(",")).alias("scores"))




def _unmatched_feedback_ids(curated: Path) -> pl.Series:
    """decision_ids of the label table without a record in the day partitions."""
    fb_parts, parts = _feedback_parts(curated), _curated_parts(curated)
    if not fb_parts:
        return pl.Series("decision_id", [], dtype=pl.String)
    ids = scan_parts(fb_parts).select(pl.col("decision_id").unique())
    if parts:
        ids = ids.join(scan_parts(parts).select("decision_id"), on="decision_id", how="anti")
    return ids.collect()["decision_id"]


def scan_labels(curated: str | os.PathLike) -> pl.LazyFrame | None:
    """The label table as stored, one row per label line taken (the curated columns), lazily; None
    when there is none.  ``scan_curated`` applies it; this is for looking at it."""
    parts = _feedback_parts(Path(curated))
    return scan_parts(parts) if parts else None


scan_feedback = scan_labels  # its name from before judges and checks could label


def scan_curated(curated: str | os.PathLike) -> pl.LazyFrame | None:
    """Every curated record, lazily, labels applied (None when there is none yet).

    A record with label lines has the quality, quality_source and label metadata of its winning label
    (its own quality competes as a label of its own source, ``flows.labels``); a decision_id with labels
    but no record of its own is read from its stand-in label line, with the winning label.  Without
    labels, the day partitions as they are.
    """
    cur = Path(curated)
    parts = _curated_parts(cur)
    records = scan_parts(parts) if parts else None
    lab = scan_labels(cur)
    if lab is None:
        return records
    labels = lab.collect()  # one row per label line: small next to the records
    ids = labels["decision_id"].unique()
    cols = ["decision_id", "ts", "quality", "quality_source", "label"]
    competing = [labels.select(cols)]
    if records is not None:  # the labelled records' own qualities compete too
        competing.append(records.filter(pl.col("decision_id").is_in(ids.implode()) & pl.col("quality").is_not_null())
                         .select(cols).collect())
    won = (pl.concat(competing).group_by("decision_id").agg(winning_label().alias("__zeta_won"))
           .select("decision_id", pl.col("__zeta_won").struct.field("quality").alias("__zeta_q"),
                   pl.col("__zeta_won").struct.field("quality_source").alias("__zeta_src"),
                   pl.col("__zeta_won").struct.field("label").alias("__zeta_label")))
    unmatched = _unmatched_feedback_ids(cur)
    orphans = (labels.filter(pl.col("decision_id").is_in(unmatched.implode()))
               .sort(["decision_id", *STAND_IN_ORDER]).unique("decision_id", keep="first", maintain_order=True))
    base = orphans.lazy() if records is None else pl.concat([records, orphans.lazy()])
    won_q = pl.col("__zeta_q").is_not_null()
    return (base.join(won.lazy(), on="decision_id", how="left")
            .with_columns(pl.when(won_q).then(pl.col("__zeta_q")).otherwise(pl.col("quality")).alias("quality"),
                          pl.when(won_q).then(pl.col("__zeta_src")).otherwise(pl.col("quality_source"))
                          .alias("quality_source"),
                          pl.when(won_q).then(pl.col("__zeta_label")).otherwise(pl.col("label")).alias("label"))
            .drop("__zeta_q", "__zeta_src", "__zeta_label"))


def read_curated(curated: str | os.PathLike, *, since: datetime | None = None) -> pl.DataFrame:
    """All curated records (optionally from ``since`` on), oldest first, feedback applied (``scan_curated``)."""
    lf = scan_curated(curated)
    if lf is None:
        return pl.DataFrame(schema=CURATED_SCHEMA)
    if since is not None:
        lf = lf.filter(pl.col("ts") >= since)
    return lf.sort(["ts", "decision_id"]).collect()


def training_columns(lf: pl.LazyFrame, *, candidates: bool = True) -> pl.LazyFrame:
    """Curated records as training rows (lazy); see ``curated_training_table``."""
    # A failed call's count says nothing about how long its answer would have been.  A caller that
    # selected the columns it needs before (the production window) may have left the count out.
    tokens = ([pl.when(pl.col("success")).then(pl.col("completion_tokens")).alias("completion_tokens")]
              if "completion_tokens" in lf.collect_schema().names() else [])
    quality, source = training_quality()
    return (lf.filter(pl.col("query").is_not_null() & ~is_client_failure())
            .select(pl.col("decision_id").alias("query_id"), "query", "model", quality, source,
                    pl.col("cost").fill_null(0.0), "propensity", (1.0 / pl.col("propensity")).alias("weight"),
                    "ts", "shadow_of", "label", *(["candidates"] if candidates else []), *tokens))


def curated_training_table(frame: pl.DataFrame) -> pl.DataFrame:
    """Curated records as training rows: the winning label's quality (a failed call without one: 0 from
    a check; a successful one without one: null, unlabeled: ``flows.labels.training_quality``), its
    quality_source, cost (else 0), weight 1/p, shadow_of and the label metadata.

    Records without query text (hash-only logging) cannot give text features and are left out.
    """
    return training_columns(frame.lazy()).collect()
