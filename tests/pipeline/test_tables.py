"""The benchmark-table contract (flows.tables): validation, normalization, summary, round trips."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.tables import (
    BENCHMARK_TABLE_VERSION,
    OPTIONAL,
    REQUIRED,
    benchmark_summary,
    read_table,
    validate_benchmark_table,
    write_table,
)
from router_runtime.errors import ContractError, SchemaVersionError

TRICKY_QUERY = 'Line one, with "quotes", commas,\nline two; 日本語 ü é — and a trailing space '


def small_table() -> pl.DataFrame:
    """3 queries x 2 models, with the awkward text a CSV writer must survive."""
    return pl.DataFrame(
        {
            "query_id": ["007", "007", "q2", "q2", "q3", "q3"],
            "query": [TRICKY_QUERY] * 2 + ["Привет, мир? 🙂"] * 2 + ["plain"] * 2,
            "model": ["big", "small"] * 3,
            "quality": [1.0, 0.25, 0.0, 1.0, 0.5, 0.5],
            "cost": [2e-4, 1.1e-05, 0.1 + 0.2, 0.0, 1 / 3, 5e-7],
            "task": ["qa", "qa", None, None, "", ""],
            "prompt_tokens": [10, 10, None, 3, 0, 1],
            "completion_tokens": [5, 6, 7, 8, 9, None],
            "latency_ms": [12.5, None, 3.0, 4.0, 0.0, 1e6],
            "response": [TRICKY_QUERY, "fine", None, "Привет 🙂", "", "plain\nanswer"],
            "split": ["train", "train", "test", "test", "train", "train"],
        }
    )


def refusal(df: pl.DataFrame, **kwargs) -> ContractError:
    with pytest.raises(ContractError) as info:
        validate_benchmark_table(df, **kwargs)
    return info.value


# ------------------------------------------------------------------------- the contract itself


def test_contract_constants():
    assert BENCHMARK_TABLE_VERSION == 1
    assert list(REQUIRED) == ["query_id", "query", "model", "quality", "cost"]
    assert list(OPTIONAL) == ["task", "prompt_tokens", "completion_tokens", "latency_ms", "response"]
    import flows.tables as tables

    for name in [*REQUIRED, *OPTIONAL, "version", "new optional columns"]:
        assert name in tables.__doc__


def test_small_table_validates_and_keeps_extra_columns():
    out = validate_benchmark_table(small_table())
    assert out.shape == (6, 11)
    assert out.schema == pl.Schema({**REQUIRED, **OPTIONAL, "split": pl.String})
    assert out["query"][0] == TRICKY_QUERY


def test_normalization_casts_ids_and_integral_floats():
    df = small_table().with_columns(
        query_id=pl.Series([7, 7, 2, 2, 3, 3]),
        prompt_tokens=pl.Series([10.0, 10.0, None, 3.0, 0.0, 1.0]),
        completion_tokens=pl.Series([5, 6, 7, 8, 9, None], dtype=pl.UInt8),
        quality=pl.Series([1, 0, 0, 1, 1, 0]),
        latency_ms=pl.Series(["12.5", None, "3", "4", "0", "1e6"]),
        task=pl.Series(["a"] * 6, dtype=pl.Categorical),
    )
    out = validate_benchmark_table(df)
    assert out["query_id"].to_list() == ["7", "7", "2", "2", "3", "3"]
    assert out["prompt_tokens"].to_list() == [10, 10, None, 3, 0, 1]
    assert out.schema == pl.Schema({**REQUIRED, **OPTIONAL, "split": pl.String})
    assert out["latency_ms"].to_list() == [12.5, None, 3.0, 4.0, 0.0, 1e6]


def test_summary_by_hand():
    s = benchmark_summary(small_table())
    assert s["n_queries"] == 3 and s["n_models"] == 2 and s["n_rows"] == 6
    assert s["models"] == ["big", "small"]
    assert s["has_task"] is True
    assert s["mean_quality"] == pytest.approx({"big": 0.5, "small": 1.75 / 3})
    assert s["mean_cost"] == pytest.approx({"big": (2e-4 + 0.3 + 1 / 3) / 3, "small": (1.1e-5 + 5e-7) / 3})
    assert benchmark_summary(small_table().drop("task"))["has_task"] is False
    assert benchmark_summary(small_table().with_columns(task=None))["has_task"] is False


# ---------------------------------------------------------------------------------- refusals


def _set(column: str, row: int, value, dtype=None):
    """Return a mutation of small_table() with one cell replaced."""

    def mutate(df: pl.DataFrame) -> pl.DataFrame:
        values = df[column].to_list()
        values[row] = value
        return df.with_columns(pl.Series(column, values, dtype=dtype, strict=False))

    return mutate


REFUSALS = [
    # (id, mutation, field, problem, row, shown value)
    ("null-query_id", _set("query_id", 3, None), "query_id", "null in a required column", 3, None),
    ("null-quality", _set("quality", 4, None), "quality", "null in a required column", 4, None),
    ("null-model", _set("model", 0, None), "model", "null in a required column", 0, None),
    ("empty-query", lambda d: d.with_columns(query=pl.Series(["", ""] + d["query"][2:].to_list())),
     "query", "empty or whitespace-only", 0, "''"),
    ("blank-query", lambda d: d.with_columns(
        query=pl.Series(d["query"][:4].to_list() + [" \n\t\u3000"] * 2)),
     "query", "empty or whitespace-only", 4, None),
    ("quality-nan", _set("quality", 1, math.nan), "quality", "finite and in [0, 1]", 1, "nan"),
    ("quality-inf", _set("quality", 1, math.inf), "quality", "finite and in [0, 1]", 1, "inf"),
    ("quality-high", _set("quality", 2, 1.5), "quality", "finite and in [0, 1]", 2, "1.5"),
    ("quality-low", _set("quality", 5, -0.01), "quality", "finite and in [0, 1]", 5, "-0.01"),
    ("cost-nan", _set("cost", 0, math.nan), "cost", "finite and >= 0", 0, "nan"),
    ("cost-inf", _set("cost", 3, math.inf), "cost", "finite and >= 0", 3, "inf"),
    ("cost-negative", _set("cost", 4, -1e-9), "cost", "finite and >= 0", 4, "-1e-09"),
    ("prompt-negative", _set("prompt_tokens", 5, -1), "prompt_tokens", ">= 0", 5, "-1"),
    ("completion-negative", _set("completion_tokens", 2, -3), "completion_tokens", ">= 0", 2, "-3"),
    ("latency-negative", _set("latency_ms", 3, -0.5), "latency_ms", "finite and >= 0", 3, "-0.5"),
    ("latency-nan", _set("latency_ms", 2, math.nan), "latency_ms", "finite and >= 0", 2, "nan"),
    ("quality-text", lambda d: d.with_columns(quality=pl.Series(["1", "0.25", "0", "high", "0.5", "0.5"])),
     "quality", "not a number", 3, "'high'"),
    ("quality-bool", lambda d: d.with_columns(quality=pl.Series([True, False] * 3)),
     "quality", "expected a number, not Boolean", 0, "True"),
    ("model-int", lambda d: d.with_columns(model=pl.Series([1, 2] * 3)),
     "model", "expected a string, not Int64", 0, "1"),
    ("query_id-float", lambda d: d.with_columns(query_id=pl.Series([1.0, 1.0, 2.0, 2.0, 3.5, 3.5])),
     "query_id", "expected a string or integer, not Float64", 0, "1.0"),
    ("tokens-fraction", _set("prompt_tokens", 4, 2.5, pl.Float64), "prompt_tokens", "not an integer", 4, "2.5"),
    ("tokens-text", lambda d: d.with_columns(prompt_tokens=pl.Series(["1", "2", "abc", "3", "4", "5"])),
     "prompt_tokens", "not a number", 2, "'abc'"),
    ("duplicate-pair", lambda d: pl.concat([d, d[3:4]]), "model", "duplicate (query_id, model) pair", 6,
     "'q2'"),
    ("query-differs", _set("query", 5, "another text"), "query", "another query text", 5, "'another text'"),
    ("not-full-information", lambda d: d[:5], "model", "not full information: 1 of 6", 4, "'small'"),
]


@pytest.mark.parametrize(("mutation", "field", "problem", "row", "shown"),
                         [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals_name_field_problem_row_and_value(mutation, field, problem, row, shown):
    err = refusal(mutation(small_table()), source="bench.csv")
    message = str(err)
    assert err.field == field and message.startswith(f"{field}: ")
    assert problem in message
    assert err.row == row and f"row {row}" in message
    assert "bench.csv" in message
    if shown is not None:
        assert shown in message


@pytest.mark.parametrize("column", list(REQUIRED))
def test_missing_required_column(column):
    err = refusal(small_table().drop(column))
    assert err.field == column and "required column missing" in str(err)


def test_zero_models():
    err = refusal(small_table().clear())
    assert err.field == "model" and "no models" in str(err)


def test_not_full_information_counts_missing_cells():
    df = pl.concat([small_table(), small_table().head(1).with_columns(model=pl.lit("third"))])
    err = refusal(df)
    # 3 queries x 3 models = 9 cells, 7 rows: q2 and q3 lack "third"
    assert "2 of 9 (query_id, model) cells missing" in str(err)
    assert "query_id 'q2' has no row for model 'third'" in str(err)


def test_schema_version_column():
    assert validate_benchmark_table(small_table().with_columns(schema_version=pl.lit(1))).height == 6
    with pytest.raises(SchemaVersionError, match="schema_version: this code reads benchmark table version 1"):
        validate_benchmark_table(small_table().with_columns(schema_version=pl.lit(2)))


def test_not_a_dataframe():
    with pytest.raises(ContractError, match="table: expected a polars DataFrame"):
        validate_benchmark_table(small_table().to_dicts())  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- files on disk


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl", "t.ndjson", "t.parquet", "T.CSV", "t.JSONL"])
def test_round_trip(tmp_path, name):
    expected = validate_benchmark_table(small_table())
    path = tmp_path / "nested" / "dir" / name
    write_table(expected, path)
    assert_frame_equal(validate_benchmark_table(read_table(path)), expected)
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary file left behind


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_round_trip_of_all_null_optional_columns(tmp_path, ext):
    expected = validate_benchmark_table(
        small_table().with_columns(task=None, prompt_tokens=None, latency_ms=None)
    )
    write_table(expected, tmp_path / f"t.{ext}")
    assert_frame_equal(validate_benchmark_table(read_table(tmp_path / f"t.{ext}")), expected)


def test_jsonl_is_one_readable_object_per_line(tmp_path):
    path = tmp_path / "t.jsonl"
    write_table(validate_benchmark_table(small_table()), path)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 6
    assert json.loads(lines[0])["query"] == TRICKY_QUERY
    assert "日本語" in text and "🙂" in text and "\\u" not in text


def test_csv_keeps_leading_zero_ids(tmp_path):
    write_table(small_table(), tmp_path / "t.csv")
    assert read_table(tmp_path / "t.csv")["query_id"].to_list()[:2] == ["007", "007"]


def test_write_replaces_atomically_and_cleans_up_on_failure(tmp_path):
    path = tmp_path / "t.csv"
    write_table(small_table(), path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        write_table(pl.DataFrame({"nested": [[1, 2]]}), path)  # CSV cannot hold lists
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    write_table(small_table().head(2), path)
    assert read_table(path).height == 2


@pytest.mark.parametrize("name", ["t.json", "t.txt", "t", "t.csv.gz"])
def test_unknown_extension(tmp_path, name):
    for call in (lambda: read_table(tmp_path / name), lambda: write_table(small_table(), tmp_path / name)):
        with pytest.raises(ContractError) as info:
            call()
        assert info.value.field == "path" and "unknown extension" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.parquet"):
        read_table(tmp_path / "absent.parquet")
