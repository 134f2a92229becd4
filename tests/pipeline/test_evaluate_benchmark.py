"""`zeta evaluate-benchmark`: the command on a hand-made table and on the committed samples, the plain
functions, and the Prefect flow (under the session's prefect_test_harness) with its Markdown artifact."""

from __future__ import annotations

import json

import polars as pl
import pytest

from conftest import SAMPLE
from flows.evaluate.benchmark import ROUTERS, load_benchmark, run_evaluation, split_benchmark
from flows.cli import main
from flows.tables import write_table
from flows.training import TrainParams
from router_runtime import ContractError

KEYS = {"n_train", "n_test", "models", "cost_model", "aiq", "quality_at_best_single_cost",
        "cost_at_best_single_quality", "normalized_gain_aiq", "normalized_gain_quality"}
BASE = {"router", "knn", "task", "single_models", "best_single", "cheapest", "random", "oracle"}


def small_table(models=(("small", 1.0), ("mid", 2.0), ("big", 5.0)), n=90) -> pl.DataFrame:
    """Three kinds of query; "small" fails code and math, "mid" fails code, "big" answers everything."""
    rows = []
    kinds = [("code", "Write a python function that sorts list number {i} with def and return"),
             ("math", "How many apples are left if 17 of {i} are eaten? Calculate the total"),
             ("chat", "Tell me something nice about the weather on day {i}")]
    for i in range(n):
        kind, text = kinds[i % 3]
        for name, price in models:
            ok = name == "big" or kind == "chat" or (kind == "math" and name == "mid")
            rows.append({"query_id": f"q{i}", "query": text.format(i=i), "model": name, "quality": float(ok),
                         "cost": price * 1e-6 * (1 + len(text) / 100), "task": kind})
    return pl.DataFrame(rows)


def check_report(r: dict) -> None:
    assert KEYS <= set(r)
    for key in ("aiq", "quality_at_best_single_cost", "cost_at_best_single_quality"):
        assert BASE <= set(r[key])
    a = r["aiq"]
    for k, v in a.items():
        if v is not None:
            assert 0.0 <= v <= a["oracle"] + 1e-12, k


def test_command_on_a_hand_made_table(tmp_path, capsys, prefect_harness):
    table = tmp_path / "small.csv"
    write_table(small_table(), table)
    out, rep = tmp_path / "r.json", tmp_path / "report"
    assert main(["evaluate-benchmark", str(table), "--seed", "1", "--iterations", "40", "--json", str(out),
                 "--report", str(rep)]) == 0
    r = json.loads(out.read_text())
    check_report(r)
    assert r["models"] == ["big", "mid", "small"] and r["n_train"] + r["n_test"] == 90
    assert r["best_single_model"] == "big" and r["cheapest_model"] == "small"
    # the signal is in the text: the router finds nearly the oracle, well above the single models
    assert r["aiq"]["router"] > r["aiq"]["single_models"] + 0.1 and r["normalized_gain_aiq"] > 0.7
    assert r["two_models"] is None and r["aiq"]["task"] is not None
    assert json.loads((rep / "report.json").read_text())["aiq"] == r["aiq"]
    assert (rep / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (rep / "summary.md").read_text()
    assert "| router |" in summary and "| oracle |" in summary and "cost model" in summary
    printed = capsys.readouterr().out
    assert "| knn |" in printed and str(rep / "curves.png") in printed
    # per task: JSON, summary.md and the console show the same tasks
    tasks = [b["task"] for b in r["per_task"]["tasks"]]
    assert tasks == ["chat", "code", "math"] and all(b["n_inferred_task"] == 0 for b in r["per_task"]["tasks"])
    assert all(f"| {t} | " in summary and f"| {t} | " in printed for t in tasks) and "| **all** |" in summary


def test_two_models_get_apgr_and_cpt_and_no_task_column_gives_null():
    t = small_table(models=(("small", 1.0), ("big", 5.0))).drop("task")
    r = run_evaluation(t, cost_model="hand-made", seed=0, params=TrainParams(iterations=40))
    assert r["aiq"]["task"] is None and r["task_router"] is None and "task" not in r["normalized_gains"]["aiq"]
    two = r["two_models"]
    assert two["weak"] == "small" and two["strong"] == "big"
    assert two["random"]["apgr"] == pytest.approx(0.5) and two["random"]["cpt50"] == pytest.approx(0.5)
    # "small" fails a share f of the test queries, "big" none: the oracle sends exactly those to "big",
    # AUC = f * (1 - f + 1) / 2 + (1 - f), APGR = (AUC - (1 - f)) / f = 1 - f/2, CPT(80%) = .8 f
    f = 1 - two["weak_quality"]
    assert two["strong_quality"] == 1.0 and two["oracle"]["apgr"] == pytest.approx(1 - f / 2)
    assert two["oracle"]["cpt80"] == pytest.approx(0.8 * f)
    assert two["oracle"]["apgr"] >= two["router"]["apgr"] > 0.55 and two["router"]["cpt80"] < 0.8


def test_split_column_decides_and_seen_test_queries_are_dropped():
    t = small_table(n=12).with_columns(
        split=pl.when(pl.col("query_id").is_in(["q0", "q1", "q2"])).then(pl.lit("test")).otherwise(pl.lit("train")))
    # q3 repeats q0's text under another id in train: q0 leaves the test part
    t = t.with_columns(query=pl.when(pl.col("query_id") == "q3").then(
        pl.col("query").str.replace("3", "0")).otherwise(pl.col("query")))
    train, test, info = split_benchmark(t, "split")
    assert sorted(test["query_id"].unique()) == ["q1", "q2"] and info["test_queries_dropped_as_seen_in_train"] == 1
    assert train["query_id"].n_unique() == 9
    with pytest.raises(ContractError, match="nope"):
        split_benchmark(t, "nope")
    with pytest.raises(ContractError, match="train.*test"):
        split_benchmark(t.with_columns(split=pl.lit("train")), "split")
    a, b, _ = split_benchmark(t.drop("split"), None, 0.3, seed=4)
    assert set(a["query_id"]).isdisjoint(b["query_id"])


def test_sample_dcrouter_uses_its_files_and_infers_the_missing_task():
    table, cost_model = load_benchmark(SAMPLE / "dcrouter", "dcrouter")
    r = run_evaluation(table, cost_model=cost_model, split_column="split", params=TrainParams(iterations=30))
    check_report(r)
    assert r["n_test"] + r["split"]["test_queries_dropped_as_seen_in_train"] == 300 and r["n_train"] == 1200
    assert "estimated" in r["cost_model"] and len(r["models"]) == 9
    # LLMRouter's test file has no cluster id: the per-task baseline says it inferred every one
    assert r["task_router"]["test_queries_with_inferred_task"] == r["n_test"]
    # ... and the per-task table counts them under the task they were given
    assert sum(b["n_inferred_task"] for b in r["per_task"]["tasks"]) == r["n_test"] == r["per_task"]["all"]["n_test"]
    assert r["aiq"]["router"] > r["aiq"]["random"]


def test_flow_on_sample_routeprofile_with_bandit_publishes_markdown(tmp_path, prefect_harness):
    from prefect.client.orchestration import get_client

    from flows.benchmark_eval import evaluate_benchmark

    r = evaluate_benchmark(source=str(SAMPLE / "routeprofile"), source_format="routeprofile", seed=2,
                           bandit=True, iterations=30, report_dir=str(tmp_path / "rep"))
    check_report(r)
    assert list(r["aiq"]) == list(ROUTERS) and r["aiq"]["task"] is not None
    assert r["bandit"]["logged_rows"] == r["n_train"] and r["bandit"]["propensity"] == pytest.approx(1 / 8)
    assert r["task_router"]["test_queries_with_inferred_task"] == 0
    assert (tmp_path / "rep" / "curves.png").exists()

    async def latest():
        async with get_client() as client:
            return await client.read_latest_artifacts()

    import asyncio

    arts = [a for a in asyncio.run(latest()) if a.key == "zeta-benchmark-evaluation"]
    assert arts and arts[0].type == "markdown" and "| router_bandit |" in arts[0].data
    # the per-task table is in the published artifact too, one row per task of the test part and "all"
    assert "| task | test queries | router | per-task | kNN | best single | oracle |" in arts[0].data
    assert all(f"| {b['task']} | {b['n_test']} |" in arts[0].data for b in r["per_task"]["tasks"])


def test_train_params_resolve_depth_and_learning_rate_from_data_size():
    from flows.training import SMALL_TRAINING_OUTCOMES, SMALL_TRAINING_QUERIES

    small = TrainParams().resolved(SMALL_TRAINING_OUTCOMES - 1, SMALL_TRAINING_QUERIES - 1)
    assert (small.depth, small.learning_rate) == (4, 0.04)
    big = TrainParams().resolved(SMALL_TRAINING_OUTCOMES, SMALL_TRAINING_QUERIES)
    assert (big.depth, big.learning_rate) == (6, 0.08)
    # a bandit log: few outcomes per model, many queries -> shallow trees at the usual step
    log = TrainParams().resolved(478, 4304)
    assert (log.depth, log.learning_rate) == (4, 0.08)
    # unknown query count: the usual step; explicit values are kept
    assert TrainParams().resolved(100).learning_rate == 0.08
    assert TrainParams(depth=5, learning_rate=0.2).resolved(10, 10) == TrainParams(depth=5, learning_rate=0.2)
