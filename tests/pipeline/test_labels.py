"""The label rules (flows.labels) are written once per engine: Python and Polars must pick the same lines."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import polars as pl
from hypothesis import given, settings, strategies as st

from flows.labels import (STAND_IN_ORDER, is_label, is_label_record, label_counts, label_rank, stand_in_order,
                          training_quality, winning_label)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SOURCES = ["user", "check", "judge", "benchmark"]
# Few distinct timestamps, qualities and sources, so ties (the tie-breaks) and equal lines are common.
lines = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3), st.sampled_from([0.0, 0.25, 0.5, 1.0]),
                           st.sampled_from(SOURCES)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(lines)
def test_python_and_polars_pick_the_same_winning_and_stand_in_lines(rows):
    rows = [(d, T0 + timedelta(seconds=s), q, src, json.dumps({"n": i})) for i, (d, s, q, src) in enumerate(rows)]
    frame = pl.DataFrame(rows, schema={"decision_id": pl.String, "ts": pl.Datetime("us", "UTC"),
                                       "quality": pl.Float64, "quality_source": pl.String, "label": pl.String},
                         orient="row")
    won = frame.group_by("decision_id").agg(winning_label().alias("w")).unnest("w")
    polars_winner = {r["decision_id"]: (r["quality"], r["quality_source"]) for r in won.iter_rows(named=True)}
    polars_stand_in = {d: (ts, q) for d, ts, q, *_ in frame.sort(["decision_id", *STAND_IN_ORDER])
                       .unique("decision_id", keep="first", maintain_order=True).iter_rows()}
    by_id: dict[str, list] = {}
    for d, ts, q, src, _ in rows:
        by_id.setdefault(d, []).append((ts, q, src))
    best = {d: max(v, key=lambda x: label_rank(x[2], x[0], x[1])) for d, v in by_id.items()}
    assert polars_winner == {d: (q, src) for d, (ts, q, src) in best.items()}
    assert polars_stand_in == {d: min(((ts, q) for ts, q, _ in v), key=lambda x: stand_in_order(*x))
                               for d, v in by_id.items()}


def test_precedence_user_over_check_over_judge_then_latest_then_lower():
    a, b = T0, T0 + timedelta(seconds=1)
    pick = lambda xs: max(xs, key=lambda x: label_rank(x[0], x[1], x[2]))  # noqa: E731
    assert pick([("judge", b, 1.0), ("user", a, 0.2), ("check", b, 0.0)]) == ("user", a, 0.2)  # source first
    assert pick([("judge", b, 1.0), ("check", a, 0.5)]) == ("check", a, 0.5)  # even an older check beats a judge
    assert pick([("judge", a, 1.0), ("judge", b, 0.25), ("judge", b, 0.5)]) == ("judge", b, 0.25)
    assert min([(b, 0.0), (a, 1.0), (a, 0.5)], key=lambda x: stand_in_order(*x)) == (a, 0.5)


@given(st.sampled_from(SOURCES + [None]), st.sampled_from([None, 0.0, 0.7]), st.sampled_from([None, '{"judge":"m"}']))
def test_what_is_a_label_line_agrees_in_both_engines(source, quality, label):
    frame = pl.DataFrame({"quality_source": [source], "quality": [quality], "label": [label]},
                         schema={"quality_source": pl.String, "quality": pl.Float64, "label": pl.String})
    # a user's quality is always a label (feedback); a check's or judge's only with its metadata
    expected = quality is not None and (source == "user" or (source in ("check", "judge") and label is not None))
    assert frame.select(is_label())[0, 0] is expected
    rec = SimpleNamespace(quality_source=source, quality=quality, label=None if label is None else json.loads(label))
    assert is_label_record(rec) is expected


def test_training_quality_never_invents_a_label():
    frame = pl.DataFrame({"quality": [None, None, 0.5, 0.25, None], "success": [True, False, True, False, None],
                          "quality_source": [None, None, "judge", "user", None]})
    got = frame.select(*training_quality()).rows()
    assert got == [(None, None), (0.0, "check"), (0.5, "judge"), (0.25, "user"), (None, None)]


def test_a_failure_the_client_caused_is_no_training_row():
    from flows.curated import training_columns

    frame = pl.DataFrame({
        "decision_id": ["a", "b", "c"], "query": ["q"] * 3, "model": ["m"] * 3, "quality": [None, None, None],
        "quality_source": [None, None, None], "success": [False, False, True],
        "error": ["client: timeout_ms ran out after 10 ms", "backend crashed", None], "cost": [1.0] * 3,
        "propensity": [1.0] * 3, "ts": [datetime(2026, 1, 1, tzinfo=timezone.utc)] * 3, "shadow_of": [None] * 3,
        "label": [None] * 3, "candidates": [["m"]] * 3})
    rows = training_columns(frame.lazy()).collect()
    assert rows.select("query_id", "quality", "quality_source").rows() == [("b", 0.0, "check"), ("c", None, None)]


def test_label_counts_by_source_model_unlabeled_shadow_and_judge():
    rows = pl.DataFrame({
        "model": ["a", "a", "b", "b", "b"], "quality": [1.0, None, 0.0, 0.75, None],
        "quality_source": ["user", None, "check", "judge", None], "shadow_of": [None, None, None, "d1", "d2"],
        "label": [None, None, None, '{"agreement":{"spearman":0.4},"judge":"j","rubric_version":"r1"}', None]})
    assert label_counts(rows) == {
        "by_source": {"check": 1, "judge": 1, "user": 1}, "by_model": {"a": 1, "b": 2}, "labeled": 3,
        "unlabeled": 2, "shadow": 2, "judge": {"model": "j", "rubric_version": "r1", "agreement": {"spearman": 0.4}}}
