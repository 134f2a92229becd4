"""Which logged answers the judge grades, and the seeded sample of them.

A record is *gradable* when it is an answer nobody has labeled: a successful call with its response
text and its query text, no quality yet (a user's, a check's, a benchmark's or an earlier judge
label), and not a label line itself.  Records of the judge's own model are left out unless
``include_self`` (a model grading itself is a known bias).  Every record left out is counted under
its reason.

The sample is seeded and independent of file and line order: each item gets a draw in [0, 1) from the
sha256 of ``seed`` and its key (the decision_id; for pairwise the query text); items whose draw is
below ``sample_rate`` are kept, the smallest draws first, at most ``max_items``.  The same logs and
seed give the same sample, and a larger rate or limit only adds to it.

Pairwise groups: the gradable answers to one query text from different models, which are a record
and its shadow records (a shadow record carries the original's query) or any two decisions on the
same text.  A group keeps one answer per model (the smallest draw) and at most
``MAX_PAIRWISE_ANSWERS`` models; every two of them are compared.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from router_runtime.errors import ContractError
from router_runtime.records import OutcomeRecord

__all__ = ["response_of", "label_of", "Selection", "select_records", "select_groups", "draw",
           "MAX_PAIRWISE_ANSWERS"]

MAX_PAIRWISE_ANSWERS = 4  # per query: 4 answers are 6 pairs, 12 judge calls


def response_of(rec: OutcomeRecord) -> str | None:
    """The record's answer text, or None.  Reads the ``response`` field of OutcomeRecord v1, or the
    same key among the unknown fields of a reader that predates it."""
    v = getattr(rec, "response", None)
    if v is None:
        v = rec.extra.get("response")
    return v if isinstance(v, str) and v.strip() else None


def label_of(rec: OutcomeRecord) -> dict[str, Any] | None:
    """The ``label`` metadata of a label line (field or unknown field, as ``response_of``), or None."""
    v = getattr(rec, "label", None)
    if v is None:
        v = rec.extra.get("label")
    return v if isinstance(v, dict) else None


def draw(seed: int, key: str) -> float:
    """A uniform number in [0, 1) fixed by ``seed`` and ``key``."""
    h = hashlib.sha256(f"{seed}:{key}".encode("utf-8", errors="surrogatepass")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _check(sample_rate: float, max_items: int | None) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not 0.0 < sample_rate <= 1.0:
        raise ContractError("sample_rate", f"must be in (0, 1], got {sample_rate!r}")
    if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1):
        raise ContractError("max", f"must be an integer >= 1 or absent, got {max_items!r}")


@dataclass
class Selection:
    records: list[OutcomeRecord] = field(default_factory=list)          # single mode: what to grade
    groups: list[list[OutcomeRecord]] = field(default_factory=list)     # pairwise mode: what to compare
    skipped: Counter = field(default_factory=Counter)                   # reason -> records left out
    gradable: int = 0                                                   # before sampling

    def counts(self) -> dict[str, int]:
        return {k: n for k, n in sorted(self.skipped.items()) if n}


def _why_not(rec: OutcomeRecord, judge: str, include_self: bool) -> str | None:
    if label_of(rec) is not None:
        return "label_lines"
    if rec.quality is not None:
        return "labeled"
    if not rec.success:
        return "failed_calls"         # quality 0 from a check: nothing for a judge to add
    if rec.query is None:
        return "no_query_text"        # logged with text logging off: the judge cannot read the request
    if response_of(rec) is None:
        return "no_response"
    if rec.model == judge and not include_self:
        return "skipped_self"
    return None


def _gradable(records: Iterable[OutcomeRecord], judge: str, include_self: bool, sel: Selection) -> list[OutcomeRecord]:
    out = []
    for rec in records:
        why = _why_not(rec, judge, include_self)
        if why is None:
            out.append(rec)
        else:
            sel.skipped[why] += 1
    sel.gradable = len(out)
    return out


def _sample(items: list[tuple[float, Any]], sample_rate: float, max_items: int | None) -> list[Any]:
    kept = sorted((x for x in items if x[0] < sample_rate), key=lambda x: x[0])
    return [x[1] for x in (kept if max_items is None else kept[:max_items])]


def select_records(records: Sequence[OutcomeRecord], *, judge: str, include_self: bool = False,
                   sample_rate: float = 1.0, max_items: int | None = None, seed: int = 0) -> Selection:
    """The seeded sample of gradable records (single mode)."""
    _check(sample_rate, max_items)
    sel = Selection()
    ok = _gradable(records, judge, include_self, sel)
    drawn = [(draw(seed, r.decision_id), r) for r in ok]
    sel.records = _sample(drawn, sample_rate, max_items)
    sel.skipped["not_sampled"] += len(ok) - len(sel.records)
    return sel


def select_groups(records: Sequence[OutcomeRecord], *, judge: str, include_self: bool = False,
                  sample_rate: float = 1.0, max_items: int | None = None, seed: int = 0) -> Selection:
    """The seeded sample of pairwise groups; ``max_items`` counts groups."""
    _check(sample_rate, max_items)
    sel = Selection()
    by_query: dict[str, dict[str, tuple[float, OutcomeRecord]]] = {}
    for rec in _gradable(records, judge, include_self, sel):
        per_model = by_query.setdefault(rec.query, {})
        d = draw(seed, rec.decision_id)
        if rec.model not in per_model or d < per_model[rec.model][0]:
            if rec.model in per_model:
                sel.skipped["same_model_answer"] += 1
            per_model[rec.model] = (d, rec)
        else:
            sel.skipped["same_model_answer"] += 1
    groups = []
    for query, per_model in by_query.items():
        answers = sorted(per_model.values(), key=lambda x: x[0])
        if len(answers) < 2:
            sel.skipped["no_other_answer"] += 1
            continue
        if len(answers) > MAX_PAIRWISE_ANSWERS:
            sel.skipped["group_full"] += len(answers) - MAX_PAIRWISE_ANSWERS
        groups.append((draw(seed, "query:" + query), [r for _, r in answers[:MAX_PAIRWISE_ANSWERS]]))
    sel.groups = _sample(groups, sample_rate, max_items)
    sel.skipped["not_sampled"] += sum(len(g) for _, g in groups) - sum(len(g) for g in sel.groups)
    return sel
