"""Judge validation: agreement metrics on hand-computed cases, grading answers of known quality with a
fake judge, and the report kept in the registry for the manifest."""

from __future__ import annotations

import json
import math
import random

import polars as pl
import pytest

from router_runtime import ContractError, FunctionBackend
from router_runtime.pool import parse_model
from router_runtime.registry import judge_validation_path

from flows.judge.grader import Judge
from flows.judge.rubric import SINGLE
from flows.judge.validation import (agreement, judge_manifest_entry, read_validation, validate_judge,
                                    write_validation)

JUDGE = parse_model({"name": "judge-m"})


def test_agreement_by_hand():
    g = agreement([1.0, 0.75, 0.25, 0.0, 0.5], [1.0, 0.0, 1.0, 0.0, 0.0])
    # sides of 0.5: judge T T F F T, truth T F T F F -> 2 of 5 agree
    assert g["accuracy"] == pytest.approx(0.4)
    # good answers scored 1.0 and 0.25 against bad 0.75, 0.0, 0.5: 1.0 beats 3, 0.25 beats 1 -> 4 / 6
    assert g["auc"] == pytest.approx(4 / 6)
    # ranks 5 4 2 1 3 against 4.5 2 4.5 2 2 (ties averaged): r = 2.5 / sqrt(10 * 7.5)
    assert g["spearman"] == pytest.approx(1 / (2 * math.sqrt(3)))
    assert (g["n"], g["positives"], g["negatives"], g["threshold"]) == (5, 2, 3, 0.5)


def test_agreement_ties_count_half_and_degenerate_cases_say_none():
    assert agreement([0.5, 0.5], [1.0, 0.0])["auc"] == 0.5
    assert agreement([0.5, 0.5, 1.0], [1.0, 0.0, 1.0])["spearman"] is not None
    const = agreement([0.75, 0.75, 0.75], [1.0, 0.0, 1.0])
    assert const["spearman"] is None and const["auc"] == 0.5 and const["accuracy"] == pytest.approx(2 / 3)
    one_sided = agreement([0.0, 1.0], [1.0, 1.0])
    assert one_sided["auc"] is None and one_sided["negatives"] == 0
    assert agreement([], [])["accuracy"] is None
    with pytest.raises(ContractError):
        agreement([1.0], [1.0, 0.0])


def test_spearman_and_auc_match_scipy_on_random_data():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    judged = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(300)]
    true = [rng.choice([0.0, 1.0, 0.8]) for _ in range(300)]
    g = agreement(judged, true)
    assert g["spearman"] == pytest.approx(stats.spearmanr(judged, true).statistic, abs=1e-12)
    pos = [j for j, t in zip(judged, true) if t >= 0.5]
    neg = [j for j, t in zip(judged, true) if t < 0.5]
    u = stats.mannwhitneyu(pos, neg).statistic
    assert g["auc"] == pytest.approx(u / (len(pos) * len(neg)), abs=1e-12)


def known_table() -> pl.DataFrame:
    rows = []
    for i in range(12):
        for model, good in (("a", i % 2 == 0), ("b", i % 3 == 0)):
            rows.append({"query_id": str(i), "query": f"q{i}", "model": model, "quality": float(good),
                         "response": ("right" if good else "wrong") + f" {i}"})
    rows.append({"query_id": "99", "query": "q99", "model": "a", "quality": 1.0, "response": None})
    rows.append({"query_id": "98", "query": "q98", "model": "a", "quality": 1.0, "response": "confuse me"})
    return pl.DataFrame(rows)


def fake_judge() -> Judge:
    def reply(model, request):
        text = request.messages[1]["content"].split("ANSWER:")[1]
        return '{"score": 5}' if "right" in text else '{"score": 1}' if "wrong" in text else "hmm"

    return Judge(FunctionBackend(reply), JUDGE)


def test_validate_judge_grades_known_answers_and_counts_failures():
    r = validate_judge(known_table(), fake_judge(), max_items=None, source="known")
    assert (r["rows_with_response"], r["sampled"], r["graded"], r["failures"]) == (25, 25, 24, 1)
    g = r["agreement"]
    assert (g["accuracy"], g["auc"], g["spearman"], g["n"]) == (1.0, 1.0, pytest.approx(1.0), 24)
    assert (r["judge"], r["rubric_version"], r["rubric_sha256"], r["table"]) == (
        "judge-m", SINGLE.version, SINGLE.sha256, "known")
    few = validate_judge(known_table(), fake_judge(), max_items=5, seed=4)
    assert few["sampled"] == 5 and few == {**validate_judge(known_table(), fake_judge(), max_items=5, seed=4),
                                           "ts": few["ts"]}


def test_validate_needs_answer_text():
    with pytest.raises(ContractError, match="no response column"):
        validate_judge(known_table().drop("response"), fake_judge())


def test_the_report_lives_in_the_registry_and_feeds_the_manifest(tmp_path):
    assert judge_manifest_entry(tmp_path, "judge-m") == {"model": "judge-m", "rubric_version": SINGLE.version,
                                                         "agreement": None}
    r = validate_judge(known_table(), fake_judge(), max_items=None)
    path = write_validation(tmp_path, r)
    assert path == str(judge_validation_path(tmp_path, "judge-m"))
    assert read_validation(tmp_path, "judge-m") == json.loads(open(path).read()) == r
    entry = judge_manifest_entry(tmp_path, "judge-m")
    assert entry["agreement"]["accuracy"] == 1.0 and entry["agreement"]["validated_at"] == r["ts"]
    # Measured with another rubric: it does not describe labels of this one.
    assert read_validation(tmp_path, "judge-m", rubric_version="zeta-judge-single-0") is None
    assert read_validation(tmp_path, "judge-m", rubric_version=None) == r
    judge_validation_path(tmp_path, "judge-m").write_text("{torn")
    with pytest.raises(ContractError, match="unreadable"):
        read_validation(tmp_path, "judge-m")


def test_the_pipeline_records_the_judges_measured_agreement_beside_its_label_counts(tmp_path):
    from flows.production import _labels_of

    meta = json.dumps({"judge": "judge-m", "rubric_version": SINGLE.version, "score": 4})
    rows = pl.DataFrame({"model": ["a", "b", "a"], "quality": [0.75, None, 1.0],
                         "quality_source": ["judge", None, "user"], "shadow_of": [None, None, "d0"],
                         "label": [meta, None, None]})
    before = _labels_of(rows, rows.head(0), str(tmp_path))
    assert before["by_source"] == {"judge": 1, "user": 1} and before["unlabeled"] == 1 and before["shadow"] == 1
    assert before["judge"] == {"model": "judge-m", "rubric_version": SINGLE.version, "agreement": None}
    write_validation(tmp_path, validate_judge(known_table(), fake_judge(), max_items=None))
    after = _labels_of(rows, rows.head(0), str(tmp_path))
    assert after["judge"]["agreement"]["accuracy"] == 1.0 and after["judge"]["agreement"]["validated_at"]
