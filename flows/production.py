"""The production loop as one Prefect flow: ingest → train → evaluate → promote.

``run_pipeline`` ingests new outcome logs into curated Parquet, trains a candidate on the older part
of the curated window (inverse-propensity weighted), estimates off-policy on the most recent part how
the candidate and the champion (the registry's CURRENT) would have done, reports feature drift, and
promotes the candidate only when the gate says so:

- too few labeled outcomes for some model, labels that are all equal, or a training failure of any
  kind → no candidate, the champion keeps serving, the summary names the reason (``refusal``:
  ``flows.training.quality_refusal``); a success without a label is not a quality (``flows.labels``);
- nothing labeled to evaluate on in the recent window → no candidate either (an empty evaluation
  never promotes);
- no champion yet → promote (something must serve);
- effective sample size of the candidate's importance weights below ``min_ess`` → keep the champion
  (too little evidence: the logs rarely took the candidate's choices);
- otherwise promote only when the lower end of the paired bootstrap CI (``level``) of the DR estimate
  of V(candidate) − V(champion) exceeds ``margin``.

The reward on which both are judged is the utility the router optimises,
``quality − λ · cost / cost_scale`` with the candidate's λ and cost scale.  The off-policy estimates
use the labeled rows the logging policy chose (shadow records left out); where shadow replay answered a
logged query on other models too, the evaluation also reports the direct full-information comparison
of both routers on those queries (``flows.evaluate.fullinfo``).  Shadow rows train the quality model
like logged ones (weight 1/propensity = 1; they go to the side of the split of the decision they
shadow).  Labeled and unlabeled counts per quality_source go into the summary and the manifest
(``labels``: ``flows.labels.label_counts``).  Every decision, promoted or
not, goes into the candidate's manifest (key ``promotion``) and into ``<registry>/reports/<version>.json``.

Scale: ingestion is planned as units of the log files and the units are mapped over the flow's task
runner (a bounded thread pool by default; ``run_pipeline.with_options(task_runner=...)``,
``zeta pipeline --task-runner dask`` or ``ZETA_TASK_RUNNER=dask`` for Dask, read when a run starts:
``flows/_prefect.py``, ``flows/runners.py``).
The curated window is read lazily; above ``train_budget`` training rows the candidate trains on a
stratified sample (by model and day, proportional allocation, chosen by a seeded hash of
``decision_id``), and above
``eval_budget`` recent rows the off-policy evaluation runs on such a sample of the recent window
(it scores every row with the router).  Both samples are recorded: ``training.sample`` in the
manifest, ``sample`` in the evaluation of the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from prefect import flow, get_run_logger, unmapped

from router_runtime._lock import exclusive
from router_runtime.artifact import Artifact, current_version, load_artifact
from router_runtime.errors import ZetaError
from router_runtime.features import default_feature_spec
from router_runtime.pool import load_pool
from router_runtime.registry import promote, version_dir
from router_runtime.router import Router

from ._prefect import runner_at_run_time, step
from .curated import default_curated_dir
from .evaluate.drift import drift_report
from .evaluate.fullinfo import full_information_comparison
from .evaluate.gate import Evidence, gate
from .evaluate.offpolicy import deterministic_probs, ope_estimates, paired_difference
from .export import DEFAULT_COST_WEIGHT, cost_scale, export_artifact, record_decision, typical_chars
from .ingest import (CURATED_SCHEMA, IngestPlan, IngestResult, IngestUnit, UnitResult, clean_stale_staging,
                     commit_ingest, ingest_unit, plan_ingest, scan_curated, staging_dir, training_columns)
from .labels import label_counts
from .reports import model_figures, pipeline_report, publish
from .training import (MIN_LABELED_PER_MODEL, TRAINING_FAILED, Refusal, TrainParams, build_pool, labeled_rows,
                       quality_refusal, train_quality_model)
from .weights import PROPENSITY_FLOOR, bounded_training_weights, clip_propensities

__all__ = ["run_pipeline", "evaluate_on_logs", "default_curated_dir"]

NO_EVALUATION = "no_evaluation"
NOT_ENOUGH_DATA = "not_enough_data"
STAGE_FAILED = "stage_failed"   # reading the window, evaluation or recording failed (training: training_failed)
TRAIN_BUDGET = 200_000  # training rows above which the candidate trains on a stratified sample (see README)
EVAL_BUDGET = 20_000    # recent rows above which the off-policy evaluation uses a stratified sample


def _policy_choices(art: Artifact, queries: list[str], candidates: list[list[str]], models: list[str]) -> np.ndarray:
    """Each query's choice as a column of ``models`` (-1 when it chose a model outside them)."""
    router = Router(art, use_numpy=True)
    index = {m: j for j, m in enumerate(models)}
    chosen = np.empty(len(queries), dtype=np.intp)
    for i, (q, cands) in enumerate(zip(queries, candidates)):
        d = router.decide(q, candidates=cands)
        chosen[i] = index.get(d.model, -1)
    return chosen


def evaluate_on_logs(candidate: Artifact, champion: Artifact | None, recent: pl.DataFrame, *, seed: int = 0,
                     n_bootstrap: int = 500, level: float = 0.95) -> dict[str, Any]:
    """Off-policy estimates of candidate and champion on logged rows (full information not needed): the
    labeled rows the logging policy chose itself (shadow records are not its actions), and of those
    only the router's own decisions: a ``sticky`` row kept a conversation on its earlier model
    (session affinity, propensity 1), a choice no router being evaluated would make alone, so it is
    dropped and counted (``sticky_rows_dropped``)."""
    rows = recent.filter(pl.col("query").is_not_null() & pl.col("quality").is_not_null())
    if "shadow_of" in rows.columns:
        rows = rows.filter(pl.col("shadow_of").is_null())
    sticky_dropped = 0
    if "sticky" in rows.columns:
        is_sticky = pl.col("sticky").fill_null(False)
        sticky_dropped = rows.filter(is_sticky).height
        rows = rows.filter(~is_sticky)
    models = sorted({m for c in rows["candidates"].to_list() for m in c} | set(rows["model"].to_list()))
    index = {m: j for j, m in enumerate(models)}
    lam, scale = candidate.policy.cost_weight, candidate.policy.cost_scale
    queries, cands = rows["query"].to_list(), rows["candidates"].to_list()
    actions = np.asarray([index[m] for m in rows["model"].to_list()], dtype=np.intp)
    quality = rows["quality"].to_numpy().astype(np.float64)
    cost = rows["cost"].to_numpy().astype(np.float64)
    rewards = quality - lam * cost / scale
    props, clipped = clip_propensities(rows["propensity"].to_numpy())  # the rule training uses too

    # The candidate's own predicted utilities are the DR reward model.
    router = Router(candidate, use_numpy=True)
    qhat = np.zeros((len(rows), len(models)))
    cand_choice = np.empty(len(rows), dtype=np.intp)
    for i, (q, c) in enumerate(zip(queries, cands)):
        d = router.decide(q, candidates=c)
        for s in d.scores:
            qhat[i, index[s.model]] = (s.quality if s.quality is not None else 0.0) - lam * s.cost / scale
        cand_choice[i] = index[d.model]
    k = len(models)
    cand_probs = deterministic_probs(cand_choice, k)
    est = ope_estimates(actions, rewards, props, cand_probs, qhat, n_bootstrap=n_bootstrap, level=level, seed=seed)
    out: dict[str, Any] = {"n": len(rows), "models": models, "reward": f"quality - {lam:g} x cost / {scale:.6g}",
                           "candidate": est.to_json(), "champion": None, "difference": None,
                           "propensity_floor": {"floor": PROPENSITY_FLOOR, "clipped_rows": clipped},
                           "sticky_rows_dropped": sticky_dropped}
    if champion is not None:
        champ_choice = _policy_choices(champion, queries, cands, models)
        if (champ_choice < 0).any():
            out["champion_note"] = "the champion chose models outside the logged candidates on some rows"
            champ_choice = np.where(champ_choice < 0, cand_choice, champ_choice)
        champ_probs = deterministic_probs(champ_choice, k)
        out["champion"] = ope_estimates(actions, rewards, props, champ_probs, qhat, n_bootstrap=n_bootstrap,
                                        level=level, seed=seed).to_json()
        out["difference"] = paired_difference(actions, rewards, props, cand_probs, champ_probs, qhat,
                                              n_bootstrap=n_bootstrap, level=level, seed=seed)
        out["agreement"] = float(np.mean(cand_choice == champ_choice))
    out["by_model"] = model_figures(models, actions, quality, cost, cand_choice,
                                    champ_choice if champion is not None else None)
    return out


def offpolicy_gate(evaluation: dict[str, Any], champion: str | None, *, margin: float,
                   min_ess: float) -> tuple[bool, str]:
    """The promotion gate (``flows.evaluate.gate``) on ``evaluate_on_logs``'s paired difference."""
    if champion is None:
        return gate(None, None, margin=margin)
    diff = evaluation["difference"]
    evidence = Evidence(diff["diff"], diff["ci_low"], diff["ci_high"],
                        measure=f"{diff['estimator'].upper()} improvement", ess=evaluation["candidate"]["ess"])
    return gate(champion, evidence, margin=margin, min_ess=min_ess)


@step
def plan_ingest_task(logs: str, curated: str, settle_seconds: float) -> IngestPlan:
    return plan_ingest(logs, curated, settle_seconds=settle_seconds)


@step
def ingest_unit_task(unit: IngestUnit, staging: str) -> UnitResult:
    return ingest_unit(unit, staging)


@step
def commit_ingest_task(plan: IngestPlan, results: list[UnitResult]) -> IngestResult:
    r = commit_ingest(plan, results)
    get_run_logger().info("ingested %d, feedback %d (%d without their answer), quarantined %d, duplicates %d from "
                          "%d files (%d units, %d lines by the fast path)", r.ingested, r.feedback,
                          r.feedback_unmatched, r.quarantined, r.duplicates, r.files, len(plan.units),
                          r.fast_path_lines)
    return r


def ingest(logs: str, curated: str, settle_seconds: float) -> IngestResult:
    """Plan, the units in parallel on the flow's task runner, then one commit."""
    clean_stale_staging(curated)  # the cycle holds the store's lock: any staging left is a killed run's
    plan = plan_ingest_task(logs, curated, settle_seconds)
    futures = ingest_unit_task.map(plan.units, unmapped(staging_dir(plan))) if plan.units else []
    return commit_ingest_task(plan, [f.result() for f in futures])


def stratified_sample(lf: pl.LazyFrame, budget: int, seed: int) -> tuple[pl.LazyFrame, dict[str, Any]]:
    """At most about ``budget`` rows of ``lf``: every (model, day) stratum keeps round(n × budget / N)
    rows, those with the smallest seeded hash of ``decision_id`` (proportional allocation, so the logged
    model mix and the spread over days are kept and the inverse-propensity weights stay valid).
    Two passes over light columns, then one filtered read: the text is read only for sampled rows."""
    h = pl.col("decision_id").hash(seed)
    light = lf.select("model", "day", h.alias("_h")).collect()
    n = len(light)
    info: dict[str, Any] = {"population_rows": n, "budget": budget, "seed": seed}
    if n <= budget:
        return lf, {**info, "method": "none: every row", "rows": n}
    frac = budget / n
    thr = (light.group_by("model", "day")
           .agg((pl.len() * frac).round().cast(pl.Int64).alias("quota"), pl.col("_h").sort().alias("hs"))
           .filter(pl.col("quota") > 0)
           .select("model", "day", pl.col("hs").list.get(pl.col("quota") - 1).alias("_thr")))
    chosen = light.join(thr, on=["model", "day"]).filter(pl.col("_h") <= pl.col("_thr"))["_h"]
    del light
    # A predicate on the scanned columns (not a join), so Polars filters while it reads the partitions.
    return lf.filter(h.is_in(chosen.implode())), {
        **info, "method": "stratified by (model, day), proportional allocation, smallest seeded hash of "
        "decision_id per stratum (Polars Expr.hash)", "strata": len(thr)}


def _split_keys(lf: pl.LazyFrame) -> tuple[pl.LazyFrame, str, str]:
    """The (ts, decision_id) columns the window is split by: a shadow record takes those of the decision
    it shadows (when curated), so a query's logged and shadow answers land on the same side."""
    shadows = lf.filter(pl.col("shadow_of").is_not_null()).select("shadow_of").unique().collect()["shadow_of"]
    if shadows.is_empty():
        return lf, "ts", "decision_id"
    origin = (lf.filter(pl.col("decision_id").is_in(shadows.implode()))
              .select(pl.col("decision_id").alias("shadow_of"), pl.col("ts").alias("__zeta_origin_ts")).collect()
              .unique("shadow_of", keep="first"))
    known = pl.col("__zeta_origin_ts").is_not_null()
    lf = (lf.join(origin.lazy(), on="shadow_of", how="left")
          .with_columns(pl.when(known).then(pl.col("__zeta_origin_ts")).otherwise(pl.col("ts")).alias("__zeta_split_ts"),
                        pl.when(known).then(pl.col("shadow_of")).otherwise(pl.col("decision_id"))
                        .alias("__zeta_split_id"))
          .drop("__zeta_origin_ts"))
    return lf, "__zeta_split_ts", "__zeta_split_id"


@step
def load_window(curated: str, holdout_fraction: float, train_budget: int = TRAIN_BUDGET,
                eval_budget: int = EVAL_BUDGET, seed: int = 0
                ) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], dict[str, Any]]:
    """The older part of the curated window (training) and its most recent ``holdout_fraction``
    (evaluation), by (ts, decision_id), each sampled down to its budget; lazily over the partitions."""
    lf = scan_curated(curated)
    if lf is None:
        empty = training_columns(pl.DataFrame(schema=CURATED_SCHEMA).lazy()).collect()
        return empty, empty, {"rows": 0}, {"rows": 0}
    lf, split_ts, split_id = _split_keys(lf)
    # Split and sample by all records; rows without query text are dropped afterwards (training_columns):
    # a filter on the text here would decode every text of the window.
    ts = lf.select(pl.col(split_ts).sort()).collect()[split_ts]
    n = len(ts)
    n_recent = int(round(n * holdout_fraction))
    n_train = n - n_recent
    if n_recent == 0 or n_train == 0:
        cut = None
    else:  # the (ts, decision_id) of the first recent row; ties on ts are split by decision_id
        t0 = ts[n_train]
        before = int((ts < t0).sum())
        ties = lf.filter(pl.col(split_ts) == t0).select(pl.col(split_id).sort()).collect()[split_id]
        cut = (pl.col(split_ts) < t0) | ((pl.col(split_ts) == t0) & (pl.col(split_id) < ties[n_train - before]))
    del ts
    if cut is None:  # everything on one side (or nothing at all)
        none = lf.filter(pl.lit(False))
        sides = (lf if n_recent == 0 else none, lf if n_train == 0 else none)
    else:
        sides = (lf.filter(cut), lf.filter(~cut))
    parts = []
    for side, budget, cands in zip(sides, (train_budget, eval_budget), (False, True)):
        sub, info = stratified_sample(side, budget, seed)
        # Collected before training_columns: its "query is not null" would be pushed into the scan and
        # decode every text of the window.  Training needs no candidate lists (9 strings a row): only
        # the evaluation does.
        cols = ["decision_id", "query", "model", "quality", "quality_source", "success", "error", "cost", "propensity",
                "ts", "shadow_of", "label"]
        sub = sub.select(cols + (["candidates"] if cands else [])).collect()
        frame = training_columns(sub.lazy(), candidates=cands).sort("ts", "query_id").collect()
        parts.append((frame, {**info, "rows": len(frame)}))
    (train, train_info), (recent, recent_info) = parts
    return train, recent, train_info, recent_info


@step
def train_candidate(train: pl.DataFrame, registry: str, pool_file: str | None, params: TrainParams,
                    cost_weight: float, parent: str | None, sample: dict[str, Any] | None = None,
                    labels: dict[str, Any] | None = None) -> str:
    """A candidate artifact: the cost (and latency) models on every training row, the quality model on
    the labeled ones only."""
    declared = load_pool(pool_file) if pool_file else ()
    train, weight_bounds = bounded_training_weights(train)
    full_pool = build_pool(train, declared)
    model = train_quality_model(labeled_rows(train), default_feature_spec(), full_pool, params)
    scale = cost_scale(full_pool, train["model"].unique().to_list(), train["query"].str.len_chars().to_numpy())
    window = {"start": str(train["ts"].min()), "end": str(train["ts"].max())}
    manifest = {"training": {"format": "curated logs", "rows": model.rows, "window": window,
                             "models": sorted(train["model"].unique().to_list()),
                             "params": (model.params or params).to_json(),
                             "weighting": "inverse propensity", "weight_bounds": weight_bounds,
                             "sample": sample},
                "labels": labels, "parent_version": parent}
    return str(export_artifact(registry, model, full_pool, cost_weight=cost_weight, scale=scale, manifest=manifest,
                               chars=typical_chars(train["query"].str.len_chars().to_numpy())))


@step
def evaluate(candidate_path: str, champion_version: str | None, registry: str, recent: pl.DataFrame,
             train: pl.DataFrame, seed: int, sample: dict[str, Any] | None = None) -> dict[str, Any]:
    candidate = load_artifact(candidate_path)
    champion = load_artifact(version_dir(registry, champion_version)) if champion_version else None
    out = evaluate_on_logs(candidate, champion, recent, seed=seed)
    out["sample"] = sample
    out["full_information"] = full_information_comparison(candidate, champion, recent, seed=seed)
    sample = lambda s: s.sample(min(len(s), 20_000), seed=seed).to_list() if len(s) else []  # noqa: E731
    out["drift"] = drift_report(candidate.feature_spec, sample(train["query"]), sample(recent["query"]))
    return out


def _no_candidate(summary: dict[str, Any], reason: str, refusal: Refusal | None = None) -> dict[str, Any]:
    return {**summary, "candidate_version": None, "candidate_path": None, "promoted": False, "ope": None,
            "reason": reason, "refusal": None if refusal is None else refusal.to_json()}


@flow(name="zeta-pipeline", task_runner=runner_at_run_time())
def run_pipeline(logs: str, registry: str = "artifacts", curated: str | None = None, pool: str | None = None,
                 holdout_fraction: float = 0.2, margin: float = 0.0, min_ess: float = 30.0, seed: int = 0,
                 iterations: int = 300, cost_weight: float = DEFAULT_COST_WEIGHT,
                 settle_seconds: float = 60.0, train_budget: int = TRAIN_BUDGET,
                 eval_budget: int = EVAL_BUDGET, promote_candidate: bool = True,
                 min_labeled_per_model: int = MIN_LABELED_PER_MODEL) -> dict[str, Any]:
    """One cycle of the production loop; returns the summary ``zeta pipeline`` prints.

    ``promote_candidate=False`` writes and evaluates the candidate but never moves CURRENT;
    ``min_labeled_per_model`` is the label minimum of ``flows.training.quality_refusal``.

    The cycle holds the curated store's lock and the registry's (``router_runtime._lock``) from the
    first read to the last write: a second ingest or pipeline on either is refused (LockHeldError,
    naming the holder's pid), so two runs never store the same records twice or both promote
    against a champion that one of them has already replaced.

    The run ends in a state named for its outcome (Promoted, NotPromoted, NotEnoughData, StageFailed)
    and publishes its report as Prefect artifacts (``flows/reports.py``)."""
    curated = curated or str(default_curated_dir(logs))
    with exclusive(curated, "curated store"), exclusive(registry, "registry"):
        return _cycle(logs, registry, curated, pool, holdout_fraction, margin, min_ess, seed, iterations,
                      cost_weight, settle_seconds, train_budget, eval_budget, promote_candidate,
                      min_labeled_per_model)


def _labels_of(train: pl.DataFrame, recent: pl.DataFrame, registry: str | None = None) -> dict[str, Any]:
    """Label counts of the whole window (the contract's manifest["labels"]), and of each side; for judge
    labels, the judge's measured agreement (``zeta judge --validate``, kept in the registry's reports)."""
    common = ["model", "quality", "quality_source", "shadow_of", "label"]
    out = {**label_counts(pl.concat([train.select(common), recent.select(common)])),
           "train": label_counts(train), "recent": label_counts(recent)}
    judge = out.get("judge")
    if registry is not None and isinstance(judge, dict) and isinstance(judge.get("model"), str) \
            and isinstance(judge.get("rubric_version"), str) and judge.get("agreement") is None:
        from .judge.validation import judge_manifest_entry

        try:
            judge["agreement"] = judge_manifest_entry(registry, judge["model"], judge["rubric_version"])["agreement"]
        except ZetaError as exc:  # an unreadable validation report is said, not fatal
            judge["agreement"] = {"error": str(exc)}
    return out


def _report_labels(labels: dict[str, Any]) -> dict[str, int]:
    """The window's rows per quality_source (and unlabeled), as the run report's table shows them."""
    return {**labels["by_source"], "unlabeled": labels["unlabeled"]}


def _cycle(logs: str, registry: str, curated: str, pool: str | None, holdout_fraction: float, margin: float,
           min_ess: float, seed: int, iterations: int, cost_weight: float, settle_seconds: float,
           train_budget: int, eval_budget: int, promote_candidate: bool = True,
           min_labeled_per_model: int = MIN_LABELED_PER_MODEL) -> dict[str, Any]:
    ing = ingest(logs, curated, settle_seconds)
    summary: dict[str, Any] = {"ingested": ing.ingested, "feedback": ing.feedback,
                               "feedback_unmatched": ing.feedback_unmatched, "quarantined": ing.quarantined,
                               "duplicates": ing.duplicates, "pending_bytes": ing.pending_bytes,
                               "quarantine_file": ing.quarantine_file, "curated": curated,
                               "ingest_labels": {"records": ing.records, "labels": ing.labels, "shadow": ing.shadow}}
    champion = current_version(registry) if Path(registry).exists() else None
    summary["champion_version"] = champion
    version, path, stage = None, None, "reading the curated window"
    try:
        train, recent, train_sample, eval_sample = load_window(curated, holdout_fraction, train_budget,
                                                               eval_budget, seed)
        labels = summary["labels"] = _labels_of(train, recent, registry)
        samples = {"training": train_sample, "evaluation": eval_sample}
        evaluable = labels["recent"]["labeled"] - int(labeled_rows(recent)["shadow_of"].is_not_null().sum())
        if train.is_empty() or recent.is_empty():
            result = _no_candidate(summary, f"not enough curated data: {len(train)} training and {len(recent)} "
                                   "recent rows", Refusal(NOT_ENOUGH_DATA, "not enough curated data"))
            return publish(pipeline_report(result, labels=_report_labels(labels), samples=samples), result)
        refusal = quality_refusal(train, min_labeled_per_model)
        if refusal is None and evaluable == 0:
            refusal = Refusal(NO_EVALUATION, f"no labeled outcome of the logging policy among the {len(recent)} "
                                             "recent rows: nothing to evaluate a candidate on, so none is trained")
        if refusal is not None:
            result = _no_candidate(summary, f"no quality model: {refusal.reason}; champion {champion or '(none)'} "
                                   "kept", refusal)
            return publish(pipeline_report(result, labels=_report_labels(labels), samples=samples), result)
        params, stage = TrainParams(iterations=iterations, seed=seed), "training"
        path = train_candidate(train, registry, pool, params, cost_weight, champion, train_sample, labels)
        version, stage = Path(path).name, "evaluation"
        evaluation = evaluate(path, champion, registry, recent, train, seed, eval_sample)
        promoted, reason = offpolicy_gate(evaluation, champion, margin=margin, min_ess=min_ess)
        if not promote_candidate:
            promoted, reason = False, f"promotion off: candidate written, CURRENT left alone (the gate said: {reason})"
        decision = {"promoted": promoted, "reason": reason, "champion_version": champion, "margin": margin,
                    "min_ess": min_ess, "evidence": "off-policy (DR, paired bootstrap) on the most recent "
                    f"{holdout_fraction:.0%} of the curated logs"
                    + (f" (a stratified sample of {len(recent)} of {eval_sample['population_rows']} rows)"
                       if eval_sample.get("strata") else "")}
        stage = "recording the decision"
        report = record_decision(registry, path, decision, evaluation, ingest=ing.to_json(), labels=labels)
    except Exception as exc:  # noqa: BLE001
        # Whatever a library raises here (CatBoost, Polars, numpy), the run ends with a named reason,
        # the champion keeps serving, and what was ingested stays ingested for the next run.
        get_run_logger().error("the %s stage failed: %s: %s; champion %s kept", stage, type(exc).__name__, exc,
                               champion)
        refusal = Refusal(TRAINING_FAILED if stage == "training" else STAGE_FAILED,
                          f"{stage} failed: {type(exc).__name__}: {exc}")
        result = {**_no_candidate(summary, f"{refusal.reason}; champion {champion or '(none)'} kept", refusal),
                  "candidate_version": version, "candidate_path": path, "failed_stage": stage}
        return publish(pipeline_report(result), result)
    if promoted:
        try:
            promote(registry, version, reason=reason)
        except ZetaError as exc:  # the candidate must load to be promoted; say so instead of failing silently
            promoted, reason = False, f"promotion refused: {exc}"
    c = evaluation["candidate"]
    result = {**summary, "candidate_version": version, "candidate_path": path, "promoted": promoted,
              "reason": reason, "refusal": None, "rows": labels["train"]["labeled"],
              "ope": {"ips": c["ips"], "snips": c["snips"], "dr": c["dr"], "ci_low": c["ci_low"],
                      "ci_high": c["ci_high"], "ess": c["ess"]},
              "difference": evaluation["difference"], "full_information": evaluation["full_information"],
              "drift_max_psi": evaluation["drift"]["max_psi"], "report": str(report)}
    # What the run did, in Prefect's terms: artifacts, one log line, a named final state (flows/reports.py).
    return publish(pipeline_report(result, evaluation=evaluation, labels=_report_labels(labels), gate=decision,
                                   train_rows=dict(train.group_by("model").len().iter_rows()),
                                   samples=samples), result)
