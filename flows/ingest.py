"""Ingestion: raw outcome logs (JSONL) → curated Parquet partitioned by day, incrementally.

Every line is validated against OutcomeRecord v1.  A bad line is written, byte for byte
(``raw_base64``) and readable (``raw``), to ``<curated>/_quarantine/<run>.jsonl`` with the file, the
line number and the reason; nothing is silently dropped.  Records whose ``decision_id`` was already
ingested (in this run or an earlier one) are counted as duplicates and skipped; the first one wins.

Explicit feedback: a valid line with ``quality_source`` "user" and a ``quality`` is feedback on its
decision_id (``RoutingService.feedback`` appends the answer's record again with the user's quality).
It never takes the answer's place: it goes to ``<curated>/_feedback/*.parquet`` (the day partitions'
columns), and the readers (``scan_curated``, ``read_curated``: training, evaluation and off-policy
estimates) give the record the quality of its latest feedback, with quality_source "user".  Latest is
the largest ``ts``; on equal ``ts`` the lower quality, a tie-break that depends on neither file nor run
order.  So feedback may come in the same run as its answer, in a later run (after the answer is in a
day partition) or before it (another file or unit), any number of times.  A decision_id with feedback
and no other line (yet; or a host that logs the user's verdict directly with ``Router.record``) is
read from its earliest feedback line, as its record: nothing is lost, and its answer line takes over
when it arrives.  A feedback line equal to one already taken in (decision_id, ts, quality) is a
duplicate.  ``IngestResult.feedback`` counts the feedback lines taken, ``feedback_unmatched`` the
decision_ids in the feedback table without a record of their own; every non-blank line is exactly
one of ingested, feedback, quarantined or duplicate.

Incremental and idempotent: ``<curated>/_state/ingest.json`` remembers, per file, the byte offset up
to which complete lines were consumed.  A re-run reads only what was appended since; a new file is
picked up.  The Parquet partitions and feedback files are written (temp file, rename) before the state
moves, so a crash in between re-reads those lines next time and the decision_id check (for feedback:
the (decision_id, ts, quality) check) turns them into duplicates.

A last line without its newline is left pending while its file may still be written (modified within
``settle_seconds``); after that it is taken as it is, so a torn line from a crashed writer ends up in
quarantine instead of blocking ingestion forever.

Scale: a run is planned (``plan_ingest``) as units of at most ``unit_bytes`` of a file, cut at line
boundaries; each unit (``ingest_unit``) validates its lines and stages Parquet files, independently of
the others, so units can be mapped over a task runner (threads, or Dask workers sharing the
filesystem); ``commit_ingest`` then drops duplicates across units and earlier runs, moves the staged
files into the day partitions and the feedback table, and saves the state.  Validation has two paths
that must agree:

- the fast path: pyarrow's JSON reader with the contract's types as an explicit schema, then
  vectorized Polars checks of every rule of ``parse_outcome``.  pyarrow, not ``pl.read_ndjson``,
  because Polars turns a number given for a string field into its text and keeps the first of two
  duplicate keys, where Python refuses the first and keeps the last; pyarrow refuses both, and also
  lone surrogates and invalid UTF-8.  It may refuse a valid line (a ``NaN`` inside a query's text, a
  timestamp with more than 6 fraction digits, an explicit null in an unknown field ...), never accept
  an invalid one;
- the Python validator (``parse_outcome_line``), for every line the fast path did not accept (a
  block pyarrow cannot read is bisected down to small groups first): it gives the exact reason, and a
  valid line it accepts is ingested like any other.

Both paths write the same curated values; ``scores`` and ``extra`` are canonical JSON (keys sorted,
compact; ``scores`` without null entries, its numbers formatted by Polars in both paths).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import polars as pl

from router_runtime.errors import ContractError
from router_runtime.records import MAX_LINE_BYTES, QUALITY_SOURCES, OutcomeRecord, parse_outcome_line

from .logs import log_files

__all__ = ["IngestResult", "IngestPlan", "IngestUnit", "UnitResult", "ingest_logs", "plan_ingest", "ingest_unit",
           "commit_ingest", "staging_dir", "validate_lines", "read_curated", "scan_curated", "curated_row",
           "training_columns", "curated_training_table", "CURATED_SCHEMA", "scan_feedback", "is_feedback"]

STATE_FILE = Path("_state") / "ingest.json"
QUARANTINE_DIR = "_quarantine"
STAGING_DIR = "_staging"
FEEDBACK_DIR = "_feedback"   # explicit feedback lines (quality_source "user"), applied when reading
UNIT_BYTES = 256 << 20     # the work of one task: a file is cut into units of about this size
BLOCK_BYTES = 32 << 20     # a unit is read and validated this much at a time: bounds a worker's memory
PARQUET_COMPRESSION = "lz4"  # measured: a third faster to write than zstd, files about twice as large
PYTHON_GROUP = 8           # a refused block is bisected down to this many lines, then read line by line

CURATED_SCHEMA = {
    "decision_id": pl.String, "ts": pl.Datetime("us", "UTC"), "day": pl.String,
    "artifact_version": pl.String, "query": pl.String, "query_sha256": pl.String, "request_kind": pl.String,
    "candidates": pl.List(pl.String), "model": pl.String, "propensity": pl.Float64, "scores": pl.String,
    "explored": pl.Boolean, "fallback_from": pl.String, "latency_ms": pl.Float64, "ttft_ms": pl.Float64,
    "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "success": pl.Boolean, "error": pl.String,
    "quality": pl.Float64, "quality_source": pl.String, "features": pl.List(pl.Float64), "cost": pl.Float64,
    "extra": pl.String, "source_file": pl.String,
}
_KV = pl.List(pl.Struct({"k": pl.String, "v": pl.Float64}))
_LINE = "__zeta_line"
# Rows before canonical encoding: scores as (model, score) pairs, and the unit-local line number.
_STAGE_SCHEMA = {**CURATED_SCHEMA, "scores": _KV, _LINE: pl.Int64}
_INT64_MAX = (1 << 63) - 1
_KNOWN_FIELDS = frozenset(OutcomeRecord.__dataclass_fields__)  # includes "extra": never an unknown field


@dataclass
class IngestResult:
    files: int = 0
    new_files: int = 0
    lines: int = 0
    ingested: int = 0
    quarantined: int = 0
    duplicates: int = 0
    feedback: int = 0               # feedback lines (quality_source "user") taken into the feedback table
    feedback_unmatched: int = 0     # decision_ids in the feedback table without a record of their own (yet)
    pending_bytes: int = 0          # incomplete last lines left for a later run
    partitions: list[str] = field(default_factory=list)
    quarantine_file: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # quarantine reason (field) -> count
    fast_path_lines: int = 0        # lines accepted by the vectorized validator (the rest: Python)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IngestUnit:
    """Bytes [start, end) of one log file; ``final``: a last line without newline is taken as it is."""
    index: int
    path: str
    start: int
    end: int
    final: bool


@dataclass
class UnitResult:
    index: int
    lines: int = 0                  # lines split (blank ones included: they count for line numbers)
    nonblank: int = 0
    consumed: int = 0               # bytes of complete lines, from the unit's start
    ingested: int = 0               # valid and not a duplicate inside the unit
    duplicates: int = 0
    feedback: int = 0               # feedback lines, not a duplicate inside the unit
    fast: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # line numbers local to the unit
    staged: list[str] = field(default_factory=list)
    feedback_staged: list[str] = field(default_factory=list)


@dataclass
class IngestPlan:
    curated: str
    run: str
    units: list[IngestUnit]
    state: dict[str, Any]            # the new state, offsets still to be set from the units' results
    base_lines: dict[str, int]       # per file: lines consumed before this run
    result: IngestResult


# ---------------------------------------------------------------------------------------------- state

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


def _curated_parts(curated: Path) -> list[Path]:
    return sorted(curated.glob("day=*/*.parquet"))


def _feedback_parts(curated: Path) -> list[Path]:
    return sorted((curated / FEEDBACK_DIR).glob("*.parquet"))


def is_feedback() -> pl.Expr:
    """The rule that makes a valid line feedback: quality_source "user" with a quality (the same rule
    as ``flows.logs.read_outcome_logs``)."""
    return ((pl.col("quality_source") == "user") & pl.col("quality").is_not_null()).fill_null(False)


def _feedback_key() -> pl.Expr:
    """What makes two feedback lines the same feedback: (decision_id, ts, quality), as one string (the
    last two parts hold no "|", so the key is unambiguous whatever the decision_id holds)."""
    return pl.concat_str([pl.col("decision_id"), pl.col("ts").dt.epoch("us").cast(pl.String),
                          pl.col("quality").cast(pl.String)], separator="|")


# ------------------------------------------------------------------------------------- Python path

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
        "extra": (json.dumps(dict(rec.extra), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                  if rec.extra else None),
        "source_file": source, _LINE: line,
    }


def _python_lines(lines: Sequence[bytes], numbers: Sequence[int], source: str, known_models: frozenset[str] | None,
                  rows: list[dict[str, Any]], quarantine: list[dict[str, Any]]) -> None:
    for n, line in zip(numbers, lines):
        try:
            rec = parse_outcome_line(line, known_models=known_models)
        except ContractError as exc:
            field_, reason = exc.field, str(exc)
        except (OverflowError, ValueError) as exc:  # e.g. an integer too large for a float: refuse, never crash
            field_, reason = "line", f"line: unreadable value: {exc}"
        else:
            big = [k for k in ("prompt_tokens", "completion_tokens") if (getattr(rec, k) or 0) > _INT64_MAX]
            if not big:
                rows.append(_row(rec, source, n))
                continue
            # Valid by the contract, but the curated store holds int64: keep it in quarantine, not lost.
            field_, reason = big[0], f"{big[0]}: larger than the curated store's int64"
        quarantine.append({"file": source, "line": n, "reason": reason, "field": field_,
                           "raw": line.decode("utf-8", errors="replace"),
                           "raw_base64": base64.b64encode(line).decode("ascii")})


# --------------------------------------------------------------------------------------- fast path

def _arrow_schema():
    import pyarrow as pa

    s, f, i, b = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    return pa.schema([
        ("schema_version", i), ("decision_id", s), ("ts", s), ("artifact_version", s), ("query", s),
        ("query_sha256", s), ("request_kind", s), ("candidates", pa.list_(s)), ("model", s), ("propensity", f),
        ("scores", pa.struct([])), ("explored", b), ("fallback_from", s), ("latency_ms", f), ("ttft_ms", f),
        ("prompt_tokens", i), ("completion_tokens", i), ("success", b), ("error", s), ("quality", f),
        ("quality_source", s), ("features", pa.list_(f)), ("cost", f)])


_TS_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|\+00:00)$"
# A superset of the characters Python's str.isspace() knows: a query with a character outside it is
# certainly not blank in Python (Rust's idea of whitespace differs, so strip_chars cannot decide).
_NOT_SPACE = r"[^\x00-\x20\x7f-\xa0\x{1680}\x{2000}-\x{200b}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
_NUMERIC = (pl.Float64, pl.Int64, pl.Null)


def _read_arrow(lines: Sequence[bytes]):
    """The lines as one Arrow table and the bytes read, or None when pyarrow refuses the block or
    rows ≠ lines (two objects on one line: Python says why)."""
    import pyarrow as pa
    import pyarrow.json as pj

    data = b"\n".join(lines)
    try:
        table = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=2 << 20),
                             parse_options=pj.ParseOptions(explicit_schema=_arrow_schema(),
                                                           unexpected_field_behavior="infer"))
    except (pa.ArrowException, ValueError):  # ValueError: UnicodeDecodeError of invalid UTF-8
        return None
    return (table, data) if table.num_rows == len(lines) else None


def _opt(c: pl.Expr, cond: pl.Expr) -> pl.Expr:
    return c.is_null() | cond


def _fast_frame(table, data: bytes, lines: Sequence[bytes], numbers: Sequence[int], source: str,
                known_models: frozenset[str] | None) -> tuple[pl.DataFrame, pl.Series]:
    """Rows in the staging shape and, per line, whether the fast path accepts it (one lazy pass)."""
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    extras = [c for c in df.columns if c not in _KNOWN_FIELDS]
    col = pl.col
    df = df.with_columns(pl.Series(_LINE, numbers, dtype=pl.Int64))
    checks: list[pl.Expr] = []
    # Python refuses NaN/Infinity anywhere (unknown fields too), a leading BOM and oversized lines;
    # pyarrow takes them.  Looked for in the whole block first: per line only when present.
    raw_needed = (b"NaN" in data or b"Infinity" in data or b"\xef\xbb\xbf" in data
                  or max(map(len, lines)) > MAX_LINE_BYTES or any(df[k].null_count() for k in extras))
    if raw_needed:
        df = df.with_columns(pl.Series("__zeta_raw", lines, dtype=pl.Binary))
        rawc = col("__zeta_raw")
        checks += [rawc.bin.size() <= MAX_LINE_BYTES, ~rawc.bin.contains(b"NaN"), ~rawc.bin.contains(b"Infinity"),
                   ~rawc.bin.starts_with(b"\xef\xbb\xbf")]
    ts_base = col("ts").str.replace(r"(Z|\+00:00)$", "")
    ts = ts_base.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
    cand = col("candidates")
    checks += [
        col("schema_version") == 1,
        col("decision_id").str.len_chars().is_between(1, 128),
        col("ts").str.contains(_TS_RE), ts.is_not_null(),
        ts.dt.strftime("%Y-%m-%dT%H:%M:%S") == ts_base.str.slice(0, 19),  # no 24:00 or :60 normalised away
        _opt(col("query"), col("query").str.contains(_NOT_SPACE)),
        _opt(col("query_sha256"), col("query_sha256").str.contains(r"^[0-9a-f]{64}$")),
        col("query").is_not_null() | col("query_sha256").is_not_null(),
        _opt(col("request_kind"), col("request_kind") != ""),
        cand.list.len() >= 1,
        ~cand.list.eval(pl.element().is_null() | (pl.element() == "")).list.any(),
        col("model") != "", cand.list.contains(col("model")),
        col("propensity").is_finite(), col("propensity") > 0, col("propensity") <= 1,
        col("success").is_not_null(),
        _opt(col("quality"), col("quality").is_finite() & col("quality").is_between(0.0, 1.0)),
        _opt(col("quality_source"), col("quality_source").is_in(sorted(QUALITY_SOURCES))),
        col("quality").is_null() | col("quality_source").is_not_null(),
        _opt(col("features"),
             ~col("features").list.eval(pl.element().is_null() | ~pl.element().is_finite()).list.any()),
    ]
    checks += [_opt(col(n), col(n).is_finite() & (col(n) >= 0)) for n in ("latency_ms", "ttft_ms", "cost")]
    checks += [_opt(col(n), col(n) >= 0) for n in ("prompt_tokens", "completion_tokens")]
    if known_models is not None:
        checks.append(col("model").is_in(sorted(known_models)))
    score_fields = df.schema["scores"].fields
    for f in score_fields:
        v = col("scores").struct.field(f.name)
        checks.append(v.is_null() | v.cast(pl.Float64).is_finite() if f.dtype in _NUMERIC else v.is_null())
    fragments = []
    for k in sorted(extras):
        if k == "extra":
            continue
        if df.schema[k] in (pl.String, pl.Boolean, pl.Int64):
            fragments.append(pl.when(col(k).is_not_null())
                             .then(pl.struct(col(k)).struct.json_encode().str.strip_prefix("{").str.strip_suffix("}")))
        else:  # a float, date-like string, list, object or all-null field: Python writes it exactly
            checks.append(col(k).is_null())
        if df[k].null_count():
            # Absent or explicit null?  Only Python can tell (it keeps {"k": null}): ambiguous lines go there.
            quoted = json.dumps(k, ensure_ascii=False).encode()
            checks.append(col(k).is_not_null()
                          | (~col("__zeta_raw").bin.contains(quoted) & ~col("__zeta_raw").bin.contains(b"\\")))
    kv = [pl.struct(k=pl.lit(f.name), v=col("scores").struct.field(f.name).cast(pl.Float64))
          for f in sorted(score_fields, key=lambda f: f.name) if f.dtype in _NUMERIC]  # others: null if accepted
    scores = (pl.concat_list(kv).list.eval(pl.element().filter(pl.element().struct.field("v").is_not_null()))
              if kv else pl.lit([], dtype=_KV))
    present = pl.concat_list(fragments).list.drop_nulls() if fragments else None
    extra = (pl.when(present.list.len() > 0).then(pl.format("{{{}}}", present.list.join(",")))
             if fragments else pl.lit(None, dtype=pl.String))
    day_ts = ts.dt.replace_time_zone("UTC")
    out = df.lazy().select(
        "decision_id", day_ts.alias("ts"), day_ts.dt.strftime("%Y-%m-%d").alias("day"), "artifact_version", "query",
        "query_sha256", col("request_kind").fill_null("chat"), "candidates", "model", "propensity",
        scores.alias("scores"), col("explored").fill_null(False), "fallback_from", "latency_ms", "ttft_ms",
        "prompt_tokens", "completion_tokens", "success", "error", "quality", "quality_source", "features", "cost",
        extra.alias("extra"), pl.lit(source).alias("source_file"), _LINE,
        pl.all_horizontal(checks).fill_null(False).alias("__zeta_ok"),
    ).collect()
    ok = out["__zeta_ok"]
    return out.filter(ok).drop("__zeta_ok").cast(_STAGE_SCHEMA), ok


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def validate_lines(lines: Sequence[bytes], numbers: Sequence[int], source: str, *,
                   known_models: frozenset[str] | None = None, fast: bool = True
                   ) -> tuple[pl.DataFrame, list[dict[str, Any]], int]:
    """Validate non-blank lines: (valid rows in line order, quarantine entries, lines taken by the fast path).

    ``fast=False`` is the Python validator alone (the reference the fast path is tested against).
    """
    rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    frames: list[pl.DataFrame] = []
    n_fast = 0

    def go(lo: int, hi: int) -> None:
        nonlocal n_fast
        if hi <= lo:
            return
        table = _read_arrow(lines[lo:hi])
        if table is None and hi - lo > PYTHON_GROUP:  # a bad line somewhere: bisect, log(n) re-reads each
            mid = (lo + hi) // 2
            go(lo, mid)
            go(mid, hi)
            return
        if table is None:
            _python_lines(lines[lo:hi], numbers[lo:hi], source, known_models, rows, quarantine)
            return
        frame, ok = _fast_frame(*table, lines[lo:hi], numbers[lo:hi], source, known_models)
        frames.append(frame)
        n_fast += len(frame)
        refused = (~ok).arg_true().to_list()
        if refused:
            _python_lines([lines[lo + i] for i in refused], [numbers[lo + i] for i in refused], source,
                          known_models, rows, quarantine)

    if fast:
        # pyarrow does not check UTF-8 everywhere (an invalid key name passes): Python decodes every
        # non-ASCII line first (most lines are ASCII, and isascii is cheap).
        bad = [i for i, x in enumerate(lines) if not x.isascii() and not _utf8(x)]
        if bad:
            _python_lines([lines[i] for i in bad], [numbers[i] for i in bad], source, known_models, rows, quarantine)
            drop = set(bad)
            keep = [i for i in range(len(lines)) if i not in drop]
            lines, numbers = [lines[i] for i in keep], [numbers[i] for i in keep]
        go(0, len(lines))
    else:
        _python_lines(lines, numbers, source, known_models, rows, quarantine)
    if rows:
        frames.append(pl.DataFrame(rows, schema=_STAGE_SCHEMA))
    out = pl.concat(frames) if frames else pl.DataFrame(schema=_STAGE_SCHEMA)
    if len(frames) > 1:
        out = out.sort(_LINE)
    quarantine.sort(key=lambda q: q["line"])
    return _canonical(out), quarantine, n_fast


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Staging shape → curated shape: ``scores`` pairs as JSON, one encoder for both paths."""
    pair = (pl.element().struct.json_encode().str.strip_prefix('{"k":')
            .str.replace(',"v":', ":", literal=True, n=1).str.strip_suffix("}"))
    return frame.with_columns(pl.format("{{{}}}", pl.col("scores").list.eval(pair).list.join(",")).alias("scores"))


# ------------------------------------------------------------------------------------------- units

def _split_lines(data: bytes, final: bool) -> tuple[list[bytes], int]:
    """Complete lines of ``data`` and how many bytes they span (the rest is a pending tail)."""
    end = data.rfind(b"\n") + 1
    if final and end < len(data):
        end = len(data)
    return data[:end].splitlines(), end


def ingest_unit(unit: IngestUnit, staging: str, *, known_models: frozenset[str] | None = None,
                max_batch_rows: int = 200_000, fast: bool = True) -> UnitResult:
    """Validate one unit's lines and stage its valid, unit-unique rows as Parquet files (one per day).

    The unit is read ``BLOCK_BYTES`` at a time and staged every ``max_batch_rows`` rows, so a worker
    holds about one block and one batch whatever the unit's size.
    """
    out = UnitResult(unit.index)
    stage = Path(staging)
    pending: list[pl.DataFrame] = []
    pending_feedback: list[pl.DataFrame] = []
    seen: list[pl.Series] = []
    seen_feedback: list[pl.Series] = []
    n_pending = 0

    def flush() -> None:
        nonlocal n_pending
        if pending_feedback:
            path = stage / FEEDBACK_DIR / f"u{unit.index:06d}-{len(out.feedback_staged):04d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pl.concat(pending_feedback).write_parquet(path, compression=PARQUET_COMPRESSION)
            pending_feedback.clear()
            out.feedback_staged.append(str(path))
        if not pending:
            return
        frame = pl.concat(pending)
        pending.clear()
        n_pending = 0
        for (day,), part in frame.partition_by("day", as_dict=True, maintain_order=True).items():
            path = stage / f"day={day}" / f"u{unit.index:06d}-{len(out.staged):04d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            part.write_parquet(path, compression=PARQUET_COMPRESSION)
            out.staged.append(str(path))

    def process(lines: list[bytes]) -> None:
        nonlocal n_pending
        numbers = [out.lines + i for i, x in enumerate(lines, start=1) if x.strip()]
        block = [lines[n - out.lines - 1] for n in numbers]
        out.lines += len(lines)
        out.nonblank += len(block)
        if not block:
            return
        frame, q, n_fast = validate_lines(block, numbers, unit.path, known_models=known_models, fast=fast)
        out.fast += n_fast
        out.quarantine.extend(q)
        fb = frame.select(is_feedback().alias("fb"))["fb"]
        if fb.any():  # feedback lines go their own way: they never take the place of an answer's line
            feedback = frame.filter(fb).drop(_LINE)
            frame = frame.filter(~fb)
            key = feedback.select(_feedback_key().alias("key"))["key"]
            first_fb = key.is_first_distinct()
            if seen_feedback:
                first_fb &= ~key.is_in(pl.concat(seen_feedback).implode())
            out.duplicates += len(feedback) - int(first_fb.sum())
            out.feedback += int(first_fb.sum())
            seen_feedback.append(key.filter(first_fb))
            pending_feedback.append(feedback.filter(first_fb))
        first = frame["decision_id"].is_first_distinct()
        if seen:
            first &= ~frame["decision_id"].is_in(pl.concat(seen).implode())
        kept = frame.filter(first).drop(_LINE)
        out.duplicates += len(frame) - len(kept)
        out.ingested += len(kept)
        seen.append(kept["decision_id"])
        pending.append(kept)
        n_pending += len(kept)
        if n_pending >= max_batch_rows:
            flush()

    with open(unit.path, "rb") as f:
        f.seek(unit.start)
        remaining, carry = unit.end - unit.start, b""
        while remaining > 0:
            data = carry + f.read(min(BLOCK_BYTES, remaining))
            remaining = unit.end - unit.start - (f.tell() - unit.start)
            if remaining > 0:  # cut after the last newline; the rest waits for the next block
                cut = data.rfind(b"\n") + 1
                carry = data[cut:]
                process(data[:cut].splitlines())
            else:
                lines, consumed = _split_lines(data, unit.final)
                out.consumed = unit.end - unit.start - (len(data) - consumed)
                process(lines)
    flush()
    _release_memory()
    return out


def _release_memory() -> None:
    """Give freed memory back to the OS (pyarrow's pool, glibc's arenas): worker threads otherwise keep
    the high-water mark of every block they parsed, and the stages after ingestion start from it."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cut(f, start: int, size: int, unit_bytes: int) -> list[int]:
    """Cut points after ``start`` at line ends, about ``unit_bytes`` apart."""
    cuts, pos = [], start
    while size - pos > unit_bytes:
        f.seek(pos + unit_bytes)
        probe = pos + unit_bytes
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                return cuts
            i = chunk.find(b"\n")
            if i >= 0:
                pos = probe + i + 1
                break
            probe += len(chunk)
        if pos >= size:
            break
        cuts.append(pos)
    return cuts


def plan_ingest(raw: str | os.PathLike, curated: str | os.PathLike, *, settle_seconds: float = 60.0,
                unit_bytes: int = UNIT_BYTES) -> IngestPlan:
    """What is new under ``raw``, as units of at most ``unit_bytes`` (cut at line ends)."""
    cur = Path(curated)
    state = _load_state(cur)
    run = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    result = IngestResult()
    new_state = {k: dict(v) for k, v in state["files"].items()}
    try:
        files = log_files(raw)
    except FileNotFoundError:
        files = []
    units: list[IngestUnit] = []
    base: dict[str, int] = {}
    now = time.time()
    for path in files:
        if cur.resolve() in path.resolve().parents:
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
        base[key] = line_no
        new_state[key] = {"offset": offset, "lines": line_no, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if st.st_size == offset:
            continue
        with open(path, "rb") as f:
            bounds = [offset, *_cut(f, offset, st.st_size, unit_bytes), st.st_size]
        settled = now - st.st_mtime >= settle_seconds
        for a, b in zip(bounds, bounds[1:]):
            units.append(IngestUnit(len(units), key, a, b, final=settled and b == st.st_size))
    return IngestPlan(str(cur), run, units, {"version": 1, "files": new_state}, base, result)


def _known_ids(curated: Path) -> pl.Series:
    parts = _curated_parts(curated)
    if not parts:
        return pl.Series("decision_id", [], dtype=pl.String)
    return pl.scan_parquet(parts).select("decision_id").collect()["decision_id"]


def _unmatched_feedback_ids(curated: Path) -> pl.Series:
    """decision_ids of the feedback table without a record in the day partitions."""
    fb_parts, parts = _feedback_parts(curated), _curated_parts(curated)
    if not fb_parts:
        return pl.Series("decision_id", [], dtype=pl.String)
    ids = pl.scan_parquet(fb_parts).select(pl.col("decision_id").unique())
    if parts:
        ids = ids.join(pl.scan_parquet(parts).select("decision_id"), on="decision_id", how="anti")
    return ids.collect()["decision_id"]


def _move_staged(staged: Sequence[str], known: pl.Series, key: pl.Expr,
                 dest: Callable[[int, str], Path]) -> tuple[int, list[str]]:
    """Move the staged files to ``dest(i, src)`` without the rows whose ``key`` is ``known`` or staged
    earlier (a filtered file is written to a temp file, then renamed).  Returns (rows dropped, paths)."""
    ids = pl.concat([pl.scan_parquet(p).select(key.alias("key"), pl.lit(i, pl.Int32).alias("k"),
                                               pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"))
                     for i, p in enumerate(staged)]).collect()
    dup = pl.concat([known.rename("key"), ids["key"]]).is_first_distinct().not_().slice(len(known))
    drop = ids.filter(dup).select("k", "row")
    del ids, known
    dropped = {staged[k]: g["row"] for (k,), g in drop.group_by("k")}
    written: list[str] = []
    for i, src in enumerate(staged):
        path = dest(i, src)
        path.parent.mkdir(parents=True, exist_ok=True)
        if src in dropped:
            frame = pl.read_parquet(src).with_row_index("__zeta_row")
            keep = ~pl.col("__zeta_row").is_in(dropped[src].cast(pl.UInt32).implode())
            frame = frame.filter(keep).drop("__zeta_row")
            if frame.is_empty():
                continue
            tmp = path.with_name(f".{path.name}.tmp")
            frame.write_parquet(tmp, compression=PARQUET_COMPRESSION)
            os.replace(tmp, path)
        else:
            os.replace(src, path)
        written.append(str(path))
    return len(drop), written


def commit_ingest(plan: IngestPlan, results: Sequence[UnitResult]) -> IngestResult:
    """Drop duplicates across units and earlier runs, move the staged files in, then save the state."""
    cur, result = Path(plan.curated), plan.result
    by_index = {r.index: r for r in results}
    files = plan.state["files"]
    line_base = dict(plan.base_lines)
    quarantine: list[dict[str, Any]] = []
    staged: list[str] = []
    feedback_staged: list[str] = []
    for unit in plan.units:  # in plan order: file order, then offset, which is line order
        r = by_index[unit.index]
        base = line_base[unit.path]
        for q in r.quarantine:
            quarantine.append({**q, "line": q["line"] + base})
            result.reasons[q["field"]] = result.reasons.get(q["field"], 0) + 1
        line_base[unit.path] = base + r.lines
        files[unit.path]["offset"] = unit.start + r.consumed
        files[unit.path]["lines"] = base + r.lines
        result.pending_bytes += (unit.end - unit.start) - r.consumed
        result.lines += r.nonblank
        result.quarantined += len(r.quarantine)
        result.duplicates += r.duplicates
        result.ingested += r.ingested
        result.feedback += r.feedback
        result.fast_path_lines += r.fast
        staged.extend(r.staged)
        feedback_staged.extend(r.feedback_staged)
    if staged:
        # The first occurrence wins: earlier runs, then units in order (inside a unit there are none left).
        dropped, written = _move_staged(
            staged, _known_ids(cur), pl.col("decision_id"),
            lambda i, src: cur / Path(src).parent.name / f"part-{plan.run}-{i}.parquet")
        result.partitions.extend(written)
        result.duplicates += dropped
        result.ingested -= dropped
    if feedback_staged:  # the same for feedback, on (decision_id, ts, quality)
        fb_parts = _feedback_parts(cur)
        known = (pl.scan_parquet(fb_parts).select(_feedback_key().alias("key")).collect()["key"] if fb_parts
                 else pl.Series("key", [], dtype=pl.String))
        dropped, _ = _move_staged(feedback_staged, known, _feedback_key(),
                                  lambda i, src: cur / FEEDBACK_DIR / f"part-{plan.run}-{i}.parquet")
        result.duplicates += dropped
        result.feedback -= dropped
    result.feedback_unmatched = len(_unmatched_feedback_ids(cur))
    if quarantine:
        qpath = cur / QUARANTINE_DIR / f"{plan.run}.jsonl"
        _atomic_write(qpath, b"".join((json.dumps(q, ensure_ascii=False) + "\n").encode() for q in quarantine))
        result.quarantine_file = str(qpath)
    # Only now does the state move: data first, bookkeeping second (see the module docstring).
    _atomic_write(cur / STATE_FILE, json.dumps(plan.state, indent=1).encode())
    shutil.rmtree(cur / STAGING_DIR / plan.run, ignore_errors=True)
    _release_memory()
    return result


def staging_dir(plan: IngestPlan) -> str:
    return str(Path(plan.curated) / STAGING_DIR / plan.run)


def ingest_logs(raw: str | os.PathLike, curated: str | os.PathLike, *, settle_seconds: float = 60.0,
                known_models: Iterable[str] | None = None, max_batch_rows: int = 500_000,
                unit_bytes: int = UNIT_BYTES, fast: bool = True,
                map_units: Callable[[Callable[[IngestUnit], UnitResult], list[IngestUnit]], list[UnitResult]]
                | None = None) -> IngestResult:
    """Ingest everything new under ``raw`` into ``curated``; see the module docstring.

    ``map_units(fn, units)`` runs the units (default: one after the other, in this process); the
    production flow passes a mapping over its Prefect task runner.
    """
    plan = plan_ingest(raw, curated, settle_seconds=settle_seconds, unit_bytes=unit_bytes)
    models = None if known_models is None else frozenset(known_models)
    stage = staging_dir(plan)

    def one(unit: IngestUnit) -> UnitResult:
        return ingest_unit(unit, stage, known_models=models, max_batch_rows=max_batch_rows, fast=fast)

    results = (map_units or (lambda fn, us: [fn(u) for u in us]))(one, plan.units)
    return commit_ingest(plan, results)


# ------------------------------------------------------------------------------------------ reading

def scan_feedback(curated: str | os.PathLike) -> pl.LazyFrame | None:
    """The feedback table as stored, one row per feedback line taken (the curated columns), lazily;
    None when there is none.  ``scan_curated`` applies it; this is for looking at it."""
    parts = _feedback_parts(Path(curated))
    return pl.scan_parquet(parts) if parts else None


def scan_curated(curated: str | os.PathLike) -> pl.LazyFrame | None:
    """Every curated record, lazily, explicit feedback applied (None when there is none yet).

    A record with feedback has the quality of its latest feedback line (largest ``ts``; equal ``ts``:
    the lower quality) and quality_source "user"; a decision_id with feedback but no record of its own
    is read from its earliest feedback line (smallest ``ts``, then the lower quality), with that
    latest quality.  Without feedback, the day partitions as they are.
    """
    cur = Path(curated)
    parts = _curated_parts(cur)
    records = pl.scan_parquet(parts) if parts else None
    fb = scan_feedback(cur)
    if fb is None:
        return records
    feedback = fb.collect()  # one row per feedback line: small next to the records
    latest = feedback.group_by("decision_id").agg(
        pl.col("quality").sort_by(["ts", "quality"], descending=[True, False]).first().alias("__zeta_feedback"))
    unmatched = _unmatched_feedback_ids(cur)
    orphans = (feedback.filter(pl.col("decision_id").is_in(unmatched.implode()))
               .sort(["decision_id", "ts", "quality"]).unique("decision_id", keep="first", maintain_order=True))
    base = orphans.lazy() if records is None else pl.concat([records, orphans.lazy()])
    fbq = pl.col("__zeta_feedback")
    return (base.join(latest.lazy(), on="decision_id", how="left")
            .with_columns(pl.coalesce(fbq, pl.col("quality")).alias("quality"),
                          pl.when(fbq.is_not_null()).then(pl.lit("user")).otherwise(pl.col("quality_source"))
                          .alias("quality_source"))
            .drop("__zeta_feedback"))


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
    return (lf.filter(pl.col("query").is_not_null())
            .select(pl.col("decision_id").alias("query_id"), "query", "model",
                    pl.coalesce(pl.col("quality"), pl.col("success").cast(pl.Float64)).alias("quality"),
                    pl.col("cost").fill_null(0.0), "propensity", (1.0 / pl.col("propensity")).alias("weight"),
                    "ts", *(["candidates"] if candidates else [])))


def curated_training_table(frame: pl.DataFrame) -> pl.DataFrame:
    """Curated records as training rows: quality (else 1/0 from success), cost (else 0), weight 1/p.

    Records without query text (hash-only logging) cannot give text features and are left out.
    """
    return training_columns(frame.lazy()).collect()
