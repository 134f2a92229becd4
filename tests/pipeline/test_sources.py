"""The one split rule of `zeta train` and `zeta evaluate-benchmark` (flows.sources)."""

from __future__ import annotations

import polars as pl
import pytest

from flows.evaluate.benchmark import split_benchmark
from flows.sources import load_source, split_query_ids, split_table
from router_runtime.errors import ContractError


def _table(texts: dict[str, str], split: dict[str, str] | None = None) -> pl.DataFrame:
    rows = [{"query_id": q, "query": t, "model": m, "quality": 0.5, "cost": 1.0}
            for q, t in texts.items() for m in ("a", "b")]
    t = pl.DataFrame(rows)
    return t.with_columns(split=pl.col("query_id").replace_strict(split)) if split else t


def test_a_test_query_whose_text_is_in_train_is_dropped_and_counted():
    t = _table({"q1": "same text", "q2": "same text", "q3": "other", "q4": "fourth"},
               split={"q1": "train", "q2": "test", "q3": "test", "q4": "train"})
    train, test, info = split_table(t, "split")
    assert sorted(test["query_id"].unique()) == ["q3"]
    assert sorted(train["query_id"].unique()) == ["q1", "q4"]
    assert info == {"how": "column 'split'", "test_queries_dropped_as_seen_in_train": 1}


def test_training_and_benchmark_evaluation_split_alike():
    import flows.train

    texts = {f"q{i}": f"text {i % 40}" for i in range(60)}  # 20 texts shared by two query_ids
    t = _table(texts)
    train_a, test_a, info_a = flows.train.split_table.fn(t, 0.3, 0)
    train_b, test_b, info_b = split_benchmark(t, None, 0.3, seed=0)
    assert train_a.equals(train_b) and test_a.equals(test_b) and info_a == info_b
    assert info_a["test_queries_dropped_as_seen_in_train"] > 0
    assert not set(test_a["query"]) & set(train_a["query"])
    dropped = set(split_query_ids(list(texts), 0.3, 0)) - set(test_a["query_id"])
    assert len(dropped) == info_a["test_queries_dropped_as_seen_in_train"]


def test_training_uses_a_split_column_and_refuses_other_values():
    import flows.train

    t = _table({"q1": "x", "q2": "y", "q3": "z"}, split={"q1": "train", "q2": "test", "q3": "val"})
    with pytest.raises(ContractError, match="exactly 'train' and 'test'"):
        flows.train.split_table.fn(t, 0.3, 0)
    train, test, info = flows.train.split_table.fn(t.filter(pl.col("split") != "val"), 0.3, 0)
    assert info["how"] == "column 'split'" and set(test["query_id"]) == {"q2"}


def test_unknown_source_format_is_refused():
    with pytest.raises(ContractError, match="source_format"):
        load_source("anywhere", "csv-ish")



def test_split_is_seeded_and_stable():
    ids = [f"q{i}" for i in range(1000)]
    a = split_query_ids(ids, 0.3, seed=0)
    assert a == split_query_ids(list(reversed(ids)), 0.3, seed=0)
    assert a != split_query_ids(ids, 0.3, seed=1)
    assert 250 < len(a) < 350
    with pytest.raises(ContractError, match="test_fraction"):
        split_query_ids(ids, 1.0, seed=0)
