"""What a run of the nightly loop says it did, in Prefect's own terms.

Every run of ``zeta-pipeline``, ``zeta-shadow`` and ``zeta-judge`` ends with ``publish(report, summary)``:

- a **markdown artifact** (key ``<flow>-report``): the decision and the figures it rests on; for the
  pipeline the gate's decision and reason, the off-policy estimates with their intervals, the paired
  difference, label counts, drift and sample sizes;
- a **table artifact** (key ``<flow>-models``): one row of figures per model;
- **one log line**: the decision, the same text as the state's message;
- a **named final state**: ``Completed`` whose name says what happened, and whose result is the
  run's summary (what the ``zeta`` commands print).  ``prefect flow-run ls`` and the UI show it::

      zeta-pipeline   Promoted        a first candidate, or one the gate found better than the champion
                      NotPromoted     refused by the gate (too little evidence, or not better with
                                      confidence), or a candidate that does not load
                      NotEnoughData   too few curated rows to train a candidate
                      StageFailed     a library failed in reading, training, evaluation or recording
                                      (the reason names the stage); the champion is kept
      zeta-shadow     Replayed | NothingToReplay | TimeBudgetReached
      zeta-judge      Graded | NothingToGrade | Stopped

Prefect keys artifacts by name and keeps every version: ``prefect artifact inspect zeta-pipeline-report``
lists the nights.  The report functions are plain (dict in, ``RunReport`` out) and are tested
without a server; ``publish`` is the one place that talks to Prefect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["RunReport", "PROMOTED", "NOT_PROMOTED", "NOT_ENOUGH_DATA", "STAGE_FAILED", "REPLAYED", "NOTHING_TO_REPLAY",
           "TIME_BUDGET_REACHED", "GRADED", "NOTHING_TO_GRADE", "STOPPED", "publish", "pipeline_report",
           "shadow_report", "judge_report", "model_figures"]

PROMOTED, NOT_PROMOTED, NOT_ENOUGH_DATA, STAGE_FAILED = "Promoted", "NotPromoted", "NotEnoughData", "StageFailed"
REPLAYED, NOTHING_TO_REPLAY, TIME_BUDGET_REACHED = "Replayed", "NothingToReplay", "TimeBudgetReached"
GRADED, NOTHING_TO_GRADE, STOPPED = "Graded", "NothingToGrade", "Stopped"


@dataclass(frozen=True)
class RunReport:
    flow: str                     # the flow's name: the artifacts' key prefix
    outcome: str                  # the final state's name
    line: str                     # the one-line decision: log line, state message, artifact description
    markdown: str
    table: list[dict[str, Any]] = field(default_factory=list)


def publish(report: RunReport, summary: dict[str, Any]):
    """Artifacts and the log line of ``report``; returns the final state for the flow to return
    (``Completed`` named ``report.outcome``, with ``summary`` as its result)."""
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.states import Completed

    logger = get_run_logger()
    try:
        create_markdown_artifact(report.markdown, key=f"{report.flow}-report", description=report.line)
        if report.table:
            create_table_artifact(report.table, key=f"{report.flow}-models",
                                  description=f"{report.flow}: figures per model ({report.outcome})")
    except Exception as exc:  # the decision is taken and recorded: an API hiccup must not turn it into a failure
        logger.warning("could not publish the run's artifacts (%s: %s); the decision stands", type(exc).__name__, exc)
    logger.info("%s", report.line)
    return Completed(name=report.outcome, message=report.line, data={**summary, "outcome": report.outcome})


# -- formatting ------------------------------------------------------------------------------------
def _num(x: Any, fmt: str = ".4f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, fmt)


def _interval(lo: Any, hi: Any, fmt: str = ".4f") -> str:
    return f"[{_num(lo, fmt)}, {_num(hi, fmt)}]"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _cell(v: Any) -> Any:
    """A table-artifact cell: floats to 6 significant digits for reading (costs can be 1e-5), NaN as empty."""
    if isinstance(v, float):
        return None if math.isnan(v) else float(f"{v:.6g}")
    return v


# -- zeta-pipeline ---------------------------------------------------------------------------------
def model_figures(models: Sequence[str], actions: np.ndarray, quality: np.ndarray, cost: np.ndarray,
                  candidate_choice: np.ndarray, champion_choice: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """Per model, on the evaluated rows: how often the logging policy took it and with what logged
    quality and cost, and how often the candidate and the champion would choose it."""
    n = max(len(actions), 1)
    out: dict[str, dict[str, Any]] = {}
    for j, m in enumerate(models):
        took = actions == j
        k = int(took.sum())
        q = quality[took]
        q = q[~np.isnan(q)]
        out[m] = {"logged_rows": k, "logged_share": k / n,
                  "logged_mean_quality": float(q.mean()) if len(q) else None,
                  "logged_mean_cost": float(cost[took].mean()) if k else None,
                  "candidate_share": float((candidate_choice == j).sum()) / n,
                  "champion_share": None if champion_choice is None else float((champion_choice == j).sum()) / n}
    return out


def pipeline_report(summary: dict[str, Any], *, evaluation: dict[str, Any] | None = None,
                    labels: dict[str, int] | None = None, train_rows: dict[str, int] | None = None,
                    samples: dict[str, Any] | None = None, gate: dict[str, Any] | None = None) -> RunReport:
    """The report of one ``run_pipeline`` cycle from its summary (and, when a candidate was
    evaluated, the evaluation, the training rows per model, the samples and the gate's parameters)."""
    s, ev, gate = summary, evaluation or {}, gate or {}
    cand, champ = s.get("candidate_version"), s.get("champion_version")
    if s.get("failed_stage"):
        outcome = STAGE_FAILED
        headline = f"{s['reason']}; CURRENT stays {champ or '(none)'}"
    elif cand is None:
        outcome = NOT_ENOUGH_DATA
        headline = f"no candidate ({s['reason']}); CURRENT stays {champ or '(none)'}"
    else:
        outcome = PROMOTED if s["promoted"] else NOT_PROMOTED
        headline = (f"promoted {cand} over {champ or '(none)'}" if s["promoted"]
                    else f"kept champion {champ or '(none)'}, candidate {cand} refused") + f": {s['reason']}"
        if s.get("difference"):
            d = s["difference"]
            headline += f"; DR diff {_num(d['diff'], '+.4f')} {_interval(d['ci_low'], d['ci_high'], '+.4f')}"
        if s.get("ope") and "ESS" not in s["reason"]:
            headline += f"; ESS {_num(s['ope'].get('ess'), '.1f')}"
    line = f"zeta-pipeline {outcome}: {headline}"

    md = [f"# zeta-pipeline: {outcome}", "", f"**{headline}**", ""]
    md += ["## Gate", ""]
    md += _table(["", ""], [
        ("decision", outcome), ("reason", s["reason"]), ("candidate", cand or "–"), ("champion", champ or "–"),
        ("margin", gate.get("margin", "–")), ("min ESS", gate.get("min_ess", "–")),
        ("evidence", gate.get("evidence", "–")), ("report", s.get("report") or "–")])

    if ev.get("candidate"):
        c, ch, d = ev["candidate"], ev.get("champion"), ev.get("difference")
        level = f"{c['level']:.0%}"
        md += ["", f"## Off-policy estimates on {ev['n']} logged rows", "",
               f"reward: `{ev['reward']}`; {level} percentile intervals, {c['n_bootstrap']} bootstrap resamples", ""]
        rows = []
        for name, e in (("candidate", c), ("champion", ch)):
            if e:
                rows.append((name, f"{_num(e['ips'])} {_interval(*e['ips_ci'])}",
                             f"{_num(e['snips'])} {_interval(*e['snips_ci'])}",
                             f"{_num(e['dr'])} {_interval(e['ci_low'], e['ci_high'])}", _num(e["ess"], ".1f"),
                             _num(e["match_rate"], ".2f")))
        md += _table(["policy", "IPS", "SNIPS", "DR", "ESS", "match rate"], rows)
        if d:
            md += ["", f"**candidate − champion** ({d['estimator'].upper()}, paired bootstrap): "
                   f"{_num(d['diff'], '+.4f')} {_interval(d['ci_low'], d['ci_high'], '+.4f')}, "
                   f"P(diff ≤ 0) {_num(d.get('p_diff_le_0'), '.3f')}"
                   + (f"; the two choose the same model on {ev['agreement']:.1%} of rows" if "agreement" in ev else "")]
        if ev.get("champion_note"):
            md += ["", f"note: {ev['champion_note']}"]

    md += ["", "## Data", ""]
    data_rows = [("ingested this run", s.get("ingested")), ("quarantined", s.get("quarantined")),
                 ("duplicates", s.get("duplicates")),
                 ("feedback lines", f"{s.get('feedback')} ({s.get('feedback_unmatched')} without their answer)")]
    for part, info in (samples or {}).items():
        if info:
            how = info.get("method", "every row")
            data_rows.append((f"{part} rows", f"{info.get('rows')} of {info.get('population_rows', info.get('rows'))}"
                              + ("" if how.startswith("none") else f" ({how})")))
    md += _table(["", "rows"], data_rows)
    if labels:
        md += ["", "## Labels in the curated window", ""]
        md += _table(["quality source", "records"], sorted(labels.items(), key=lambda kv: -kv[1]))

    drift = ev.get("drift")
    if drift and drift.get("features"):
        md += ["", f"## Drift (PSI, {drift['n_train']} training vs {drift['n_recent']} recent queries)", "",
               f"max PSI {_num(drift['max_psi'])}; features at 0.1 or more (moderate or large): "
               f"{drift.get('moderate_or_large', 0)}", ""]
        md += _table(["feature", "PSI"], [(f["feature"], _num(f["psi"])) for f in drift["features"][:5]])

    table = []
    for m, f in (ev.get("by_model") or {}).items():
        table.append({"model": m, "training_rows": (train_rows or {}).get(m, 0),
                      **{k: _cell(v) for k, v in f.items()}})
    return RunReport("zeta-pipeline", outcome, line, "\n".join(md) + "\n", table)


# -- zeta-shadow -----------------------------------------------------------------------------------
def shadow_report(summary: dict[str, Any], planned_by_model: dict[str, int] | None = None) -> RunReport:
    """The report of one ``shadow_flow`` run from its summary and the planned runs per model."""
    s, p = summary, summary["plan"]
    if p["planned_runs"] == 0:
        outcome = NOTHING_TO_REPLAY
    elif s["stopped"] == "time budget":
        outcome = TIME_BUDGET_REACHED
    else:
        outcome = REPLAYED
    headline = (f"{s['written']} shadow records ({s['succeeded']} succeeded, {s['failed']} failed) "
            f"of {p['planned_runs']} planned runs from {p.get('sampled', 0)} sampled decisions "
            f"(rate {p['rate']:g}, seed {p['seed']}), stopped: {s['stopped']} after {s['elapsed_s']:.1f} s")
    skipped = {k.removeprefix("skipped_"): v for k, v in p.items() if k.startswith("skipped_") and v}
    line = f"zeta-shadow {outcome}: {headline}"
    md = [f"# zeta-shadow: {outcome}", "", f"**{headline}**", "", "## Sample", ""]
    md += _table(["", ""], [
        ("logged records", f"{p['records']} ({p['shadow_records']} of them shadow records)"),
        ("quarantined lines", p.get("quarantined_lines", 0)),
        ("sampled decisions", f"{p.get('sampled', 0)} at rate {p['rate']:g}, seed {p['seed']}"),
        ("not sampled", p.get("not_sampled", 0)), ("skipped", skipped or "none"),
        ("runs", f"{p['eligible_runs']} eligible, {p['planned_runs']} planned"
                 + (f" (max {p['max_runs']})" if p.get("max_runs") is not None else "")),
        ("model pairs left out", p.get("ineligible") or "none"),
        ("models over the memory budget", p.get("memory_problems") or "none"),
        ("time budget", f"{p['time_budget_s']:g} s" if p.get("time_budget_s") else "none")])
    md += ["", "## Result", ""]
    md += _table(["", ""], [("written", s["written"]), ("succeeded", s["succeeded"]), ("failed", s["failed"]),
                            ("not recorded", s.get("not_recorded") or "none"), ("stopped", s["stopped"]),
                            ("file", s.get("file") or "(nothing written)")])
    models = dict.fromkeys([*(planned_by_model or {}), *s.get("by_model", {})])
    table = [{"model": m, "planned_runs": (planned_by_model or {}).get(m, 0),
              "succeeded": s.get("by_model", {}).get(m, {}).get("succeeded", 0),
              "failed": s.get("by_model", {}).get(m, {}).get("failed", 0)} for m in models]
    return RunReport("zeta-shadow", outcome, line, "\n".join(md) + "\n", table)


# -- zeta-judge ------------------------------------------------------------------------------------
def judge_report(summary: dict[str, Any]) -> RunReport:
    """The report of one judge run (``flows.judge``: ``return publish(judge_report(result), result)``).

    Reads the judge's counts: ``judge``, ``graded``, ``failures``, and when present ``records``,
    ``selected``, ``mode``, ``stopped``, ``skipped`` and ``by_model`` (model -> graded, failures,
    mean_quality)."""
    s = summary
    graded, failures = int(s.get("graded", 0)), int(s.get("failures", 0))
    stopped = s.get("stopped")
    if stopped not in (None, "done"):
        outcome = STOPPED
    elif graded == 0 and failures == 0:
        outcome = NOTHING_TO_GRADE
    else:
        outcome = GRADED
    headline = (f"judge {s.get('judge')} graded {graded} answers, {failures} failures"
            + (f" of {s['selected']} selected from {s['records']} records" if {"selected", "records"} <= set(s) else "")
            + (f", stopped: {stopped}" if stopped not in (None, "done") else ""))
    keys = ("judge", "mode", "rubric_version", "records", "quarantined", "gradable", "selected", "graded", "failures",
            "inconsistent", "skipped_self", "skipped", "stopped", "sample_rate", "max", "seed")
    line = f"zeta-judge {outcome}: {headline}"
    md = [f"# zeta-judge: {outcome}", "", f"**{headline}**", ""]
    md += _table(["", ""], [(k, s[k]) for k in keys if k in s and s[k] is not None])
    table = [{"model": m, **{k: _cell(v) for k, v in f.items()}} for m, f in (s.get("by_model") or {}).items()]
    return RunReport("zeta-judge", outcome, line, "\n".join(md) + "\n", table)
