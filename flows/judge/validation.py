"""How far a judge can be trusted: grade answers whose true quality is known and measure agreement.

A benchmark table with a ``response`` column (RouteProfile keeps each model's answer:
``flows.importers.import_routeprofile`` reads it into that column) gives (query, answer, true
quality) rows.  ``validate_judge`` grades a seeded sample of them with the ``SINGLE`` rubric and
``agreement`` compares the judge's qualities with the true ones:

- ``accuracy``: share of rows on the same side of ``threshold`` (0.5) for both;
- ``spearman``: rank correlation (average ranks for ties; None when either side is constant);
- ``auc``: probability that a good answer (true quality >= threshold) gets a higher judge quality
  than a bad one, ties counting half (Mann-Whitney; None without both kinds);
- the counts behind them (``n``, ``positives``, ``negatives``) and the failures, which are not in them.

The result is kept as ``<registry>/reports/judge-validation-<judge>.json`` (``write_validation``, the
path from ``router_runtime.registry``), one file per judge, replaced by each validation; the manifest
of an artifact trained on a judge's labels records ``judge_manifest_entry`` (judge, rubric version,
agreement or None when that judge was never validated with that rubric).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import polars as pl

from router_runtime._atomic import atomic_write
from router_runtime.errors import ContractError
from router_runtime.ids import utc_now
from router_runtime.registry import judge_validation_path, reports_dir

from .grader import Judge
from .rubric import RUBRIC_VERSION, SINGLE, score_quality
from .selection import draw

__all__ = ["AGREEMENT_THRESHOLD", "VALIDATION_MAX_ROWS", "agreement", "validate_judge", "write_validation",
           "read_validation", "judge_manifest_entry"]

AGREEMENT_THRESHOLD = 0.5
VALIDATION_MAX_ROWS = 200  # judge calls of a default validation: ~1 s each for a small model on 2 cores


def _ranks(xs: Sequence[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    if va == 0.0 or vb == 0.0:
        return None
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / math.sqrt(va * vb)


def agreement(judged: Sequence[float], true: Sequence[float], *, threshold: float = AGREEMENT_THRESHOLD) -> dict[str, Any]:
    """Agreement of judge qualities with true qualities (both in [0, 1], paired by position)."""
    if len(judged) != len(true):
        raise ContractError("agreement", f"{len(judged)} judge qualities for {len(true)} true ones")
    n = len(true)
    pos = [j for j, t in zip(judged, true) if t >= threshold]
    neg = [j for j, t in zip(judged, true) if t < threshold]
    out: dict[str, Any] = {"n": n, "threshold": threshold, "positives": len(pos), "negatives": len(neg),
                           "accuracy": None, "spearman": None, "auc": None}
    if n == 0:
        return out
    out["accuracy"] = sum((j >= threshold) == (t >= threshold) for j, t in zip(judged, true)) / n
    if n >= 2:
        out["spearman"] = _pearson(_ranks(judged), _ranks(true))
    if pos and neg:
        wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
        out["auc"] = wins / (len(pos) * len(neg))
    return out


def validate_judge(table: pl.DataFrame, judge: Judge, *, max_items: int | None = VALIDATION_MAX_ROWS, seed: int = 0,
                   source: str | None = None) -> dict[str, Any]:
    """Grade a seeded sample of ``table``'s answers (rows with a response) and measure agreement."""
    if "response" not in table.columns:
        raise ContractError("response", "the table has no response column: validation needs the answers' text "
                            "(RouteProfile's full data has it; the committed sample does not)", source=source)
    if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1):
        raise ContractError("max", f"must be an integer >= 1 or absent, got {max_items!r}")
    rows = table.filter(pl.col("response").is_not_null()).select("query_id", "query", "model", "response", "quality")
    rows = [r for r in rows.iter_rows(named=True)]
    skipped_self = sum(r["model"] == judge.name for r in rows)
    rows = [r for r in rows if r["model"] != judge.name]
    rows.sort(key=lambda r: draw(seed, f"{r['query_id']}\x00{r['model']}"))
    sample = rows if max_items is None else rows[:max_items]
    judged, true, failures, calls = [], [], 0, 0
    for r in sample:
        v = judge.grade(r["query"], r["response"])
        calls += v.attempts
        if v.ok:
            judged.append(score_quality(v.value))
            true.append(float(r["quality"]))
        else:
            failures += 1
    return {"judge": judge.name, **SINGLE.meta(), "ts": utc_now(), "table": source, "rows_with_response": len(rows),
            "sampled": len(sample), "graded": len(judged), "failures": failures, "skipped_self": skipped_self,
            "judge_calls": calls, "seed": seed, "agreement": agreement(judged, true)}


def write_validation(registry: str | os.PathLike, result: dict[str, Any]) -> str:
    """Keep ``result`` as the judge's latest validation; returns the file's path."""
    path = judge_validation_path(registry, result["judge"])
    reports_dir(registry).mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(result, ensure_ascii=False, indent=1, allow_nan=False) + "\n")
    return str(path)


def read_validation(registry: str | os.PathLike, judge: str, *, rubric_version: str | None = RUBRIC_VERSION
                    ) -> dict[str, Any] | None:
    """The judge's latest validation, or None when there is none (or, with ``rubric_version``, none of
    that rubric: an agreement measured on another prompt does not describe these labels)."""
    path = judge_validation_path(registry, judge)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("judge_validation", f"unreadable: {exc}", source=str(path)) from None
    if not isinstance(doc, dict) or doc.get("judge") != judge:
        raise ContractError("judge_validation", f"does not describe judge {judge!r}", source=str(path))
    if rubric_version is not None and doc.get("rubric_version") != rubric_version:
        return None
    return doc


def judge_manifest_entry(registry: str | os.PathLike, judge: str, rubric_version: str = RUBRIC_VERSION) -> dict[str, Any]:
    """``manifest["labels"]["judge"]`` of an artifact trained on this judge's labels."""
    doc = read_validation(registry, judge, rubric_version=rubric_version)
    return {"model": judge, "rubric_version": rubric_version,
            "agreement": None if doc is None else {**doc["agreement"], "validated_at": doc.get("ts"),
                                                   "table": doc.get("table")}}
