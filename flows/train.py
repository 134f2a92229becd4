"""Prefect flows of the offline pipeline.

``train_router`` is the learning loop in one flow: load (import a raw benchmark or read a benchmark
table) → split by query → fit features and train CatBoost → check parity and evaluate on held-out
queries → export a versioned artifact → mark it CURRENT.  Every step is one verb-named task; data
passes between tasks in memory (no result persistence, no input hashing).

Outcome logs (``source_format="logs"``) are partial information: they go through the production loop
itself (``flows.production.run_pipeline`` as a subflow: ingestion, the labeled-data minimum, an
off-policy evaluation on the most recent logs, its gate), so ``zeta train --format logs`` refuses and
promotes exactly as ``zeta pipeline`` does, and never promotes on an empty evaluation.

Run it as a script with explicit parameters::

    python -m flows.train --source data/sample/routeprofile --source-format routeprofile
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger

from router_runtime.artifact import current_version, load_artifact, parse_router
from router_runtime.errors import ContractError
from router_runtime.features import default_feature_spec
from router_runtime.pool import ModelInfo, load_pool
from router_runtime.registry import promote as promote_to_current
from router_runtime.registry import version_dir

from . import sources
from ._prefect import step
from .evaluate.gate import FIRST_CANDIDATE, Evidence, gate
from .evaluate.holdout import holdout_comparison, holdout_report
from .export import DEFAULT_COST_WEIGHT, cost_scale, export_artifact, record_decision, router_document, typical_chars
from .sources import SOURCE_FORMATS
from .training import (TRAINING_FAILED, Refusal, TrainParams, TrainedModel, build_pool, quality_refusal,
                       train_quality_model)

__all__ = ["train_router", "SOURCE_FORMATS"]



@step
def load_source(source: str, source_format: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The training table and a description of where it came from (``flows.sources``)."""
    return sources.load_source(source, source_format)


@step
def split_table(table: pl.DataFrame, test_fraction: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """The pipeline's one split; a ``split`` column holding ``train`` and ``test`` is used when present."""
    marked = "split" in table.columns and set(table["split"].unique().to_list()) >= {"train", "test"}
    column = "split" if marked else None
    return sources.split_table(table, column, test_fraction, seed)


@step
def train_model(train: pl.DataFrame, pool: tuple[ModelInfo, ...], params: TrainParams) -> TrainedModel:
    get_run_logger().info("training on %d rows (%d queries, %d models)", len(train),
                          train["query_id"].n_unique(), train["model"].n_unique())
    return train_quality_model(train, default_feature_spec(), pool, params)


@step
def evaluate_model(model: TrainedModel, pool: tuple[ModelInfo, ...], train: pl.DataFrame, test: pl.DataFrame,
                   full_information: bool, cost_weight: float, scale: float) -> dict[str, Any]:
    if not full_information or test.is_empty():
        return {"holdout": None, "note": "logged (partial) feedback: no full-information holdout"}
    doc = dict(router_document(model, pool, cost_weight=cost_weight, scale=scale), version="candidate")
    art = parse_router(json.loads(json.dumps(doc)))
    return {"holdout": holdout_report(art, test, train, cost_weights=(0.0, 0.05, 0.1, 0.2, 0.5, 1.0))}


@step
def export_model(registry: str, model: TrainedModel, pool: tuple[ModelInfo, ...], cost_weight: float,
                 scale: float, manifest: dict[str, Any], chars: float | None = None) -> str:
    return str(export_artifact(registry, model, pool, cost_weight=cost_weight, scale=scale, manifest=manifest,
                               chars=chars))


@step
def decide_promotion(registry: str, path: str, champion: str | None, test: pl.DataFrame, full_information: bool,
                     margin: float, seed: int) -> dict[str, Any]:
    """The gate of a training run: full-information holdout against the champion (see the README)."""
    if champion is None:
        return {"promoted": True, "reason": FIRST_CANDIDATE, "evaluation": None}
    if not full_information or test.is_empty():
        return {"promoted": False, "evaluation": None, "reason": "no full-information holdout to compare "
                "with the champion: use `zeta pipeline` (off-policy gate) or `zeta artifacts promote`"}
    candidate = load_artifact(path)
    ev = holdout_comparison(candidate, load_artifact(version_dir(registry, champion)), test, seed=seed)
    if not ev["comparable"]:
        return {"promoted": True, "evaluation": ev,
                "reason": f"champion {champion} cannot be judged on this data ({ev['reason']}): candidate promoted"}
    evidence = Evidence(ev["diff"], ev["ci_low"], ev["ci_high"], measure="utility",
                        where=f" on {ev['n']} held-out queries")
    promoted, reason = gate(champion, evidence, margin=margin)
    return {"promoted": promoted, "evaluation": ev, "reason": reason}


@flow(name="zeta-train-router")
def train_router(source: str, source_format: str = "table", registry: str = "artifacts", pool: str | None = None,
                 seed: int = 0, test_fraction: float = 0.3, iterations: int = 300, depth: int | None = None,
                 learning_rate: float | None = None, cost_weight: float = DEFAULT_COST_WEIGHT,
                 promote: bool = True, margin: float = 0.0, static_embedding: int = 0) -> dict[str, Any]:
    """Train a router from ``source`` and write a new artifact version into ``registry``.

    With ``promote``, the new version becomes CURRENT when there is no champion yet, or when on the
    held-out queries its mean utility beats the champion's with the lower end of a 95% paired
    bootstrap interval above ``margin``.  The decision and its reason go into the manifest and
    ``<registry>/reports/<version>.json`` either way.
    """
    if source_format == "logs":
        if static_embedding:
            raise ContractError("static_embedding", "training on outcome logs (the pipeline cycle) does not take a "
                                                    "static-embedding feature yet; train on a table")
        return _train_on_logs(source, registry, pool, seed, iterations, cost_weight, promote, margin)
    table, provenance = load_source(source, source_format)
    declared = _declared_pool(source, source_format, pool, set(table["model"].unique().to_list()))
    train, test, split = split_table(table, test_fraction, seed)
    full_pool = build_pool(train, declared)
    params = TrainParams(iterations=iterations, depth=depth, learning_rate=learning_rate, seed=seed,
                         static_embedding=static_embedding)
    parent = current_version(registry) if Path(registry).exists() else None
    refusal = quality_refusal(train)
    if refusal is None:
        try:
            model = train_model(train, full_pool, params)
        except Exception as exc:  # CatBoost or the parity check: a named reason, the champion keeps serving
            refusal = Refusal(TRAINING_FAILED, f"training failed: {type(exc).__name__}: {exc}")
    if refusal is not None:
        return {"version": None, "path": None, "promoted": False, "parent_version": parent,
                "reason": f"no quality model: {refusal.reason}; champion {parent or '(none)'} kept",
                "refusal": refusal.to_json(), "metrics": {"holdout": None}, "rows": 0}
    trained = train["model"].unique().to_list()
    scale = cost_scale(full_pool, trained, train["query"].str.len_chars().to_numpy())
    metrics = evaluate_model(model, full_pool, train, test, provenance["full_information"], cost_weight, scale)
    manifest = {
        "training": {**provenance, "rows": model.rows, "train_queries": train["query_id"].n_unique(),
                     "test_queries": test["query_id"].n_unique(), "models": sorted(trained),
                     "params": (model.params or params).to_json(), "test_fraction": test_fraction,
                     "split": split},
        "metrics": metrics,
        "parent_version": parent,
    }
    path = export_model(registry, model, full_pool, cost_weight, scale, manifest,
                        typical_chars(train["query"].str.len_chars().to_numpy()))
    version = Path(path).name
    decision = {"promoted": False, "reason": "promote=False: written, CURRENT left alone", "evaluation": None}
    if promote:
        decision = decide_promotion(registry, path, parent, test, provenance["full_information"], margin, seed)
    record_decision(registry, path, {k: v for k, v in decision.items() if k != "evaluation"},
                    decision["evaluation"] or {})
    if decision["promoted"]:
        promote_to_current(registry, version, reason=decision["reason"])
    return {"version": version, "path": path, "promoted": decision["promoted"], "reason": decision["reason"],
            "parent_version": parent, "metrics": metrics, "rows": model.rows, "refusal": None,
            "parity_max_abs_diff": model.parity_max_abs_diff}


def _declared_pool(source: str, source_format: str, pool: str | None, models: set[str]) -> tuple[ModelInfo, ...]:
    """The pool file's models; for a public data set, completed by what the data set says about the
    ``models`` of its table (size, family, benchmark score: ``importers.DESCRIPTOR_SOURCES``), which the
    descriptor prior learns from.  A pool file's declaration of a model wins over the data set's."""
    from .importers import DESCRIPTOR_SOURCES, benchmark_descriptors

    declared = load_pool(pool) if pool else ()
    if source_format not in DESCRIPTOR_SOURCES:
        return tuple(declared)
    described = {m.name: m for m in benchmark_descriptors(source, source_format) if m.name in models}
    out = []
    for m in declared:
        d = described.pop(m.name, None)
        if d is not None:  # the pool file's fields win; the data set fills in what it leaves out
            m = replace(m, size_b=m.size_b if m.size_b is not None else d.size_b, extra={**d.extra, **m.extra})
        out.append(m)
    return (*out, *described.values())


def _train_on_logs(logs: str, registry: str, pool: str | None, seed: int, iterations: int, cost_weight: float,
                   promote: bool, margin: float) -> dict[str, Any]:
    """Outcome logs: one cycle of the production loop, its summary in this flow's shape."""
    from .production import run_pipeline  # the loop's own flow, as a subflow

    s = run_pipeline(logs=logs, registry=registry, pool=pool, seed=seed, iterations=iterations,
                     cost_weight=cost_weight, margin=margin, settle_seconds=0, promote_candidate=promote)
    return {**s, "version": s["candidate_version"], "path": s["candidate_path"], "parent_version": s["champion_version"],
            "metrics": {"holdout": None, "offpolicy": s.get("ope"), "full_information": s.get("full_information")},
            "rows": s.get("rows", 0)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=train_router.__doc__)
    ap.add_argument("--source", required=True)
    ap.add_argument("--source-format", default="table", choices=SOURCE_FORMATS)
    ap.add_argument("--registry", default="artifacts")
    ap.add_argument("--pool")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(json.dumps(train_router(a.source, a.source_format, a.registry, a.pool, a.seed), indent=1, default=str))


if __name__ == "__main__":
    import sys

    from .cli import run_script

    sys.exit(run_script(main, "python -m flows.train"))
