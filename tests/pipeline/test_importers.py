"""The importers (flows.importers): the two raw data sets into the benchmark table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.importers import COST_MODELS, import_benchmark, import_dcrouter, import_routeprofile
from flows.tables import validate_benchmark_table
from router_runtime.errors import ContractError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
SHARED = ROOT.parent / "shared" / "data"


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


def test_routeprofile_keeps_response_text_when_the_data_has_it(tmp_path):
    rows, prices = _routeprofile_copy(2)
    rows[0]["model_performance"]["gemma-2-9b-it"]["response"] = "The answer is D."
    df = import_routeprofile(_write_routeprofile(tmp_path, rows, prices))
    assert df.filter(pl.col("response").is_not_null())[["query_id", "model", "response"]].rows() == [
        ("0", "gemma-2-9b-it", "The answer is D.")]
    assert "response" not in import_routeprofile(SAMPLE / "routeprofile").columns  # the sample has none
    rows[1]["model_performance"]["gemma-2-9b-it"]["response"] = 42
    with pytest.raises(ContractError) as info:
        import_routeprofile(_write_routeprofile(tmp_path, rows, prices))
    assert info.value.field == "model_performance.gemma-2-9b-it.response" and info.value.row == 1


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
    assert df.shape == (4800, 9) and df["response"].null_count() == 0  # the full set keeps every answer's text
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
