"""The production loop under hostile data (issue 15): a contract-valid but absurd propensity is
bounded (and the manifest says how), a library exception inside training ends the run with a named
reason while the champion keeps serving, and a poisoned record never blocks a later run."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from conftest import SAMPLE
from flows.importers import import_dcrouter
from flows.logs import simulate_logs
from flows.production import run_pipeline
from flows.weights import PROPENSITY_FLOOR, bounded_training_weights, clip_propensities
from router_runtime import current_version, load_artifact
from router_runtime.records import parse_outcome

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def dc_train():
    return import_dcrouter(SAMPLE / "dcrouter").filter(pl.col("split") == "train")


def _poison(logs, propensity: float, n: int = 1) -> None:
    """Copies of real records with a new id and an absurd, contract-valid propensity."""
    src = next(logs.glob("*.jsonl")).read_text().splitlines()
    with open(logs / "poison.jsonl", "w") as f:
        for line in src[:n]:
            rec = dict(json.loads(line), decision_id=uuid.uuid4().hex, propensity=propensity)
            parse_outcome(rec)  # it is valid: the contract cannot refuse it
            f.write(json.dumps(rec) + "\n")


def test_weights_are_clipped_and_self_normalized():
    props, clipped = clip_propensities(np.array([1e-300, 0.5, 1.0, PROPENSITY_FLOOR / 2]))
    assert clipped == 2 and props.min() == PROPENSITY_FLOOR
    frame = pl.DataFrame({"propensity": [1e-300, 0.5, 0.25, 1.0]})
    out, info = bounded_training_weights(frame)
    w = out["weight"].to_numpy()
    raw = np.array([1 / PROPENSITY_FLOOR, 2.0, 4.0, 1.0])
    np.testing.assert_allclose(w, raw / raw.mean())
    assert w.mean() == pytest.approx(1.0) and info["clipped_rows"] == 1 and info["propensity_floor"] == PROPENSITY_FLOOR


def test_a_tiny_propensity_is_bounded_and_never_blocks_later_runs(tmp_path, dc_train):
    logs, reg = tmp_path / "logs", tmp_path / "reg"
    simulate_logs(dc_train, logs, seed=0)
    _poison(logs, 1e-300, n=3)
    s1 = run_pipeline(logs=str(logs), registry=str(reg), iterations=40, settle_seconds=0)
    assert s1["ingested"] == 1203 and s1["candidate_version"] is not None, s1["reason"]
    assert s1["promoted"] and current_version(reg) == s1["candidate_version"]
    bounds = load_artifact(reg).manifest["training"]["weight_bounds"]
    assert bounds["propensity_floor"] == PROPENSITY_FLOOR and 1 <= bounds["clipped_rows"] <= 3
    ope = s1["ope"]
    assert all(np.isfinite(ope[k]) for k in ("ips", "snips", "dr", "ci_low", "ci_high", "ess"))

    # The poisoned records stay in the curated window: the next run trains all the same.
    simulate_logs(dc_train, logs, seed=1, start=datetime(2026, 2, 1, tzinfo=timezone.utc))
    s2 = run_pipeline(logs=str(logs), registry=str(reg), iterations=40, settle_seconds=0)
    assert s2["ingested"] == 1200 and s2["candidate_version"] is not None, s2["reason"]
    assert s2["champion_version"] == s1["candidate_version"]
    assert (current_version(reg) == s2["candidate_version"]) == s2["promoted"]


def test_a_library_failure_in_training_is_a_named_result_and_the_champion_serves(tmp_path, dc_train, monkeypatch):
    logs, reg = tmp_path / "logs", tmp_path / "reg"
    simulate_logs(dc_train, logs, seed=0)
    s1 = run_pipeline(logs=str(logs), registry=str(reg), iterations=40, settle_seconds=0)
    assert s1["promoted"]
    champion = current_version(reg)

    from catboost import CatBoostError, CatBoostRegressor

    def broken_fit(self, *a, **k):  # what CatBoost raised on poisoned logs before the weights were bounded
        raise CatBoostError("catboost/private/libs/algo/tensor_search_helpers.cpp:565: Too few sampling units "
                            "(subsample=0.8, bootstrap_type=MVS): please increase sampling rate or disable sampling")

    monkeypatch.setattr(CatBoostRegressor, "fit", broken_fit)
    simulate_logs(dc_train, logs, seed=1, start=datetime(2026, 2, 1, tzinfo=timezone.utc))
    s2 = run_pipeline(logs=str(logs), registry=str(reg), iterations=40, settle_seconds=0)
    assert not s2["promoted"] and s2["candidate_version"] is None
    assert s2["reason"].startswith("training failed: CatBoostError") and "Too few sampling units" in s2["reason"]
    assert s2["ingested"] == 1200  # what was ingested stays ingested
    assert current_version(reg) == champion and s2["champion_version"] == champion

    monkeypatch.undo()  # the failure was not the data's: the next run trains on everything
    s3 = run_pipeline(logs=str(logs), registry=str(reg), iterations=40, settle_seconds=0)
    assert s3["ingested"] == 0 and s3["candidate_version"] is not None, s3["reason"]


def test_a_shadow_row_weighs_its_decisions_candidate_count():
    # A uniform log over 3 candidates gives weight 3 per logged row; a replayed answer of the same
    # decision (propensity 1.0 by contract) must count as much, not a third as much.
    frame = pl.DataFrame({"propensity": [1 / 3, 1 / 3, 1.0, 1.0], "model": ["a", "b", "c", "b"],
                          "shadow_of": [None, None, "d1", "d2"],
                          "candidates": [["a", "b", "c"]] * 3 + [["a", "b"]]})
    out, info = bounded_training_weights(frame)
    raw = np.array([3.0, 3.0, 3.0, 2.0])
    np.testing.assert_allclose(out["weight"].to_numpy(), raw / raw.mean())
    assert info["shadow_rows"] == 2
    # Without the candidates at hand, K is the number of models seen.
    out2, _ = bounded_training_weights(frame.drop("candidates"))
    np.testing.assert_allclose(out2["weight"].to_numpy(), np.array([3.0, 3.0, 3.0, 3.0]) / 3.0)
