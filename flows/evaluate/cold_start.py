"""Leave-one-model-out: how well the descriptor prior ranks models it has never seen.

    python -m flows.evaluate.cold_start --source ../shared/data/routeprofile --format routeprofile
    python -m flows.evaluate.cold_start --source ../shared/data/llmrouter_dcrouter --format dcrouter

Per seed: a query split by the seeded hash (``flows.sources.split_table`` without a split column, so
each seed draws other test queries); the feature statistics fitted on the train part; then, for each
model M, the prior trained exactly as ``zeta train`` trains it (``flows.prior.train_descriptor_prior``)
on the train rows of every model but M (M's outcomes removed entirely, M absent from its pool), and
M's quality predicted on the test queries from M's descriptors alone (``flows.importers.
benchmark_descriptors``).  Reported per seed, then mean ± std over seeds:

- ``spearman_prior``: Spearman between predicted and true mean test quality over the held-out models;
- ``spearman_size``: the same for "bigger is better" (predicted quality = size_b); and for
  ``benchmark_score`` where the data set gives one;
- ``per_query_prior``: per test query, Spearman across models between predicted and true quality,
  averaged over the queries whose true qualities are not all equal.

A constant prior (what every model without outcomes got before the prior) ranks nothing: its Spearman
is undefined, counted as 0.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Sequence

import numpy as np
import polars as pl

from router_runtime.features import default_feature_spec

__all__ = ["spearman", "leave_one_model_out", "cold_start_study"]


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson on average ranks); NaN when either side is constant."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("spearman needs two sequences of the same length >= 2")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / den if den > 0 else float("nan")


def leave_one_model_out(table: pl.DataFrame, descriptors: Sequence[Any], seed: int,
                        test_fraction: float = 0.3) -> dict[str, Any]:
    from ..features import fit_feature_spec
    from ..prior import prior_offsets, train_descriptor_prior
    from ..sources import split_table
    from ..training import build_pool

    train, test, _ = split_table(table, None, test_fraction, seed)
    models = sorted(train["model"].unique().to_list())
    described = {m.name: m for m in descriptors}
    missing = [m for m in models if m not in described]
    if missing:
        raise ValueError(f"no descriptors for {missing}")
    spec = fit_feature_spec(default_feature_spec(), train.unique("query_id", keep="first")["query"])
    pred_mean, true_mean, per_query, chosen = {}, {}, {}, {}
    for held in models:
        rest = train.filter(pl.col("model") != held)
        pool = build_pool(rest, [described[m] for m in models if m != held])
        prior = train_descriptor_prior(rest, pool)
        chosen[held] = {"prior": prior.chosen, "selection": prior.selection}
        rows = test.filter(pl.col("model") == held).sort("query_id")
        # The predicted offset from the average model on each query (what ranks models); 0 for every
        # query when the selection found no prior better than a constant.
        q = prior_offsets(prior.ensemble, rows, spec, [*pool, described[held]])
        y = rows["quality"].to_numpy().astype(np.float64)
        pred_mean[held], true_mean[held] = float(q.mean()), float(y.mean())
        per_query[held] = dict(zip(rows["query_id"].to_list(), zip(q.tolist(), y.tolist())))
    names = list(models)
    out: dict[str, Any] = {
        "seed": seed, "models": len(names), "test_queries": test["query_id"].n_unique(),
        "predicted_mean": pred_mean, "true_mean": true_mean, "chosen": chosen,
        "spearman_prior": spearman([pred_mean[m] for m in names], [true_mean[m] for m in names]),
        "spearman_size": spearman([described[m].size_b or 0.0 for m in names], [true_mean[m] for m in names]),
    }
    scores = [described[m].extra.get("benchmark_score") for m in names]
    if all(s is not None for s in scores):
        out["spearman_benchmark_score"] = spearman(scores, [true_mean[m] for m in names])
    rhos = []
    for qid in sorted(set.intersection(*(set(per_query[m]) for m in names))):
        p = [per_query[m][qid][0] for m in names]
        t = [per_query[m][qid][1] for m in names]
        r = spearman(p, t)
        if len(set(t)) > 1:
            rhos.append(0.0 if math.isnan(r) else r)  # a constant prediction ranks nothing
    out["per_query_prior"] = float(np.mean(rhos)) if rhos else float("nan")
    out["per_query_queries"] = len(rhos)
    return out


def cold_start_study(table: pl.DataFrame, descriptors: Sequence[Any], seeds: Sequence[int] = (0, 1, 2, 3, 4),
                     test_fraction: float = 0.3) -> dict[str, Any]:
    runs = [leave_one_model_out(table, descriptors, s, test_fraction) for s in seeds]
    keys = [k for k in ("spearman_prior", "spearman_size", "spearman_benchmark_score", "per_query_prior")
            if all(k in r for r in runs)]
    summary = {}
    for k in keys:
        v = np.array([0.0 if math.isnan(r[k]) else r[k] for r in runs])
        summary[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return {"runs": runs, "summary": summary, "seeds": list(seeds),
            "statement": "leave-one-model-out on the test part of a seeded query split; a constant prior "
                         "has Spearman 0 (undefined)"}


def main(argv: list[str] | None = None) -> None:
    from ..importers import benchmark_descriptors
    from ..sources import load_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True)
    ap.add_argument("--format", required=True, choices=("routeprofile", "dcrouter"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    a = ap.parse_args(argv)
    table, _ = load_table(a.source, a.format)
    result = cold_start_study(table, benchmark_descriptors(a.source, a.format), a.seeds)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    import sys

    from ..cli import run_script

    sys.exit(run_script(main, "python -m flows.evaluate.cold_start"))
