"""Held-out evaluation of an artifact on a full-information benchmark table.

Predictions come from the runtime itself (``router_runtime``), so what is measured is what ships.
Baselines on the same queries: the best single model (chosen on the training part), the cheapest
model, and the oracle (per query the best true quality, ties to the lowest cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import polars as pl

from router_runtime.artifact import Artifact
from router_runtime.router import Router

from .bootstrap import bootstrap_sums, percentile_interval

__all__ = ["QualityMatrix", "quality_matrix", "predicted_matrix", "route_at", "holdout_report", "holdout_comparison"]


@dataclass
class QualityMatrix:
    query_ids: list[str]
    queries: list[str]
    models: list[str]
    quality: np.ndarray   # (n_queries, n_models) true quality
    cost: np.ndarray      # (n_queries, n_models) true cost


def quality_matrix(table: pl.DataFrame, models: Sequence[str] | None = None) -> QualityMatrix:
    """Pivot a validated full-information table into query x model matrices."""
    models = sorted(table["model"].unique().to_list()) if models is None else list(models)
    t = table.filter(pl.col("model").is_in(models))
    q = t.pivot(on="model", index=["query_id", "query"], values="quality").sort("query_id")
    c = t.pivot(on="model", index=["query_id", "query"], values="cost").sort("query_id")
    return QualityMatrix(q["query_id"].to_list(), q["query"].to_list(), models,
                         q.select(models).to_numpy().astype(np.float64),
                         c.select(models).to_numpy().astype(np.float64))


def predicted_matrix(artifact: Artifact, m: QualityMatrix) -> tuple[np.ndarray, np.ndarray]:
    """The runtime's predicted quality and expected cost for every (query, model) of ``m``."""
    router = Router(artifact, use_numpy=True)
    pq = np.empty_like(m.quality)
    pc = np.empty_like(m.cost)
    for i, query in enumerate(m.queries):
        d = router.decide(query, candidates=m.models, cost_weight=0.0)
        for j, name in enumerate(m.models):
            s = d.score(name)
            pq[i, j] = s.quality
            pc[i, j] = s.cost
    return pq, pc


def route_at(pq: np.ndarray, pc: np.ndarray, cost_weight: float, cost_scale: float) -> np.ndarray:
    """Chosen column per row under the runtime's rank rule (``router_runtime.policy.rank_key``): the
    highest utility, compared exactly as the runtime compares it, then the cheaper, then the name.

    The utility is the runtime's expression in the runtime's order of operations
    (``quality - cost_weight * cost / cost_scale``), so a row's choice is the model ``Router.decide``
    would pick from the same predictions.  Columns are sorted by model name, so among exact ties in
    utility and cost the lowest column index is the name order.  Vectorized; ``tests/pipeline`` checks
    it against ``min(..., key=rank_key)`` on near-ties.
    """
    util = pq - cost_weight * pc / cost_scale
    best = util.max(axis=1, keepdims=True)
    masked = np.where(util == best, pc, np.inf)
    return masked.argmin(axis=1)


def _pick(m: QualityMatrix, cols: np.ndarray) -> dict[str, float]:
    rows = np.arange(len(cols))
    return {"quality": float(m.quality[rows, cols].mean()), "cost": float(m.cost[rows, cols].mean())}


def holdout_report(artifact: Artifact, test: pl.DataFrame, train: pl.DataFrame,
                   cost_weights: Sequence[float] = (0.0,)) -> dict[str, Any]:
    """Router (at the artifact's default cost weight and at ``cost_weights``) vs baselines on ``test``."""
    trained = [m.name for m in artifact.pool if artifact.knows(m.name)]
    m = quality_matrix(test, trained)
    pq, pc = predicted_matrix(artifact, m)
    scale = artifact.policy.cost_scale
    train_means = (train.filter(pl.col("model").is_in(trained)).group_by("model")
                   .agg(pl.col("quality").mean(), pl.col("cost").mean()).sort("model"))
    best_single = train_means.sort(["quality", "cost"], descending=[True, False])["model"][0]
    cheapest = train_means.sort("cost")["model"][0]
    n = len(m.query_ids)
    best_q = m.quality.max(axis=1, keepdims=True)
    oracle_cols = np.where(m.quality == best_q, m.cost, np.inf).argmin(axis=1)
    report = {
        "n_test_queries": n,
        "models": m.models,
        "router": {"cost_weight": artifact.policy.cost_weight,
                   **_pick(m, route_at(pq, pc, artifact.policy.cost_weight, scale))},
        "router_sweep": [{"cost_weight": float(w), **_pick(m, route_at(pq, pc, w, scale))} for w in cost_weights],
        "best_single": {"model": best_single, **_pick(m, np.full(n, m.models.index(best_single)))},
        "cheapest": {"model": cheapest, **_pick(m, np.full(n, m.models.index(cheapest)))},
        "oracle": _pick(m, oracle_cols),
        "rmse": float(np.sqrt(np.mean((pq - m.quality) ** 2))),
    }
    return report


def holdout_comparison(candidate: Artifact, champion: Artifact, test: pl.DataFrame, *, n_bootstrap: int = 1000,
                       level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Candidate vs champion on the same full-information test queries: each decides at its own
    default cost weight among the table's models; both are judged by the candidate's utility
    (true quality − λ · true cost / cost_scale); paired bootstrap CI of the mean difference."""
    m = quality_matrix(test)
    outside = sorted(info.name for info in champion.pool if champion.knows(info.name) and info.name not in m.models)
    lam, scale = candidate.policy.cost_weight, candidate.policy.cost_scale
    util = m.quality - lam * m.cost / scale
    rows = np.arange(len(m.queries))
    choices = {}
    for name, art in (("candidate", candidate), ("champion", champion)):
        router = Router(art, use_numpy=True)
        picks = [router.decide(q, candidates=m.models).model for q in m.queries]
        if any(p not in m.models for p in picks):
            return {"comparable": False, "reason": f"the {name} chose models outside the table"}
        choices[name] = np.asarray([m.models.index(p) for p in picks])
    diff = util[rows, choices["candidate"]] - util[rows, choices["champion"]]
    lo, hi = percentile_interval(bootstrap_sums(diff[:, None], n_bootstrap, seed)[:, 0] / len(diff), level)
    return {"comparable": True, "n": len(diff), "reward": f"quality - {lam:g} x cost / {scale:.6g}",
            "candidate": float(util[rows, choices["candidate"]].mean()),
            "champion": float(util[rows, choices["champion"]].mean()), "diff": float(diff.mean()),
            "ci_low": float(lo), "ci_high": float(hi), "level": level, "n_bootstrap": n_bootstrap,
            "agreement": float(np.mean(choices["candidate"] == choices["champion"])),
            "champion_models_outside_table": outside}
