"""No invented labels (issue 10), through the real flows under prefect_test_harness: a success is not a
quality; too few labels, equal labels or a failed training end the run with a named reason and the
champion keeps serving, for `zeta pipeline` and `zeta train --format logs` alike; shadow records stay
out of the off-policy estimates and give the direct full-information comparison."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from conftest import SAMPLE
from flows.cli import main
from flows.importers import import_dcrouter
from flows.logs import simulate_logs
from flows.production import run_pipeline
from flows.training import MIN_LABELED_PER_MODEL
from router_runtime import current_version, list_versions, load_artifact

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def train_part():
    return import_dcrouter(SAMPLE / "dcrouter").filter(pl.col("split") == "train")


def logged(train_part, out, seed=0) -> list[dict]:
    """A uniform log of the train part, as records (dicts)."""
    path = simulate_logs(train_part, out / "sim", seed=seed)
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    path.unlink()
    return recs


def write(path, recs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def unlabeled(r: dict) -> dict:
    """What the router's own traffic looks like: answered fine, nobody graded it."""
    return {**r, "quality": None, "quality_source": None, "response": "an answer"}


def champion(tmp_path, train_part) -> tuple[str, str]:
    """A registry whose CURRENT is a real champion (trained on benchmark-labeled logs)."""
    reg = tmp_path / "reg"
    write(tmp_path / "seed-logs" / "a.jsonl", logged(train_part, tmp_path / "seed-logs", seed=3))
    s = run_pipeline(logs=str(tmp_path / "seed-logs"), registry=str(reg), iterations=30, settle_seconds=0)
    assert s["promoted"]
    return str(reg), s["candidate_version"]


def test_all_success_and_unlabeled_logs_are_refused_by_pipeline_and_train(tmp_path, train_part, capsys):
    """The acceptance regression: the issue's 'promoted an artifact predicting quality 1.0' never again."""
    reg, champ = champion(tmp_path, train_part)
    logs = tmp_path / "logs"
    write(logs / "served.jsonl", [unlabeled(r) for r in logged(train_part, tmp_path)])
    assert main(["pipeline", "--logs", str(logs), "--registry", reg, "--iterations", "30", "--settle-seconds", "0",
                 "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["candidate_version"] is None and s["promoted"] is False
    assert s["refusal"]["code"] == "too_few_labels" and "a successful call is not a quality label" in s["reason"]
    assert s["labels"]["train"]["labeled"] == 0 and s["labels"]["train"]["unlabeled"] > 0
    assert current_version(reg) == champ and list_versions(reg) == [champ]  # the champion keeps serving

    logs2 = tmp_path / "logs2"
    write(logs2 / "served.jsonl", [unlabeled(r) for r in logged(train_part, tmp_path, seed=1)])
    assert main(["train", str(logs2), "--format", "logs", "--registry", reg, "--iterations", "30"]) == 1
    err = capsys.readouterr().err
    assert "zeta train: no artifact written" in err and "too few labeled outcomes" in err
    assert "Traceback" not in err and "CatBoost" not in err
    assert current_version(reg) == champ and list_versions(reg) == [champ]


def test_one_model_with_too_few_labels_is_named(tmp_path, train_part):
    recs = logged(train_part, tmp_path)
    rare = sorted({r["model"] for r in recs})[0]
    kept, out = 0, []
    for r in recs:  # keep only a few labels of one model; the others keep their benchmark labels
        if r["model"] == rare:
            kept += 1
            r = r if kept <= 5 else unlabeled(r)
        out.append(r)
    write(tmp_path / "logs" / "a.jsonl", out)
    s = run_pipeline(logs=str(tmp_path / "logs"), registry=str(tmp_path / "reg"), iterations=30, settle_seconds=0)
    assert s["candidate_version"] is None and s["refusal"]["code"] == "too_few_labels"
    assert f"{rare} " in s["reason"] and f"at least {MIN_LABELED_PER_MODEL} per model" in s["reason"]
    assert s["labels"]["train"]["by_model"][rare] < MIN_LABELED_PER_MODEL
    assert not (tmp_path / "reg").exists() or list_versions(tmp_path / "reg") == []


def test_failures_are_check_zero_and_equal_labels_are_refused(tmp_path, train_part):
    recs = logged(train_part, tmp_path)
    # every answered call graded 1.0 and no failure: the labels cannot tell the models apart
    write(tmp_path / "logs" / "a.jsonl", [{**r, "quality": 1.0, "quality_source": "user"} for r in recs])
    s = run_pipeline(logs=str(tmp_path / "logs"), registry=str(tmp_path / "reg"), iterations=30, settle_seconds=0)
    assert s["refusal"]["code"] == "all_labels_equal" and s["candidate_version"] is None
    # the same with failed calls: a failure without a quality is quality 0 from a check, so now they differ
    failed = [{**r, "quality": None, "quality_source": None, "success": False, "error": "crashed"}
              if i % 3 == 0 else {**r, "quality": 1.0, "quality_source": "user"} for i, r in enumerate(recs)]
    write(tmp_path / "logs2" / "a.jsonl", failed)
    s = run_pipeline(logs=str(tmp_path / "logs2"), registry=str(tmp_path / "reg2"), iterations=30, settle_seconds=0)
    assert s["refusal"] is None and s["promoted"] and s["labels"]["train"]["by_source"].keys() == {"check", "user"}
    man = load_artifact(tmp_path / "reg2").manifest
    assert man["labels"]["by_source"] == s["labels"]["by_source"] and man["labels"]["unlabeled"] == 0
    assert man["labels"]["train"]["labeled"] + man["labels"]["recent"]["labeled"] == man["labels"]["labeled"]


def test_a_training_failure_of_any_kind_keeps_the_champion(tmp_path, train_part, monkeypatch, capsys):
    import flows.production

    reg, champ = champion(tmp_path, train_part)
    write(tmp_path / "logs" / "a.jsonl", logged(train_part, tmp_path, seed=5))

    def broken(*args, **kwargs):
        raise RuntimeError("catboost/libs/train_lib: All train targets are equal")
    monkeypatch.setattr(flows.production, "train_quality_model", broken)
    assert main(["pipeline", "--logs", str(tmp_path / "logs"), "--registry", reg, "--iterations", "30",
                 "--settle-seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert "kept champion" in out and "training failed: RuntimeError" in out
    assert current_version(reg) == champ and list_versions(reg) == [champ]


def test_no_labeled_recent_outcome_means_no_candidate(tmp_path, train_part):
    recs = sorted(logged(train_part, tmp_path), key=lambda r: r["ts"])
    cut = int(len(recs) * 0.75)  # everything recent is unlabeled: there is nothing to evaluate on
    write(tmp_path / "logs" / "a.jsonl", recs[:cut] + [unlabeled(r) for r in recs[cut:]])
    s = run_pipeline(logs=str(tmp_path / "logs"), registry=str(tmp_path / "reg"), iterations=30, settle_seconds=0)
    assert s["candidate_version"] is None and s["refusal"]["code"] == "no_evaluation"
    assert not (tmp_path / "reg").exists() or list_versions(tmp_path / "reg") == []


def test_shadow_rows_train_stay_out_of_ope_and_give_a_full_information_comparison(tmp_path, train_part):
    reg, champ = champion(tmp_path, train_part)
    truth = {(r["query_id"], r["model"]): (r["quality"], r["cost"]) for r in train_part.iter_rows(named=True)}
    recs = logged(train_part, tmp_path, seed=7)
    models = sorted({r["model"] for r in recs})
    shadows, labels = [], []
    for i, r in enumerate(recs[::4]):  # a quarter of the queries replayed on two other models, judged
        for m in [m for m in models if m != r["model"]][:2]:
            q, c = truth[(r["query_id"], m)]
            ts = (datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) + timedelta(days=40)).isoformat()
            sh = {**r, "decision_id": f"sh-{i}-{m}", "model": m, "propensity": 1.0, "explored": False, "scores": {},
                  "shadow_of": r["decision_id"], "quality": None, "quality_source": None, "cost": c,
                  "response": f"{m} says", "ts": ts.replace("+00:00", "Z")}
            shadows.append(sh)
            labels.append({**sh, "quality": q, "quality_source": "judge", "ts": sh["ts"],
                           "label": {"judge": "judge-model", "rubric_version": "r1", "score": q, "mode": "single"}})
    write(tmp_path / "logs" / "a.jsonl", recs)
    write(tmp_path / "logs" / "shadow" / "shadow-20260401T000000Z-0a1b2c3d.jsonl", shadows)
    write(tmp_path / "logs" / "labels" / "judge-20260402T000000Z-0a1b2c3d.jsonl", labels)
    s = run_pipeline(logs=str(tmp_path / "logs"), registry=reg, iterations=30, settle_seconds=0)
    assert s["ingest_labels"]["shadow"] == len(shadows) and s["ingest_labels"]["labels"] == {"judge": len(labels)}
    lab = s["labels"]
    assert lab["train"]["shadow"] + lab["recent"]["shadow"] == len(shadows)  # every shadow went with its original
    assert lab["recent"]["shadow"] > 0 and lab["train"]["by_source"]["judge"] == lab["train"]["shadow"]
    assert lab["train"]["judge"] == {"model": "judge-model", "rubric_version": "r1", "agreement": None}
    n_recent_logged = lab["recent"]["labeled"] - lab["recent"]["shadow"]
    man = load_artifact(Path(reg) / "versions" / s["candidate_version"]).manifest
    assert man["evaluation"]["candidate"]["n"] == n_recent_logged  # OPE: the logging policy's own rows only
    fi = s["full_information"]
    assert fi["n_queries"] > 0 and fi["n_rows"] >= 2 * fi["n_queries"]
    assert fi["champion"] is not None and fi["difference"]["n"] == fi["n_queries"]
    assert 0.0 <= fi["candidate"]["quality"] <= 1.0 and man["evaluation"]["full_information"] == fi
    assert man["labels"]["shadow"] == len(shadows) and man["training"]["rows"] == lab["train"]["labeled"]
