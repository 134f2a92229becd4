"""Grading a selection of logged answers: verdicts -> label lines and failure lines, and the counts.

Single mode: each answer gets a 1..5 score, written as quality ``(score - 1) / 4``.

Pairwise mode: within a group (answers of different models to one query), every two answers are
compared in both orders (``Judge.compare``).  An answer's quality is its share of the consistent
comparisons it won, a tie counting half: with two answers, 1.0 for the winner and 0.0 for the loser,
0.5 each for a tie agreed in both orders.  A comparison whose orders disagree, or that failed, counts
for neither answer and is written as a failure line; an answer with no consistent comparison gets no
label.  Labels of one group are written together with the same ``ts``.

A judge backend that fails ``MAX_CONSECUTIVE_CRASHES`` verdicts in a row (a missing or broken model)
stops the run: what was graded is written, the rest waits for the next run, and ``stopped`` says why.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any

from router_runtime.ids import utc_now
from router_runtime.records import OutcomeRecord

from ..progress import bar
from .grader import Judge, PairVerdict, Verdict
from .labels import JudgeWriter
from .rubric import PAIRWISE, SCORE_MAX, SCORE_MIN, SINGLE, clip_text, score_quality
from .selection import Selection, response_of

__all__ = ["MAX_CONSECUTIVE_CRASHES", "grade_selection"]

MAX_CONSECUTIVE_CRASHES = 3
RAW_MAX_CHARS = 1_000  # of a judge's reply kept in a label (a verdict is a few characters; the rest is noise)


class _Tally:
    def __init__(self) -> None:
        self.graded = 0
        self.failures = 0
        self.inconsistent = 0
        self.calls = 0
        self.by_model: dict[str, dict[str, Any]] = defaultdict(lambda: {"graded": 0, "failures": 0, "quality_sum": 0.0})
        self.crash_streak = 0
        self.stopped: str | None = None

    def verdict(self, crashed: bool, ok: bool, error: str | None) -> None:
        self.crash_streak = self.crash_streak + 1 if (crashed and not ok) else 0
        if self.crash_streak >= MAX_CONSECUTIVE_CRASHES:
            self.stopped = f"the judge backend failed {self.crash_streak} verdicts in a row; last: {error}"

    def labeled(self, rec: OutcomeRecord, quality: float) -> None:
        self.graded += 1
        m = self.by_model[rec.model]
        m["graded"] += 1
        m["quality_sum"] += quality

    def failed(self, *recs: OutcomeRecord) -> None:
        """One failure line, about these records."""
        self.failures += 1
        for rec in recs:
            self.by_model[rec.model]["failures"] += 1

    def summary(self) -> dict[str, Any]:
        by_model = {}
        for name in sorted(self.by_model):
            m = self.by_model[name]
            by_model[name] = {"graded": m["graded"], "failures": m["failures"],
                              "mean_quality": round(m["quality_sum"] / m["graded"], 6) if m["graded"] else None}
        return {"graded": self.graded, "failures": self.failures, "inconsistent": self.inconsistent,
                "judge_calls": self.calls, "by_model": by_model, "stopped": self.stopped}


def _grade_one(judge: Judge, rec: OutcomeRecord, writer: JudgeWriter, tally: _Tally) -> None:
    v: Verdict = judge.grade(rec.query, response_of(rec))
    tally.calls += v.attempts
    tally.verdict(v.crashed, v.ok, v.error)
    if v.ok:
        quality = score_quality(v.value)
        writer.label(rec, quality, {"mode": "single", **SINGLE.meta(), "raw": clip_text(v.raw, RAW_MAX_CHARS), "score": v.value,
                                    "scale": [SCORE_MIN, SCORE_MAX], "attempts": v.attempts})
        tally.labeled(rec, quality)
    else:
        writer.failure(rec.decision_id, SINGLE.version, v.error, v.raw, attempts=v.raws)
        tally.failed(rec)


def _grade_group(judge: Judge, group: list[OutcomeRecord], writer: JudgeWriter, tally: _Tally) -> None:
    points: dict[str, list[tuple[float, str, list[str]]]] = defaultdict(list)  # id -> (points, opponent, raw)
    for x, y in combinations(group, 2):
        pv: PairVerdict = judge.compare(x.query, response_of(x), response_of(y))
        tally.calls += pv.first.attempts + (pv.second.attempts if pv.second is not None else 0)
        tally.verdict(pv.crashed, pv.outcome != "failed", pv.error)
        if pv.outcome in ("failed", "inconsistent"):
            if pv.outcome == "inconsistent":
                tally.inconsistent += 1
                error = (f"the two orders disagree: {x.model} as A -> {pv.first.value!r}, "
                         f"{y.model} as A -> {pv.second.value!r}")
            else:
                error = pv.error
            writer.failure(x.decision_id, PAIRWISE.version, error, pv.raw, other_decision_id=y.decision_id,
                           mode="pairwise")
            tally.failed(x, y)
        else:
            px = {"x": 1.0, "y": 0.0, "tie": 0.5}[pv.outcome]
            raw = [clip_text(r, RAW_MAX_CHARS) for r in pv.raw]
            points[x.decision_id].append((px, y.decision_id, raw))
            points[y.decision_id].append((1.0 - px, x.decision_id, raw))
        if tally.stopped:
            break
    ts = utc_now()
    for rec in group:
        mine = points.get(rec.decision_id)
        if not mine:
            continue
        quality = sum(p for p, _, _ in mine) / len(mine)
        meta = {"mode": "pairwise", **PAIRWISE.meta(), "raw": [r for _, _, r in mine], "score": quality,
                "scale": [0, 1], "wins": sum(p == 1.0 for p, _, _ in mine), "ties": sum(p == 0.5 for p, _, _ in mine),
                "losses": sum(p == 0.0 for p, _, _ in mine), "opponents": [o for _, o, _ in mine]}
        writer.label(rec, quality, meta, ts=ts)
        tally.labeled(rec, quality)


def grade_selection(judge: Judge, selection: Selection, writer: JudgeWriter, *, pairwise: bool = False) -> dict[str, Any]:
    """Grade every record (or group, with ``pairwise``) of ``selection``; the counts of the run."""
    tally = _Tally()
    items = selection.groups if pairwise else selection.records
    with bar("judging (" + ("queries" if pairwise else "answers") + ")", len(items)) as steps:
        for item in items:
            if pairwise:
                _grade_group(judge, item, writer, tally)
            else:
                _grade_one(judge, item, writer, tally)
            steps.advance()
            if tally.stopped:
                break
    return tally.summary()
