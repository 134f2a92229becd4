"""Ingestion: raw outcome logs (JSONL) → curated Parquet partitioned by day, incrementally.

Every line is validated against OutcomeRecord v1.  A bad line is written, byte for byte
(``raw_base64``) and readable (``raw``), to ``<curated>/_quarantine/<run>.jsonl`` with the file, the
line number and the reason; nothing is silently dropped.  Records whose ``decision_id`` was already
ingested (in this run or an earlier one) are counted as duplicates and skipped.

Incremental and idempotent: ``<curated>/_state/ingest.json`` remembers, per file, the byte offset up
to which complete lines were consumed.  A re-run reads only what was appended since; a new file is
picked up.  The Parquet partition is written (temp file, rename) before the state moves, so a crash
in between re-reads those lines next time and the decision_id check turns them into duplicates.

A last line without its newline is left pending while its file may still be written (modified within
``settle_seconds``); after that it is taken as it is, so a torn line from a crashed writer ends up in
quarantine instead of blocking ingestion forever.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from router_runtime.errors import ContractError
from router_runtime.records import OutcomeRecord, parse_outcome_line

from .logs import log_files

__all__ = ["IngestResult", "ingest_logs", "read_curated", "curated_row", "curated_training_table", "CURATED_SCHEMA"]

STATE_FILE = Path("_state") / "ingest.json"
QUARANTINE_DIR = "_quarantine"

CURATED_SCHEMA = {
    "decision_id": pl.String, "ts": pl.Datetime("us", "UTC"), "day": pl.String,
    "artifact_version": pl.String, "query": pl.String, "query_sha256": pl.String, "request_kind": pl.String,
    "candidates": pl.List(pl.String), "model": pl.String, "propensity": pl.Float64, "scores": pl.String,
    "explored": pl.Boolean, "fallback_from": pl.String, "latency_ms": pl.Float64, "ttft_ms": pl.Float64,
    "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "success": pl.Boolean, "error": pl.String,
    "quality": pl.Float64, "quality_source": pl.String, "features": pl.List(pl.Float64), "cost": pl.Float64,
    "extra": pl.String, "source_file": pl.String,
}


@dataclass
class IngestResult:
    files: int = 0
    new_files: int = 0
    lines: int = 0
    ingested: int = 0
    quarantined: int = 0
    duplicates: int = 0
    pending_bytes: int = 0          # incomplete last lines left for a later run
    partitions: list[str] = field(default_factory=list)
    quarantine_file: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # quarantine reason (field) -> count

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _load_state(curated: Path) -> dict[str, Any]:
    p = curated / STATE_FILE
    if not p.exists():
        return {"version": 1, "files": {}}
    try:
        state = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError("ingest_state", f"unreadable state file {p}: {exc}") from None
    if state.get("version") != 1 or not isinstance(state.get("files"), dict):
        raise ContractError("ingest_state", f"unknown state format in {p}")
    return state


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _known_ids(curated: Path) -> set[str]:
    parts = [p for p in curated.glob("day=*/*.parquet")]
    if not parts:
        return set()
    return set(pl.scan_parquet(parts).select("decision_id").collect()["decision_id"].to_list())


def curated_row(rec: OutcomeRecord, source: str) -> dict[str, Any]:
    """One validated record as a row of the curated schema."""
    ts = datetime.fromisoformat(rec.ts).astimezone(timezone.utc)
    return {
        "decision_id": rec.decision_id, "ts": ts, "day": ts.strftime("%Y-%m-%d"),
        "artifact_version": rec.artifact_version, "query": rec.query, "query_sha256": rec.query_sha256,
        "request_kind": rec.request_kind, "candidates": list(rec.candidates), "model": rec.model,
        "propensity": rec.propensity, "scores": json.dumps(dict(rec.scores), sort_keys=True),
        "explored": rec.explored, "fallback_from": rec.fallback_from, "latency_ms": rec.latency_ms,
        "ttft_ms": rec.ttft_ms, "prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens,
        "success": rec.success, "error": rec.error, "quality": rec.quality, "quality_source": rec.quality_source,
        "features": None if rec.features is None else list(rec.features), "cost": rec.cost,
        "extra": json.dumps(dict(rec.extra), sort_keys=True, ensure_ascii=False) if rec.extra else None,
        "source_file": source,
    }


def _lines(data: bytes, final: bool) -> tuple[list[bytes], int]:
    """Complete lines of ``data`` and how many bytes they span (the rest is a pending tail)."""
    end = data.rfind(b"\n") + 1
    if final and end < len(data):
        end = len(data)
    return data[:end].splitlines(), end


def ingest_logs(raw: str | os.PathLike, curated: str | os.PathLike, *, settle_seconds: float = 60.0,
                known_models: Iterable[str] | None = None, max_batch_rows: int = 500_000) -> IngestResult:
    """Ingest everything new under ``raw`` into ``curated``; see the module docstring."""
    curated = Path(curated)
    state = _load_state(curated)
    run = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    models = None if known_models is None else frozenset(known_models)
    result = IngestResult()
    seen = _known_ids(curated)
    rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    new_state = {k: dict(v) for k, v in state["files"].items()}
    try:
        files = log_files(raw)
    except FileNotFoundError:
        files = []

    def flush() -> None:
        if rows:
            frame = pl.DataFrame(rows, schema=CURATED_SCHEMA)
            for (day,), part in frame.partition_by("day", as_dict=True, maintain_order=True).items():
                path = curated / f"day={day}" / f"part-{run}-{len(result.partitions)}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp")
                part.write_parquet(tmp)
                os.replace(tmp, path)
                result.partitions.append(str(path))
            rows.clear()

    now = time.time()
    for path in files:
        if curated in path.resolve().parents:
            continue  # never re-ingest our own quarantine files
        key = str(path.resolve())
        st = path.stat()
        prev = new_state.get(key)
        offset, line_no = (prev["offset"], prev["lines"]) if prev else (0, 0)
        if prev is None:
            result.new_files += 1
        elif st.st_size < offset:  # truncated or replaced in place: read it again from the start
            offset, line_no = 0, 0
        result.files += 1
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(st.st_size - offset)
        settled = now - st.st_mtime >= settle_seconds
        lines, consumed = _lines(data, final=settled)
        result.pending_bytes += len(data) - consumed
        for raw_line in lines:
            line_no += 1
            line = raw_line.rstrip(b"\r")
            if not line.strip():
                continue
            result.lines += 1
            try:
                rec = parse_outcome_line(line, known_models=models)
            except ContractError as exc:
                result.quarantined += 1
                result.reasons[exc.field] = result.reasons.get(exc.field, 0) + 1
                quarantine.append({"file": key, "line": line_no, "reason": str(exc), "field": exc.field,
                                   "raw": line.decode("utf-8", errors="replace"),
                                   "raw_base64": base64.b64encode(line).decode("ascii")})
                continue
            if rec.decision_id in seen:
                result.duplicates += 1
                continue
            seen.add(rec.decision_id)
            rows.append(curated_row(rec, key))
            result.ingested += 1
            if len(rows) >= max_batch_rows:
                flush()
        new_state[key] = {"offset": offset + consumed, "lines": line_no, "size": st.st_size,
                          "mtime_ns": st.st_mtime_ns}
    flush()
    if quarantine:
        qpath = curated / QUARANTINE_DIR / f"{run}.jsonl"
        _atomic_write(qpath, b"".join((json.dumps(q, ensure_ascii=False) + "\n").encode() for q in quarantine))
        result.quarantine_file = str(qpath)
    # Only now does the state move: data first, bookkeeping second (see the module docstring).
    _atomic_write(curated / STATE_FILE, json.dumps({"version": 1, "files": new_state}, indent=1).encode())
    return result


def read_curated(curated: str | os.PathLike, *, since: datetime | None = None) -> pl.DataFrame:
    """All curated records (optionally from ``since`` on), oldest first."""
    parts = sorted(Path(curated).glob("day=*/*.parquet"))
    if not parts:
        return pl.DataFrame(schema=CURATED_SCHEMA)
    lf = pl.scan_parquet(parts)
    if since is not None:
        lf = lf.filter(pl.col("ts") >= since)
    return lf.sort(["ts", "decision_id"]).collect()


def curated_training_table(frame: pl.DataFrame) -> pl.DataFrame:
    """Curated records as training rows: quality (else 1/0 from success), cost (else 0), weight 1/p.

    Records without query text (hash-only logging) cannot give text features and are left out.
    """
    return (frame.filter(pl.col("query").is_not_null())
            .select(pl.col("decision_id").alias("query_id"), "query", "model",
                    pl.coalesce(pl.col("quality"), pl.col("success").cast(pl.Float64)).alias("quality"),
                    pl.col("cost").fill_null(0.0), "propensity", (1.0 / pl.col("propensity")).alias("weight"),
                    "ts", "candidates"))
