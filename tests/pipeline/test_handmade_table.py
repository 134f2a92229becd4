"""The hand-made full-information table of issue 12 (tests/studies/routing_plateau/handmade.csv): it is
what its generator writes, it passes the benchmark-table contract, and it has the property it exists for:
inside every task the best model depends on the query's kind, so per-task routing cannot be optimal."""

from __future__ import annotations

import csv
import importlib.util

import polars as pl

from flows.sources import load_table

from tests.conftest import ROOT

STUDY = ROOT / "tests" / "studies" / "routing_plateau"


def _generator():
    spec = importlib.util.spec_from_file_location("handmade", STUDY / "handmade.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_csv_is_the_generators_output():
    with (STUDY / "handmade.csv").open(encoding="utf-8", newline="") as f:
        committed = list(csv.DictReader(f))
    made = _generator().make_rows()
    assert len(committed) == len(made)
    for c, m in zip(committed, made):
        assert {k: c[k] for k in ("query_id", "query", "model", "task")} == {k: m[k] for k in ("query_id", "query", "model", "task")}
        assert float(c["quality"]) == m["quality"] and float(c["cost"]) == m["cost"]


def test_table_passes_the_contract_and_is_full_information():
    table, _ = load_table(str(STUDY / "handmade.csv"))
    gen = _generator()
    assert sorted(table["model"].unique().to_list()) == sorted(gen.MODELS)
    per_query = table.group_by("query_id").agg(pl.col("model").n_unique())
    assert per_query["model"].min() == len(gen.MODELS)
    assert table["task"].n_unique() == len(gen.TASKS)


def test_best_model_changes_inside_every_task():
    gen = _generator()
    for task, kinds in gen.TASKS.items():
        best = {k: max(gen.MODELS, key=lambda m: gen.P[k][m] - 0.5 * gen.ANSWER_COST[m] / max(gen.ANSWER_COST.values()))
                for k in kinds}
        assert len(set(best.values())) == 2, (task, best)
