"""The direct full-information comparison on shadow rows: candidate vs champion where several models
answered the same logged query.

A shadow record (``shadow_of``: the decision it re-ran on another model) and its original form one
query answered by several models.  Where at least two of those answers are labeled, both routers choose
among exactly the labeled models of that query (the only choices whose outcome is known) and are
judged on the labeled quality and on the utility ``quality − λ · cost / cost_scale`` (the candidate's
λ and scale, like the off-policy estimates).  No propensity is involved: this is a measurement, not an
estimate, on the queries the shadow replay sampled, so it sits beside the off-policy estimates (which
leave shadow records out) rather than replacing them.  The paired bootstrap is the pipeline's one
(``flows.evaluate.bootstrap``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from router_runtime.artifact import Artifact
from router_runtime.router import Router

from .bootstrap import bootstrap_sums, percentile_interval

__all__ = ["shadow_groups", "full_information_comparison"]


def shadow_groups(rows: pl.DataFrame) -> pl.DataFrame:
    """Labeled training rows (``flows.curated.training_columns``) grouped by the decision they answer:
    one row per query with at least two labeled models and a shadow among them; columns ``group``
    (the original decision_id), ``query``, ``models``, ``quality``, ``cost`` (lists, one entry per model)."""
    empty = pl.DataFrame(schema={"group": pl.String, "query": pl.String, "models": pl.List(pl.String),
                                 "quality": pl.List(pl.Float64), "cost": pl.List(pl.Float64)})
    if rows.is_empty() or "shadow_of" not in rows.columns or rows["shadow_of"].is_null().all():
        return empty
    labeled = (rows.filter(pl.col("quality").is_not_null() & pl.col("query").is_not_null())
               .with_columns(pl.coalesce("shadow_of", "query_id").alias("group"))
               .sort("group", pl.col("shadow_of").is_not_null(), "ts", "query_id")
               .unique(["group", "model"], keep="first", maintain_order=True))  # one answer per model
    return (labeled.group_by("group", maintain_order=True)
            .agg(pl.col("query").first(), pl.col("model").alias("models"), "quality", "cost",
                 pl.col("shadow_of").is_not_null().any().alias("_shadow"))
            .filter(pl.col("_shadow") & (pl.col("models").list.len() >= 2)).drop("_shadow"))


def _choices(art: Artifact, groups: pl.DataFrame) -> list[int]:
    router = Router(art, use_numpy=True)
    out = []
    for query, models in zip(groups["query"].to_list(), groups["models"].to_list()):
        d = router.decide(query, candidates=models)
        out.append(models.index(d.model) if d.model in models else -1)
    return out


def full_information_comparison(candidate: Artifact, champion: Artifact | None, rows: pl.DataFrame, *,
                                seed: int = 0, n_bootstrap: int = 1000, level: float = 0.95) -> dict[str, Any] | None:
    """Candidate (and champion) on the shadow groups of ``rows``; None when there are none."""
    groups = shadow_groups(rows)
    if groups.is_empty():
        return None
    lam, scale = candidate.policy.cost_weight, candidate.policy.cost_scale
    quality = groups["quality"].to_list()
    cost = groups["cost"].to_list()

    def judged(choice: list[int]) -> tuple[np.ndarray, np.ndarray]:
        q = np.array([quality[i][c] if c >= 0 else np.nan for i, c in enumerate(choice)])
        u = np.array([quality[i][c] - lam * cost[i][c] / scale if c >= 0 else np.nan for i, c in enumerate(choice)])
        return q, u

    cq, cu = judged(_choices(candidate, groups))
    out: dict[str, Any] = {
        "n_queries": len(groups), "n_rows": int(groups["models"].list.len().sum()),
        "reward": f"quality - {lam:g} x cost / {scale:.6g}",
        "note": "both routers choose among the labeled answers of each shadowed query",
        "candidate": {"quality": float(np.nanmean(cq)), "utility": float(np.nanmean(cu))},
        "champion": None, "difference": None}
    if champion is not None:
        hq, hu = judged(_choices(champion, groups))
        out["champion"] = {"quality": float(np.nanmean(hq)), "utility": float(np.nanmean(hu))}
        diff = cu - hu
        ok = ~np.isnan(diff)
        d = diff[ok]
        lo, hi = (percentile_interval(bootstrap_sums(d[:, None], n_bootstrap, seed)[:, 0] / len(d), level)
                  if len(d) else (float("nan"), float("nan")))
        out["difference"] = {"utility": float(d.mean()) if len(d) else None, "ci_low": float(lo),
                             "ci_high": float(hi), "level": level, "n": int(ok.sum()),
                             "quality": float(np.nanmean(cq - hq))}
    return out
