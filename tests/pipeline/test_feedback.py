"""The feedback rule (flows.feedback) is written once per engine: Python and Polars must pick the same lines."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import polars as pl
from hypothesis import given, settings, strategies as st

from flows.feedback import (STAND_IN_ORDER, feedback_rank, is_feedback, is_feedback_record,
                            latest_feedback_quality, stand_in_order)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
# Few distinct timestamps and qualities, so equal ts (the tie-break) and equal lines are common.
lines = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3), st.sampled_from([0.0, 0.25, 0.5, 1.0])),
                 min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(lines)
def test_python_and_polars_pick_the_same_winning_and_stand_in_lines(rows):
    rows = [(d, T0 + timedelta(seconds=s), q) for d, s, q in rows]
    frame = pl.DataFrame(rows, schema={"decision_id": pl.String, "ts": pl.Datetime("us", "UTC"),
                                       "quality": pl.Float64}, orient="row")
    polars_winner = dict(frame.group_by("decision_id").agg(latest_feedback_quality()).iter_rows())
    polars_stand_in = {d: (ts, q) for d, ts, q in frame.sort(["decision_id", *STAND_IN_ORDER])
                       .unique("decision_id", keep="first", maintain_order=True).iter_rows()}
    by_id: dict[str, list[tuple[datetime, float]]] = {}
    for d, ts, q in rows:
        by_id.setdefault(d, []).append((ts, q))
    assert polars_winner == {d: max(v, key=lambda x: feedback_rank(*x))[1] for d, v in by_id.items()}
    assert polars_stand_in == {d: min(v, key=lambda x: stand_in_order(*x)) for d, v in by_id.items()}


def test_latest_wins_and_equal_ts_takes_the_lower_quality():
    a, b = T0, T0 + timedelta(seconds=1)
    assert max([(a, 1.0), (b, 0.25), (b, 0.5)], key=lambda x: feedback_rank(*x)) == (b, 0.25)
    assert min([(b, 0.0), (a, 1.0), (a, 0.5)], key=lambda x: stand_in_order(*x)) == (a, 0.5)


@given(st.sampled_from(["user", "check", "judge", "benchmark", None]), st.sampled_from([None, 0.0, 0.7]))
def test_what_is_feedback_agrees_in_both_engines(source, quality):
    frame = pl.DataFrame({"quality_source": [source], "quality": [quality]},
                         schema={"quality_source": pl.String, "quality": pl.Float64})
    expected = source == "user" and quality is not None
    assert frame.select(is_feedback())[0, 0] is expected
    assert is_feedback_record(SimpleNamespace(quality_source=source, quality=quality)) is expected
