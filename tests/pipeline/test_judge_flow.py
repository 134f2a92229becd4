"""The Prefect flow ``zeta-judge`` and the ``zeta judge`` command, under the session's
prefect_test_harness, with a function-backed judge in place of llama.cpp."""

from __future__ import annotations

import json

import polars as pl
import pytest

from router_runtime import FunctionBackend, OutcomeRecord

import flows.judge.flow as judge_flow
from flows.cli import main
from flows.judge.labels import LABELS_DIR
from flows.tables import write_table

POOL = '''judge = "judge-m"

[[models]]
name = "small"

[[models]]
name = "big"

[[models]]
name = "judge-m"
'''


@pytest.fixture
def fake_llama(monkeypatch):
    """judge_backend returns a fake that scores 'big' answers 5 and the others 2 (and records calls)."""
    made = []

    def build(pool_file, model, **kw):
        backend = FunctionBackend(lambda m, r: '{"score": 5}' if "by big" in r.messages[-1]["content"]
                                  else '{"score": 2}')
        made.append((model.name, backend))
        return backend

    monkeypatch.setattr(judge_flow, "judge_backend", build)
    return made


def _logs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "outcomes-1.jsonl", "w", encoding="utf-8") as f:
        for i in range(4):
            for m in ("small", "big", "judge-m"):
                f.write(OutcomeRecord(decision_id=f"d{i}{m}", ts="2026-01-01T00:00:00Z", candidates=("small", "big", "judge-m"),
                                      model=m, propensity=1 / 3, success=True, query=f"question {i}",
                                      extra={"response": f"answer {i} by {m}"}).to_line())
    pool = tmp_path / "pool.toml"
    pool.write_text(POOL)
    return logs, pool


def test_flow_grades_writes_labels_and_does_not_grade_twice(prefect_harness, tmp_path, fake_llama):
    logs, pool = _logs(tmp_path)
    s = judge_flow.judge_logs(logs=str(logs), pool=str(pool), sample_rate=1.0, seed=3)
    assert fake_llama[0][0] == "judge-m"
    assert (s["graded"], s["skipped_self"], s["failures"], s["stopped"]) == (8, 4, 0, None)
    assert {m: v["mean_quality"] for m, v in s["by_model"].items()} == {"big": 1.0, "small": 0.25}
    (labels,) = (logs / LABELS_DIR).glob("judge-*.jsonl")
    assert str(labels) == s["labels_file"] and len(labels.read_text().splitlines()) == 8
    state = judge_flow.judge_logs(logs=str(logs), pool=str(pool), return_state=True)
    again = state.result()
    assert again["graded"] == 0 and again["labels_file"] is None   # labeled answers are not graded again
    assert state.is_completed() and state.name == "NothingToGrade"  # the run says what it did


def test_cli_judge_prints_counts_and_refuses_a_missing_judge(prefect_harness, tmp_path, fake_llama, capsys):
    logs, pool = _logs(tmp_path)
    assert main(["judge", "--logs", str(logs), "--pool", str(pool), "--judge", "small", "--max", "3",
                 "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["judge"], s["graded"], s["skipped_self"], s["max"]) == ("small", 3, 4, 3)
    assert main(["judge", "--logs", str(logs), "--pool", str(pool), "--judge", "nobody"]) == 2
    assert "'nobody' is not a model of the pool" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="give --logs DIR"):
        main(["judge", "--pool", str(pool)])


def test_cli_validate_reports_agreement_into_the_registry(tmp_path, fake_llama, capsys):
    _, pool = _logs(tmp_path)
    table = tmp_path / "known.parquet"
    write_table(pl.DataFrame({"query_id": ["1", "1", "2", "2"], "query": ["q1", "q1", "q2", "q2"],
                              "model": ["small", "big"] * 2, "quality": [0.0, 1.0, 1.0, 0.0], "cost": [1.0] * 4,
                              "response": ["by small", "by big", "by small", "by big"]}), table)
    reg = tmp_path / "registry"
    assert main(["judge", "--validate", str(table), "--pool", str(pool), "--judge", "judge-m",
                 "--registry", str(reg)]) == 0
    out = capsys.readouterr().out
    assert "judge judge-m" in out and "on 4 answers" in out and "accuracy@0.5 0.500" in out and "report:" in out
    doc = json.loads((reg / "reports" / "judge-validation-judge-m.json").read_text())
    assert doc["agreement"]["n"] == 4 and doc["agreement"]["accuracy"] == 0.5
