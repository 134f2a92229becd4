"""What runs say they did (flows/reports.py): every zeta-pipeline run under prefect_test_harness ends
in a state named for its outcome, and the Prefect API gives back its markdown and table artifacts and
its one-line decision in the run's logs."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import pytest

from conftest import SAMPLE
from flows.importers import import_dcrouter
from flows.logs import simulate_logs
from flows.production import run_pipeline
from flows.reports import (GRADED, NOT_ENOUGH_DATA, NOT_PROMOTED, NOTHING_TO_GRADE, PROMOTED, STAGE_FAILED, STOPPED,
                           judge_report, model_figures)
from router_runtime import current_version, load_artifact


@pytest.fixture
def info_logs_to_the_api():
    """Run loggers at INFO (the suite runs Prefect at WARNING), so the decision line reaches the API."""
    logger = logging.getLogger("prefect.flow_runs")
    before = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(before)


def run_artifacts(flow_run_id) -> dict[str, object]:
    """The run's artifacts by key, its final state and its log messages (key ``logs``), read back
    through the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs go to the API in batches: send what is queued
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        run = client.read_flow_run(flow_run_id)
    return {**{a.key: a for a in arts}, "logs": [entry.message for entry in logs], "state": run.state}


@pytest.fixture(scope="module")
def dc_train():
    table = import_dcrouter(SAMPLE / "dcrouter")
    return table.filter(pl.col("split") == "train")


def test_pipeline_runs_are_named_for_their_outcome_and_publish_their_figures(prefect_harness, info_logs_to_the_api,
                                                                            tmp_path, dc_train):
    import json

    logs, reg = tmp_path / "logs", tmp_path / "reg"
    simulate_logs(dc_train, logs, seed=0)
    first = run_pipeline(logs=str(logs), registry=str(reg), iterations=40, settle_seconds=0, return_state=True)
    s1 = first.result()
    assert first.is_completed() and first.name == PROMOTED and s1["outcome"] == PROMOTED
    assert current_version(reg) == s1["candidate_version"] and first.message.startswith("zeta-pipeline Promoted: ")
    got = run_artifacts(first.state_details.flow_run_id)
    assert got["state"].name == PROMOTED and got["state"].message == first.message  # the server holds the name too
    md = got["zeta-pipeline-report"].data
    assert got["zeta-pipeline-report"].type == "markdown" and got["zeta-pipeline-report"].description == first.message
    assert s1["reason"] in md and s1["candidate_version"] in md and "## Off-policy estimates" in md
    assert f"{s1['ope']['dr']:.4f} [{s1['ope']['ci_low']:.4f}, {s1['ope']['ci_high']:.4f}]" in md
    assert "## Labels in the curated window" in md and "## Drift" in md and "## Data" in md
    rows = json.loads(got["zeta-pipeline-models"].data)
    assert got["zeta-pipeline-models"].type == "table"
    report = json.loads((reg / "reports" / f"{s1['candidate_version']}.json").read_text())
    n = report["evaluation"]["n"]
    assert sorted(r["model"] for r in rows) == sorted(dc_train["model"].unique().to_list())
    assert sum(r["logged_rows"] for r in rows) == n and abs(sum(r["candidate_share"] for r in rows) - 1) < 1e-9
    trained = load_artifact(reg / "versions" / s1["candidate_version"]).manifest["training"]["sample"]["rows"]
    assert sum(r["training_rows"] for r in rows) == trained > 0
    assert all(r["champion_share"] is None for r in rows)  # no champion on the first night
    assert first.message in got["logs"]

    # The gate refuses (too little evidence for an ESS of a billion): the run says so by its name.
    second = run_pipeline(logs=str(logs), registry=str(reg), iterations=40, settle_seconds=0, min_ess=1e9,
                          return_state=True)
    s2 = second.result()
    assert second.is_completed() and second.name == NOT_PROMOTED and "too little evidence" in second.message
    assert current_version(reg) == s1["candidate_version"] != s2["candidate_version"]
    got = run_artifacts(second.state_details.flow_run_id)
    md = got["zeta-pipeline-report"].data
    assert "candidate − champion" in md and s2["reason"] in md
    rows = json.loads(got["zeta-pipeline-models"].data)
    assert abs(sum(r["champion_share"] for r in rows) - 1) < 1e-9


def test_not_enough_data_is_the_runs_name(prefect_harness, info_logs_to_the_api, tmp_path, dc_train):
    logs = tmp_path / "logs"
    simulate_logs(dc_train.head(9 * 10), logs, seed=0)
    state = run_pipeline(logs=str(logs), registry=str(tmp_path / "reg"), settle_seconds=0, return_state=True)
    # 10 records over 9 models: too few labels per model for a quality model (flows.training.quality_refusal)
    assert state.is_completed() and state.name == NOT_ENOUGH_DATA and "too few labeled outcomes" in state.message
    got = run_artifacts(state.state_details.flow_run_id)
    md = got["zeta-pipeline-report"].data
    s = state.result()
    assert s["ingested"] == 10 and f"| ingested this run | {s['ingested']} |" in md
    assert "| benchmark | 10 |" in md  # the labels the window holds: the simulated logs' benchmark qualities
    assert "zeta-pipeline-models" not in got  # no candidate, no per-model figures
    assert state.message in got["logs"]


def test_a_failed_stage_is_the_runs_name(prefect_harness, tmp_path, dc_train, monkeypatch):
    from catboost import CatBoostError, CatBoostRegressor

    def broken_fit(self, *a, **k):
        raise CatBoostError("Too few sampling units")

    monkeypatch.setattr(CatBoostRegressor, "fit", broken_fit)
    logs = tmp_path / "logs"
    simulate_logs(dc_train, logs, seed=0)
    state = run_pipeline(logs=str(logs), registry=str(tmp_path / "reg"), settle_seconds=0, return_state=True)
    assert state.is_completed() and state.name == STAGE_FAILED
    assert state.message.startswith("zeta-pipeline StageFailed: training failed: CatBoostError: Too few sampling units")
    assert state.result()["failed_stage"] == "training"
    assert "training failed" in run_artifacts(state.state_details.flow_run_id)["zeta-pipeline-report"].data


def test_model_figures_on_a_hand_computed_case():
    # rows: logged a, a, b, c; the candidate would pick b, b, b, a; the champion a everywhere
    f = model_figures(["a", "b", "c"], np.array([0, 0, 1, 2]), np.array([1.0, 0.0, 0.5, np.nan]),
                      np.array([2.0, 4.0, 1.0, 3.0]), np.array([1, 1, 1, 0]), np.array([0, 0, 0, 0]))
    assert f["a"] == {"logged_rows": 2, "logged_share": 0.5, "logged_mean_quality": 0.5, "logged_mean_cost": 3.0,
                      "candidate_share": 0.25, "champion_share": 1.0}
    assert f["b"]["candidate_share"] == 0.75 and f["b"]["champion_share"] == 0.0
    assert f["c"]["logged_mean_quality"] is None and f["c"]["logged_mean_cost"] == 3.0


def test_the_judge_report_names_its_outcome():
    base = {"judge": "smol", "mode": "single", "records": 40, "selected": 12, "graded": 11, "failures": 1,
            "by_model": {"gemma": {"graded": 11, "failures": 1, "mean_quality": 0.6}}}
    r = judge_report(base)
    assert r.outcome == GRADED and r.line.startswith("zeta-judge Graded: judge smol graded 11 answers, 1 failures")
    assert r.table == [{"model": "gemma", "graded": 11, "failures": 1, "mean_quality": 0.6}]
    assert judge_report({**base, "graded": 0, "failures": 0, "selected": 0, "by_model": {}}).outcome == NOTHING_TO_GRADE
    assert judge_report({**base, "stopped": "time budget"}).outcome == STOPPED
