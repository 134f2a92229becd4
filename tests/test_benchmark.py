"""The benchmark-table contract (flows.tables) and the importers (flows.importers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.importers import COST_MODELS, import_benchmark, import_dcrouter, import_routeprofile
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

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

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
    assert list(OPTIONAL) == ["task", "prompt_tokens", "completion_tokens", "latency_ms"]
    import flows.tables as tables

    for name in [*REQUIRED, *OPTIONAL, "version", "new optional columns"]:
        assert name in tables.__doc__


def test_small_table_validates_and_keeps_extra_columns():
    out = validate_benchmark_table(small_table())
    assert out.shape == (6, 10)
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


# ------------------------------------------------------------------------ importers: the sample


def test_routeprofile_sample():
    df = import_routeprofile(SAMPLE / "routeprofile")
    assert df.shape == (4800, 8)
    assert df["query_id"].n_unique() == 600 and df["model"].n_unique() == 8
    assert df["task"].n_unique() == 12
    assert_frame_equal(import_routeprofile(SAMPLE / "routeprofile" / "routing_test_data.json"), df)
    # By hand from the JSON: row 0, mistral-small-24b: 722 prompt and 537 completion tokens at
    # 0.1 and 0.3 USD per 1M tokens.
    row = df.filter(query_id="0", model="mistral-small-24b-instruct-2501-bf16").row(0, named=True)
    assert (row["prompt_tokens"], row["completion_tokens"], row["quality"]) == (722, 537, 0.0)
    assert row["cost"] == pytest.approx(722 * 0.1 / 1e6 + 537 * 0.3 / 1e6, rel=1e-12)
    assert row["cost"] == pytest.approx(2.333e-4, rel=1e-12)
    assert row["task"] == "agentverse-logicgrid"
    raw = json.loads((SAMPLE / "routeprofile" / "routing_test_data.json").read_text(encoding="utf-8"))
    assert row["query"] == raw[0]["query"]


def test_dcrouter_sample():
    df = import_dcrouter(SAMPLE / "dcrouter")
    assert df.shape == (13500, 9)
    assert df["query_id"].n_unique() == 1500 and df["model"].n_unique() == 9
    assert df.group_by("split").len().sort("split").rows() == [("test", 2700), ("train", 10800)]
    assert df.filter(split="test")["task"].null_count() == 2700  # test.json has no cluster_id
    assert set(df.filter(split="train")["task"]) == {"cluster_0", "cluster_1", "cluster_2"}
    # By hand: test row 0 has 779 code points -> ceil(779 / 4) = 195 prompt tokens, 64 completion
    # tokens, gemma-2-9b-it at 0.1 USD per 1M tokens both ways, scored 1.0.
    row = df.filter(query_id="test-0", model="gemma-2-9b-it").row(0, named=True)
    assert (row["prompt_tokens"], row["completion_tokens"], row["quality"]) == (195, 64, 1.0)
    assert row["cost"] == pytest.approx((195 + 64) * 0.1 / 1e6, rel=1e-12)
    raw = json.loads((SAMPLE / "dcrouter" / "test.json").read_text(encoding="utf-8"))
    assert len(raw[0]["question"]) == 779 and row["query"] == raw[0]["question"]


def test_dcrouter_single_file_and_options():
    df = import_dcrouter(SAMPLE / "dcrouter" / "test.json", completion_tokens=10, chars_per_token=1.0)
    assert df.shape == (2700, 8) and "split" not in df.columns
    row = df.filter(query_id="0", model="gemma-2-9b-it").row(0, named=True)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (779, 10)
    assert row["cost"] == pytest.approx((779 + 10) * 0.1 / 1e6, rel=1e-12)
    for bad in ({"completion_tokens": -1}, {"completion_tokens": 2.5}, {"chars_per_token": 0},
                {"chars_per_token": math.nan}):
        with pytest.raises(ContractError, match=next(iter(bad))):
            import_dcrouter(SAMPLE / "dcrouter", **bad)


def test_cost_models_are_stated():
    assert set(COST_MODELS) == {"routeprofile", "dcrouter"}
    assert "ceil(len(question) / 4.0)" in COST_MODELS["dcrouter"] and "64" in COST_MODELS["dcrouter"]
    assert "input_price" in COST_MODELS["routeprofile"]


def test_import_benchmark_dispatch():
    assert import_benchmark(SAMPLE / "routeprofile", "routeprofile").height == 4800
    assert import_benchmark(SAMPLE / "dcrouter", "dcrouter").height == 13500
    with pytest.raises(ContractError, match="fmt: unknown benchmark format 'routerbench'"):
        import_benchmark(SAMPLE / "dcrouter", "routerbench")


# ----------------------------------------------------------------------- importers: bad raw data


def _routeprofile_copy(n: int = 5) -> tuple[list, dict]:
    rows = json.loads((SAMPLE / "routeprofile" / "routing_test_data.json").read_text(encoding="utf-8"))[:n]
    prices = json.loads((SAMPLE / "routeprofile" / "candidate_models.json").read_text(encoding="utf-8"))
    return rows, prices


def _write_routeprofile(tmp_path: Path, rows, prices) -> Path:
    (tmp_path / "routing_test_data.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "candidate_models.json").write_text(json.dumps(prices), encoding="utf-8")
    return tmp_path


def test_routeprofile_accepts_the_documented_string_values(tmp_path):
    rows, prices = _routeprofile_copy()
    for row in rows:  # the shared README says every value is a string ("541", "True", "0.0")
        for cell in row["model_performance"].values():
            for key in ("prompt_tokens", "completion_tokens", "task_performance", "success"):
                cell[key] = str(cell[key])
    as_strings = import_routeprofile(_write_routeprofile(tmp_path, rows, prices))
    assert as_strings.height == 40
    assert_frame_equal(as_strings, import_routeprofile(SAMPLE / "routeprofile").filter(
        pl.col("query_id").cast(pl.Int64) < 5))


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("prompt_tokens", "abc", "expected a non-negative integer, got 'abc'"),
        ("prompt_tokens", "-5", "expected a non-negative integer"),
        ("completion_tokens", 1.5, "expected a non-negative integer, got 1.5"),
        ("completion_tokens", None, "expected a non-negative integer, got None"),
        ("task_performance", "high", "expected a number, got 'high'"),
        ("task_performance", "1.5", "must be in [0, 1.0]"),
        ("task_performance", "nan", "expected a number, got 'nan'"),
        ("task_performance", True, "expected a number, got True"),
    ],
)
def test_routeprofile_bad_value_names_row_and_field(tmp_path, key, value, problem):
    rows, prices = _routeprofile_copy()
    rows[3]["model_performance"]["gemma-2-9b-it"][key] = value
    with pytest.raises(ContractError) as info:
        import_routeprofile(_write_routeprofile(tmp_path, rows, prices))
    err = info.value
    assert err.field == f"model_performance.gemma-2-9b-it.{key}" and err.row == 3
    assert problem in str(err) and "row 3" in str(err) and "routing_test_data.json" in str(err)


def test_routeprofile_missing_key_and_price(tmp_path):
    rows, prices = _routeprofile_copy()
    del rows[2]["model_performance"]["gemma-2-9b-it"]["prompt_tokens"]
    with pytest.raises(ContractError, match=r"prompt_tokens: expected a non-negative integer, got <missing>"):
        import_routeprofile(_write_routeprofile(tmp_path, rows, prices))
    rows, prices = _routeprofile_copy()
    del prices["llama-3.3-70b-instruct"]
    with pytest.raises(ContractError, match="model: 'llama-3.3-70b-instruct' has no price in candidate_models.json"):
        import_routeprofile(_write_routeprofile(tmp_path, rows, prices))
    rows, prices = _routeprofile_copy()
    prices["gemma-2-9b-it"]["output_price"] = "cheap"
    with pytest.raises(ContractError, match="gemma-2-9b-it.output_price: expected a number"):
        import_routeprofile(_write_routeprofile(tmp_path, rows, prices))


def test_routeprofile_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="routing_test_data.json"):
        import_routeprofile(tmp_path)
    rows, _ = _routeprofile_copy()
    (tmp_path / "routing_test_data.json").write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="candidate_models.json"):
        import_routeprofile(tmp_path)
    (tmp_path / "routing_test_data.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ContractError, match="json: not valid JSON"):
        import_routeprofile(tmp_path)


def test_routeprofile_model_missing_for_one_query(tmp_path):
    rows, prices = _routeprofile_copy()
    del rows[4]["model_performance"]["qwen2.5-7b-instruct"]
    with pytest.raises(ContractError, match="not full information: 1 of 40"):
        import_routeprofile(_write_routeprofile(tmp_path, rows, prices))


def _write_dcrouter(tmp_path: Path, train, prices) -> Path:
    (tmp_path / "train.json").write_text(json.dumps(train), encoding="utf-8")
    (tmp_path / "default_llm.json").write_text(json.dumps(prices), encoding="utf-8")
    return tmp_path


def test_dcrouter_bad_values(tmp_path):
    train = json.loads((SAMPLE / "dcrouter" / "train.json").read_text(encoding="utf-8"))[:4]
    prices = json.loads((SAMPLE / "dcrouter" / "default_llm.json").read_text(encoding="utf-8"))
    assert import_dcrouter(_write_dcrouter(tmp_path, train, prices)).height == 36  # train only
    train[2]["scores"]["codegemma-7b"] = "abc"
    with pytest.raises(ContractError) as info:
        import_dcrouter(_write_dcrouter(tmp_path, train, prices))
    assert info.value.field == "scores.codegemma-7b" and info.value.row == 2
    train[2]["scores"]["codegemma-7b"] = 1.0
    train[1]["cluster_id"] = "x"
    with pytest.raises(ContractError, match=r"cluster_id: expected a non-negative integer.*row 1"):
        import_dcrouter(_write_dcrouter(tmp_path, train, prices))
    train[1]["cluster_id"] = 1
    del prices["codegemma-7b"]
    with pytest.raises(ContractError, match="model: 'codegemma-7b' has no price in default_llm.json"):
        import_dcrouter(_write_dcrouter(tmp_path, train, prices))


def test_dcrouter_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither train.json nor test.json"):
        import_dcrouter(tmp_path)


# -------------------------------------------------------------------- importers: the full data


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"full data set not available at {path} (only the committed sample is tested)")
    return path


@pytest.mark.slow
def test_routeprofile_full():
    df = import_routeprofile(_shared("routeprofile"))
    assert df.shape == (4800, 8)
    assert_frame_equal(validate_benchmark_table(df), df)
    assert df["quality"].is_between(0, 1).all() and (df["cost"] > 0).all()


@pytest.mark.slow
def test_dcrouter_full():
    df = import_dcrouter(_shared("llmrouter_dcrouter"))
    assert df.shape == (54972, 9)
    assert df["query_id"].n_unique() == 6108 and df["model"].n_unique() == 9
    assert_frame_equal(validate_benchmark_table(df), df)
    assert df["quality"].is_between(0, 1).all() and (df["cost"] > 0).all()


@pytest.mark.slow
def test_sample_is_a_faithful_cut_of_the_full_data(tmp_path):
    import importlib.util

    _shared("routeprofile")
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "data" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_sample(SHARED, tmp_path)
    for path in sorted(SAMPLE.rglob("*.json")):
        assert (tmp_path / path.relative_to(SAMPLE)).read_bytes() == path.read_bytes(), path
