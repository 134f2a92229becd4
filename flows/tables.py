"""Tables on disk, and the benchmark-table contract.

Benchmark table, version 1 (``BENCHMARK_TABLE_VERSION``)
========================================================

A full-information routing benchmark in long format: one row per (query, model) answer.
Stored as CSV, JSONL (one JSON object per line; ``.ndjson`` too) or Parquet; the format follows
the file extension.  ``validate_benchmark_table`` is the only gate: it returns the table with the
columns cast to the types below, or raises ``ContractError`` naming the column, the problem, the
first offending row (0-based) and its value.

Required columns

=================  ========  ===================================================================
column             type      meaning and constraints
=================  ========  ===================================================================
query_id           String    identifies the query; integers are accepted and become their decimal
                             string.  Every row of one query_id carries the same query text.
query              String    the query text as sent to the model; not empty or whitespace-only.
model              String    the model that answered.
quality            Float64   how good the answer was, in [0, 1] (1 = best); finite.
cost               Float64   what the answer cost, in USD; finite, >= 0.  How it was measured or
                             estimated is stated by the importer (``flows.importers.COST_MODELS``)
                             and belongs in every report.
=================  ========  ===================================================================

Optional columns (may be absent; where present, null means unknown)

=================  ========  ===================================================================
task               String    task family or cluster the query comes from (for per-task reports).
prompt_tokens      Int64     tokens in the prompt; >= 0.  Integer-valued floats are accepted.
completion_tokens  Int64     tokens in the answer; >= 0.  Integer-valued floats are accepted.
latency_ms         Float64   wall time of the answer in milliseconds; finite, >= 0.
response           String    the answer's text (what ``zeta judge --validate`` grades).
=================  ========  ===================================================================

Table-wide rules

- at least one row (zero models is not a benchmark);
- no (query_id, model) pair appears twice;
- full information: every query_id has a row for every model that appears in the table.

Other columns (e.g. the importers' ``split``) are kept as they are.  One name is reserved: a
``schema_version`` column, if present, must hold ``BENCHMARK_TABLE_VERSION`` in every row,
otherwise ``SchemaVersionError``.

Evolution rule: new optional columns may be added (with the version bumped when a reader must
know about them); existing columns never change name, type or meaning.  A reader of version N
reads every table of version <= N.
"""

from __future__ import annotations

import os
import io
from pathlib import Path
from typing import Any

import polars as pl

from router_runtime._atomic import atomic_write
from router_runtime.errors import ContractError, SchemaVersionError

__all__ = [
    "BENCHMARK_TABLE_VERSION",
    "REQUIRED",
    "OPTIONAL",
    "read_table",
    "write_table",
    "validate_benchmark_table",
    "benchmark_summary",
]

BENCHMARK_TABLE_VERSION = 1

REQUIRED: dict[str, pl.DataType] = {
    "query_id": pl.String,
    "query": pl.String,
    "model": pl.String,
    "quality": pl.Float64,
    "cost": pl.Float64,
}
OPTIONAL: dict[str, pl.DataType] = {
    "task": pl.String,
    "prompt_tokens": pl.Int64,
    "completion_tokens": pl.Int64,
    "latency_ms": pl.Float64,
    "response": pl.String,
}
_CONTRACT = {**REQUIRED, **OPTIONAL}
_STRING_COLUMNS = [name for name, dtype in _CONTRACT.items() if dtype == pl.String]

_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


# ---------------------------------------------------------------------------------------- files


def _format_of(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ContractError(
            "path",
            f"unknown extension {path.suffix!r} (expected .csv, .jsonl, .ndjson or .parquet)",
            source=str(path),
        )
    return fmt


def read_table(path: str | os.PathLike) -> pl.DataFrame:
    """Read a CSV, JSONL/NDJSON or Parquet file, chosen by its extension (case-insensitive)."""
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such table: {path}")
    if fmt == "csv":
        # Pin the contract's text columns: inference would turn query_id "007" into 7.
        # A full scan, because a column can look integral for 100 rows and then hold 0.5.
        # An empty field reads as null, a quoted "" as the empty string (what write_csv emits).
        return pl.read_csv(
            path,
            schema_overrides={name: pl.String for name in _STRING_COLUMNS},
            infer_schema_length=None,
        )
    if fmt == "jsonl":
        return pl.read_ndjson(path, infer_schema_length=None)
    return pl.read_parquet(path)


def write_table(df: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` by extension; create parent directories; replace the target atomically
    (``router_runtime._atomic``: readers never see a half-written file)."""
    path = Path(path)
    fmt = _format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    if fmt == "csv":
        df.write_csv(buf)
    elif fmt == "jsonl":
        df.write_ndjson(buf)  # UTF-8, non-ASCII kept as is
    else:
        df.write_parquet(buf)
    atomic_write(path, buf.getvalue())


# ----------------------------------------------------------------------------------- validation


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _first(mask: pl.Series) -> int | None:
    hits = mask.fill_null(False).arg_true()
    return int(hits[0]) if len(hits) else None


def _refuse(name: str, problem: str, series: pl.Series, mask: pl.Series, source: str | None) -> None:
    row = _first(mask)
    if row is not None:
        raise ContractError(name, f"{problem}, got {_show(series[row])}", row=row, source=source)


def _cast(series: pl.Series, target: pl.DataType, source: str | None) -> pl.Series:
    """Cast one contract column, naming the first value that does not fit."""
    name, dtype = series.name, series.dtype
    if dtype == target:
        return series
    if dtype == pl.Null:
        return series.cast(target)
    if target == pl.String:
        ok = dtype in (pl.Categorical, pl.Enum) or (name == "query_id" and dtype.is_integer())
        if not ok:
            what = "a string or integer" if name == "query_id" else "a string"
            _refuse(name, f"expected {what}, not {dtype}", series, series.is_not_null(), source)
        return series.cast(pl.String)
    # Numeric targets.  Booleans are refused: True as quality 1.0 would be a silent guess.
    if not (dtype.is_numeric() or dtype == pl.String):
        _refuse(name, f"expected a number, not {dtype}", series, series.is_not_null(), source)
        return series.cast(target)  # only nulls: nothing to misread
    as_float = series
    if dtype == pl.String:
        as_float = series.cast(pl.Float64, strict=False)
        _refuse(name, "not a number", series, series.is_not_null() & as_float.is_null(), source)
    if target == pl.Float64:
        return as_float.cast(pl.Float64)
    if as_float.dtype.is_integer():
        out = as_float.cast(pl.Int64, strict=False)
        _refuse(name, "integer out of Int64 range", series, series.is_not_null() & out.is_null(), source)
        return out
    as_float = as_float.cast(pl.Float64)
    bad = as_float.is_not_null() & (
        ~as_float.is_finite() | (as_float != as_float.floor()) | (as_float.abs() >= 2.0**63)
    )
    _refuse(name, "not an integer", series, bad, source)
    return as_float.cast(pl.Int64)


def validate_benchmark_table(df: pl.DataFrame, source: str | None = None) -> pl.DataFrame:
    """Check ``df`` against the benchmark-table contract (module docstring); return it normalized.

    ``source`` (a path or data set name) is carried into error messages.
    """
    if not isinstance(df, pl.DataFrame):
        raise ContractError("table", f"expected a polars DataFrame, got {type(df).__name__}", source=source)
    missing = [name for name in REQUIRED if name not in df.columns]
    if missing:
        raise ContractError(
            missing[0], f"required column missing (columns present: {', '.join(df.columns) or 'none'})",
            source=source,
        )
    if "schema_version" in df.columns:
        versions = df["schema_version"]
        bad = versions.is_null() | (versions.cast(pl.String, strict=False) != str(BENCHMARK_TABLE_VERSION))
        row = _first(bad)
        if row is not None:
            raise SchemaVersionError(
                "schema_version",
                f"this code reads benchmark table version {BENCHMARK_TABLE_VERSION}, "
                f"got {_show(versions[row])}",
                row=row, source=source,
            )

    df = df.with_columns(
        _cast(df[name], dtype, source) for name, dtype in _CONTRACT.items() if name in df.columns
    )
    if df.height == 0:
        raise ContractError("model", "no models: the table has no rows", source=source)

    for name in REQUIRED:
        _refuse(name, "null in a required column", df[name], df[name].is_null(), source)

    query = df["query"]
    _refuse("query", "empty or whitespace-only query", query, query.str.strip_chars() == "", source)
    quality = df["quality"]
    _refuse("quality", "must be finite and in [0, 1]", quality,
            ~quality.is_finite() | (quality < 0) | (quality > 1), source)
    cost = df["cost"]
    _refuse("cost", "must be finite and >= 0", cost, ~cost.is_finite() | (cost < 0), source)
    for name in ("prompt_tokens", "completion_tokens"):
        if name in df.columns:
            _refuse(name, "must be >= 0", df[name], df[name] < 0, source)
    if "latency_ms" in df.columns:
        latency = df["latency_ms"]
        _refuse("latency_ms", "must be finite and >= 0", latency,
                ~latency.is_finite() | (latency < 0), source)

    pair = pl.struct("query_id", "model")
    dup = _first(df.select(~pair.is_first_distinct()).to_series())
    if dup is not None:
        qid, model = df["query_id"][dup], df["model"][dup]
        first = _first(df.select((pl.col("query_id") == qid) & (pl.col("model") == model)).to_series())
        raise ContractError(
            "model",
            f"duplicate (query_id, model) pair ({_show(qid)}, {_show(model)}), first seen at row {first}",
            row=dup, source=source,
        )
    differs = _first(df.select(pl.col("query") != pl.col("query").first().over("query_id")).to_series())
    if differs is not None:
        raise ContractError(
            "query",
            f"query_id {_show(df['query_id'][differs])} has another query text at its first row "
            f"({_show(df.filter(pl.col('query_id') == df['query_id'][differs])['query'][0])}), "
            f"got {_show(df['query'][differs])}",
            row=differs, source=source,
        )

    models = df["model"].unique().sort().to_list()
    n_queries = df["query_id"].n_unique()
    n_missing = n_queries * len(models) - df.height  # exact: pairs are unique by now
    if n_missing:
        have = (
            df.with_row_index("_row")
            .group_by("query_id", maintain_order=True)
            .agg(pl.col("_row").first(), pl.col("model"))
            .filter(pl.col("model").list.len() < len(models))
            .row(0, named=True)
        )
        absent = next(m for m in models if m not in set(have["model"]))
        raise ContractError(
            "model",
            f"not full information: {n_missing} of {n_queries * len(models)} (query_id, model) cells "
            f"missing ({n_queries} queries x {len(models)} models), e.g. query_id {_show(have['query_id'])} "
            f"has no row for model {_show(absent)}",
            row=have["_row"], source=source,
        )
    return df


def benchmark_summary(df: pl.DataFrame) -> dict:
    """Counts and per-model means of a benchmark table (validated first)."""
    df = validate_benchmark_table(df)
    per_model = df.group_by("model").agg(pl.col("quality").mean(), pl.col("cost").mean()).sort("model")
    return {
        "benchmark_table_version": BENCHMARK_TABLE_VERSION,
        "n_rows": df.height,
        "n_queries": df["query_id"].n_unique(),
        "n_models": per_model.height,
        "models": per_model["model"].to_list(),
        "has_task": "task" in df.columns and df["task"].null_count() < df.height,
        "mean_quality": dict(zip(per_model["model"], per_model["quality"])),
        "mean_cost": dict(zip(per_model["model"], per_model["cost"])),
    }
