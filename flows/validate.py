"""Validation of outcome-log lines against OutcomeRecord v1, on two paths that must agree.

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

Both paths write the same curated values (``flows.curated.curated_row``'s mapping).  A refused line
becomes a quarantine entry with its file, line number, field, reason and the raw bytes.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any, Sequence

import polars as pl

from router_runtime.errors import ContractError
from router_runtime.records import MAX_LINE_BYTES, QUALITY_SOURCES, OutcomeRecord, parse_outcome_line

from .curated import _KV, _LINE, _STAGE_SCHEMA, _canonical, _row

__all__ = ["validate_lines", "PYTHON_GROUP"]

PYTHON_GROUP = 8           # a refused block is bisected down to this many lines, then read line by line
_INT64_MAX = (1 << 63) - 1
_KNOWN_FIELDS = frozenset(OutcomeRecord.__dataclass_fields__)  # includes "extra": never an unknown field


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



def _arrow_schema():
    import pyarrow as pa

    s, f, i, b = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    return pa.schema([
        ("schema_version", i), ("decision_id", s), ("ts", s), ("artifact_version", s), ("query", s),
        ("query_sha256", s), ("request_kind", s), ("candidates", pa.list_(s)), ("model", s), ("propensity", f),
        ("scores", pa.struct([])), ("explored", b), ("fallback_from", s), ("latency_ms", f), ("ttft_ms", f),
        ("prompt_tokens", i), ("completion_tokens", i), ("success", b), ("error", s), ("quality", f),
        ("quality_source", s), ("features", pa.list_(f)), ("cost", f), ("context_chars", i), ("sticky", b),
        ("response", s), ("response_truncated", b), ("shadow_of", s),
        ("request_id", s), ("retry_of", s)])  # label (a free JSON object): inferred


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
    checks += [
        ~(col("response_truncated").fill_null(False) & col("response").is_null()),
        _opt(col("shadow_of"), col("shadow_of").str.len_chars().is_between(1, 128)
             & (col("shadow_of") != col("decision_id"))),
    ]
    if "label" in df.columns:  # label metadata is rare (label lines) and free-form: Python reads it
        checks.append(col("label").is_null())
    checks += [_opt(col(n), col(n).is_finite() & (col(n) >= 0)) for n in ("latency_ms", "ttft_ms", "cost")]
    checks += [_opt(col(n), col(n) >= 0) for n in ("prompt_tokens", "completion_tokens", "context_chars")]
    checks += [_opt(col(n), col(n).str.len_chars().is_between(1, 128)) for n in ("request_id", "retry_of")]
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
        "context_chars", col("sticky").fill_null(False),
        "response", col("response_truncated").fill_null(False), "shadow_of", pl.lit(None, pl.String).alias("label"),
        "request_id", "retry_of",
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
