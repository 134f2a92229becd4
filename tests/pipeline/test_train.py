"""The Prefect training flow under prefect_test_harness: real Polars features, real CatBoost, real artifacts."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from conftest import SAMPLE
from flows.logs import read_outcome_logs, simulate_logs
from flows.train import train_router
from flows.tables import write_table
from router_runtime import (
    ContractError,
    Router,
    current_version,
    list_versions,
    load_artifact,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _router_json(path):
    doc = json.loads((path / "router.json").read_text())
    doc.pop("version")
    return doc


def test_train_on_raw_benchmark_writes_current_artifact(tmp_path):
    reg = tmp_path / "reg"
    s = train_router(source=str(SAMPLE / "routeprofile"), source_format="routeprofile", registry=str(reg),
                     pool=str(SAMPLE / "pool.toml"), iterations=80)
    assert s["promoted"] and current_version(reg) == s["version"]
    art = load_artifact(reg)
    assert art.version == s["version"] and art.ensemble.n_trees == 80
    assert s["parity_max_abs_diff"] <= 1e-9
    # The data set's descriptors complete the pool file's (which declares sizes only), and the
    # descriptor prior learned from them.
    assert art.model("llama-3.3-70b-instruct").extra["benchmark_score"] == 0.4485
    assert art.model("llama-3.3-70b-instruct").size_b == 70.6  # the pool file's size wins
    assert art.prior is not None and "model_benchmark_score" in art.prior.candidate_inputs
    m = art.manifest
    assert m["parity"]["descriptor_prior"]["max_abs_diff"] <= 1e-9
    assert m["files"]["router.json"]["sha256"] and m["parent_version"] is None
    assert m["training"]["format"] == "routeprofile" and m["training"]["models"] == sorted(
        {mm.name for mm in art.pool} - {"nomic-embed-text-v1.5"})
    assert m["training"]["train_queries"] + m["training"]["test_queries"] == 600
    assert m["training"]["rows"] == 8 * m["training"]["train_queries"]
    h = m["metrics"]["holdout"]
    assert h["n_test_queries"] == m["training"]["test_queries"]
    # The oracle bounds every policy from above on the same queries.
    for key in ("router", "best_single", "cheapest"):
        assert h[key]["quality"] <= h["oracle"]["quality"] + 1e-12
    assert [p["cost_weight"] for p in h["router_sweep"]] == [0.0, 0.05, 0.1, 0.2, 0.5, 1.0]
    assert m["code_version"]["catboost"] and m["code_version"]["polars"]
    # A second run is the child of the first.
    s2 = train_router(source=str(SAMPLE / "routeprofile"), source_format="routeprofile", registry=str(reg),
                      iterations=20, promote=False)
    assert s2["parent_version"] == s["version"] and current_version(reg) == s["version"]
    assert len(list_versions(reg)) == 2 and "promote=False" in s2["reason"]
    # The same data and seed again: an identical model is not "better", so the champion stays,
    # and the decision is recorded in the manifest and the report either way.
    s3 = train_router(source=str(SAMPLE / "routeprofile"), source_format="routeprofile", registry=str(reg),
                      pool=str(SAMPLE / "pool.toml"), iterations=80)
    assert not s3["promoted"] and "not better than champion" in s3["reason"]
    assert current_version(reg) == s["version"]
    m3 = load_artifact(reg / "versions" / s3["version"]).manifest
    assert m3["promotion"]["reason"] == s3["reason"] and m3["evaluation"]["diff"] == 0.0
    assert json.loads((reg / "reports" / f"{s3['version']}.json").read_text())["decision"]["promoted"] is False


def test_seeded_training_reproduces_exactly(tmp_path, sample_table):
    table_path = tmp_path / "table.parquet"
    write_table(sample_table, table_path)
    a = train_router(source=str(table_path), registry=str(tmp_path / "a"), iterations=40, seed=3)
    b = train_router(source=str(table_path), registry=str(tmp_path / "b"), iterations=40, seed=3)
    assert _router_json(tmp_path / "a" / "versions" / a["version"]) == _router_json(
        tmp_path / "b" / "versions" / b["version"])
    c = train_router(source=str(table_path), registry=str(tmp_path / "c"), iterations=40, seed=4)
    assert _router_json(tmp_path / "c" / "versions" / c["version"]) != _router_json(
        tmp_path / "a" / "versions" / a["version"])


def test_hand_made_table_in_every_format(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        is_code = i % 2 == 0
        q = f"def f{i}(x): return x * {i}  # fix this python code" if is_code else f"What year did event {i} happen?"
        for model, good_at_code, cost in (("coder", True, 0.2), ("talker", False, 0.1), ("big", None, 1.0)):
            quality = 0.9 if good_at_code is None else (0.8 if good_at_code == is_code else 0.2)
            rows.append({"query_id": f"q{i}", "query": q, "model": model,
                         "quality": float(np.clip(quality + rng.normal(0, 0.05), 0, 1)), "cost": cost})
    table = pl.DataFrame(rows)
    for ext in ("csv", "jsonl", "parquet"):
        path = tmp_path / f"t.{ext}"
        write_table(table, path)
        s = train_router(source=str(path), registry=str(tmp_path / ext), iterations=50, test_fraction=0.25)
        art = load_artifact(tmp_path / ext)
        assert {m.name for m in art.pool} == {"coder", "talker", "big"}
        router = Router(art, use_numpy=False)
        # With cost mattering, the cheap specialist wins its own kind of query.
        assert router.decide("def g(x): return x + 1  # fix this python code", cost_weight=1.0).model == "coder"
        assert router.decide("What year did event 7 happen?", cost_weight=1.0).model == "talker"
        assert s["metrics"]["holdout"]["n_test_queries"] > 0


def test_train_from_simulated_logs(tmp_path):
    from flows.importers import import_dcrouter

    table = import_dcrouter(SAMPLE / "dcrouter")
    logs = tmp_path / "logs"
    simulate_logs(table.filter(pl.col("split") == "train"), logs, seed=0)
    with open(logs / "simulated-uniform-seed0.jsonl", "ab") as f:  # one torn line must not stop training
        f.write(b'{"schema_version": 1, "decision_id": "torn", "ts": "2026-')
    read = read_outcome_logs(logs)
    assert len(read.records) == 1200 and len(read.quarantined) == 1
    s = train_router(source=str(logs), source_format="logs", registry=str(tmp_path / "reg"), iterations=60)
    # Logs go through the production loop's own steps: ingestion, the label minimum, an off-policy
    # evaluation of the most recent logs and its gate (here: the first candidate, so it is promoted).
    assert (s["ingested"], s["quarantined"], s["promoted"]) == (1200, 1, True) and s["version"]
    art = load_artifact(tmp_path / "reg")
    assert art.version == s["version"]
    t = art.manifest["training"]
    assert t["format"] == "curated logs" and t["window"]["start"] < t["window"]["end"]
    lab = art.manifest["labels"]
    assert lab["train"]["by_source"] == {"benchmark": t["rows"]} and lab["unlabeled"] == 0 and lab["labeled"] == 1200
    assert art.manifest["evaluation"]["candidate"]["n"] > 0 and s["metrics"]["holdout"] is None
    quarantined = [json.loads(x) for x in open(s["quarantine_file"], encoding="utf-8")]
    assert len(quarantined) == 1 and quarantined[0]["raw"].startswith('{"schema_version": 1, "decision_id": "torn"')
    d = Router(art).decide("Which planet is the largest in the solar system?")
    assert d.model in set(table["model"].unique().to_list())


def test_bad_table_fails_the_flow_and_writes_nothing(tmp_path, sample_table):
    bad = sample_table.with_columns(pl.when(pl.arange(0, pl.len()) == 5).then(1.5).otherwise(pl.col("quality"))
                                    .alias("quality"))
    path = tmp_path / "bad.parquet"
    write_table(bad, path)
    with pytest.raises(ContractError, match="quality"):
        train_router(source=str(path), registry=str(tmp_path / "reg"), iterations=10)
    assert list_versions(tmp_path / "reg") == []


def test_a_table_too_thin_or_flat_for_a_quality_model_is_refused_with_its_reason(tmp_path, sample_table):
    from flows.training import MIN_LABELED_PER_MODEL

    qids = sorted(sample_table["query_id"].unique().to_list())
    models = sorted(sample_table["model"].unique().to_list())
    # a handful of queries: the train part has fewer labeled outcomes per model than the minimum
    thin = sample_table.filter(pl.col("query_id").is_in(qids[:20]))
    write_table(thin, tmp_path / "thin.parquet")
    s = train_router(source=str(tmp_path / "thin.parquet"), registry=str(tmp_path / "reg"), iterations=10)
    assert s["version"] is None and not s["promoted"] and s["refusal"]["code"] == "too_few_labels"
    assert models[0] in s["reason"] and str(MIN_LABELED_PER_MODEL) in s["reason"]
    flat = sample_table.with_columns(pl.lit(1.0).alias("quality"))
    write_table(flat, tmp_path / "flat.parquet")
    s = train_router(source=str(tmp_path / "flat.parquet"), registry=str(tmp_path / "reg"), iterations=10)
    assert s["refusal"]["code"] == "all_labels_equal" and list_versions(tmp_path / "reg") == []


def test_a_catboost_failure_is_a_named_reason_not_a_traceback(tmp_path, sample_table, monkeypatch, capsys):
    import flows.train
    from flows.cli import main

    def broken(*args, **kwargs):
        raise RuntimeError("CatBoostError: out of memory")
    monkeypatch.setattr(flows.train, "train_quality_model", broken)
    write_table(sample_table, tmp_path / "t.parquet")
    assert main(["train", str(tmp_path / "t.parquet"), "--registry", str(tmp_path / "reg"), "--iterations", "10"]) == 1
    err = capsys.readouterr().err
    assert "no artifact written" in err and "training failed: RuntimeError: CatBoostError: out of memory" in err
    assert "Traceback" not in err and list_versions(tmp_path / "reg") == []
