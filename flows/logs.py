"""Outcome logs in the pipeline: reading them (bad lines quarantined with a reason, never dropped),
turning them into a training table, and simulating them from full-information benchmark data.
"""

from __future__ import annotations

import glob
import os
import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from router_runtime.errors import ContractError
from router_runtime.records import OutcomeRecord, parse_outcome_line

from .curated import CURATED_SCHEMA, curated_row, curated_training_table
from .labels import is_label_record, label_rank, stand_in_order
from .progress import bar

__all__ = ["LogReadResult", "log_files", "read_outcome_logs", "logs_to_table", "simulate_logs"]


@dataclass
class LogReadResult:
    records: list[OutcomeRecord] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)  # {"file", "line", "reason", "raw"}
    duplicates: int = 0
    feedback: int = 0               # label lines (user feedback, checks, judges), applied to records
    feedback_unmatched: int = 0     # decision_ids with labels and no other line: read from their stand-in label
    files: list[str] = field(default_factory=list)


def log_files(source: str | os.PathLike) -> list[Path]:
    """A directory (every ``*.jsonl`` below it, except under directories whose name starts with "_":
    a judge's failures, a store's quarantine), a glob, or one file; sorted for a stable order."""
    p = Path(source)
    if p.is_dir():
        return sorted(f for f in p.rglob("*.jsonl")
                      if not any(part.startswith("_") for part in f.relative_to(p).parts[:-1]))
    if p.is_file():
        return [p]
    matches = sorted(Path(m) for m in glob.glob(str(source), recursive=True))
    if not matches:
        raise FileNotFoundError(f"no outcome logs at {source}")
    return matches


def _order(rec: OutcomeRecord) -> tuple[datetime, float]:
    return stand_in_order(datetime.fromisoformat(rec.ts), rec.quality)


def _rank(rec: OutcomeRecord) -> tuple[int, datetime, float]:
    return label_rank(rec.quality_source, datetime.fromisoformat(rec.ts), rec.quality)


def read_outcome_logs(source: str | os.PathLike, *, known_models: set[str] | None = None) -> LogReadResult:
    """Validate every line; a bad one is kept (raw bytes, as text with replacement) with its reason.

    The same rules as ingestion and its readers (``flows.ingest``, ``flows.curated``): the first line
    of a decision_id is its record, later ones are duplicates, except label lines, which never take a
    record's place: each record gets the quality, quality_source and label of its winning label (its own
    quality competing); a decision_id with labels and no other line is read from its stand-in label
    line; a label equal to an earlier one in (decision_id, ts, quality, quality_source) is a duplicate
    (``flows.labels``)."""
    out = LogReadResult()
    seen: set[str] = set()
    feedback: dict[str, list[OutcomeRecord]] = {}
    seen_feedback: set[tuple[str, datetime, float, str]] = set()
    for path in log_files(source):
        out.files.append(str(path))
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                line = raw.rstrip(b"\n").rstrip(b"\r")
                if not line.strip():
                    continue
                try:
                    rec = parse_outcome_line(line, known_models=known_models)
                except ContractError as exc:
                    out.quarantined.append({"file": str(path), "line": n, "reason": str(exc),
                                            "raw": line.decode("utf-8", errors="replace")})
                    continue
                if is_label_record(rec):
                    key = (rec.decision_id, datetime.fromisoformat(rec.ts), rec.quality, rec.quality_source)
                    if key in seen_feedback:
                        out.duplicates += 1
                    else:
                        seen_feedback.add(key)
                        feedback.setdefault(rec.decision_id, []).append(rec)
                        out.feedback += 1
                    continue
                if rec.decision_id in seen:
                    out.duplicates += 1
                    continue
                seen.add(rec.decision_id)
                out.records.append(rec)
    if feedback:
        for i, rec in enumerate(out.records):
            if rec.decision_id in feedback:
                own = [rec] if rec.quality is not None else []
                won = max(feedback[rec.decision_id] + own, key=_rank)
                out.records[i] = replace(rec, quality=won.quality, quality_source=won.quality_source, label=won.label)
        for decision_id, lines in feedback.items():
            if decision_id not in seen:
                won = max(lines, key=_rank)
                out.records.append(replace(min(lines, key=_order), quality=won.quality,
                                           quality_source=won.quality_source, label=won.label))
                out.feedback_unmatched += 1
    return out


def logs_to_table(records: list[OutcomeRecord]) -> pl.DataFrame:
    """Outcome records as training rows, by the same rule as curated logs
    (``flows.curated.curated_training_table``: the label's quality, a failure without one 0, a success
    without one unlabeled (null); weight 1/propensity)."""
    return curated_training_table(pl.DataFrame([curated_row(r, "") for r in records], schema=CURATED_SCHEMA))


def simulate_logs(table: pl.DataFrame, out_dir: str | os.PathLike, *, seed: int = 0, rows: int | None = None,
                  start: datetime | None = None, policy: str = "uniform", artifact: str | os.PathLike | None = None,
                  exploration_rate: float = 0.2, seconds_per_row: float = 1.0) -> Path:
    """Simulated production traffic over a full-information table: per query a logging policy picks a
    model, only that model's outcome is revealed, and the policy's true propensity is logged.

    ``policy="uniform"``: every model with probability 1/K.  ``policy="artifact"``: the router of
    ``artifact`` with ε-greedy exploration at ``exploration_rate`` (its propensities are exact, so the
    log supports off-policy evaluation).  ``rows=None`` shows every query once in a seeded random order;
    ``rows=N`` draws N queries with replacement.  Timestamps advance ``seconds_per_row`` per record.
    """
    if policy not in ("uniform", "artifact"):
        raise ContractError("policy", f"must be 'uniform' or 'artifact', got {policy!r}")
    rng = random.Random(seed)
    models = sorted(table["model"].unique().to_list())
    router = None
    if policy == "artifact":
        if artifact is None:
            raise ContractError("artifact", "policy 'artifact' needs an artifact path")
        from router_runtime.policy import Exploration
        from router_runtime.router import Router

        router = Router.load(artifact, exploration=Exploration(rate=exploration_rate), seed=seed)
        if router.artifact is None:
            raise ContractError("artifact", f"cannot load {artifact}: {router.problem}")
    by_query: dict[str, dict] = {}
    for r in table.iter_rows(named=True):
        by_query.setdefault(r["query_id"], {"query": r["query"], "cells": {}})["cells"][r["model"]] = r
    qids = sorted(by_query)
    order = qids[:]
    rng.shuffle(order)  # traffic arrives in no particular order (tables are often sorted by task)
    n = len(qids) if rows is None else rows
    start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"simulated-{policy}-seed{seed}.jsonl"
    with open(path, "w", encoding="utf-8") as f, bar("simulating logs (records)", n) as steps:
        for i in range(n):
            steps.advance()
            qid = order[i] if rows is None else rng.choice(qids)
            q = by_query[qid]
            if router is None:
                model, propensity, explored, version, scores = rng.choice(models), 1.0 / len(models), False, None, {}
            else:
                d = router.decide(q["query"], candidates=models)
                model, propensity, explored, version = d.model, d.propensity, d.explored, d.artifact_version
                scores = {s.model: s.quality for s in d.scores}
            cell = q["cells"][model]
            rec = OutcomeRecord(
                decision_id=f"sim-{policy}-{seed}-{i}-{qid}",
                ts=(start + timedelta(seconds=i * seconds_per_row)).isoformat().replace("+00:00", "Z"),
                query=q["query"], request_kind="chat", candidates=tuple(models), model=model,
                propensity=propensity, explored=explored, artifact_version=version, scores=scores,
                success=True, quality=float(cell["quality"]), quality_source="benchmark", cost=float(cell["cost"]),
                prompt_tokens=cell.get("prompt_tokens"), completion_tokens=cell.get("completion_tokens"),
                extra={"query_id": qid},
            )
            f.write(rec.to_line())
    return path
