"""Issue 12, session 6: the grouped ranking objectives of item 2, on 5 seeds of every set.  The first
pass ran QueryRMSE on seed 0 only and never ran YetiRank or PairLogit, because their scores are not in
quality units and the cost sweep trades quality against cost.

Every learner is the project's per-(query, model) CatBoost (study.cb_long: default FeatureSpec,
identity one-hot with weight 3, the project's capacity), grouped by query, with the pool's linear
cost.  A per-query constant does not change which model wins a query at any cost weight, so only the
scale of the scores matters.  `qrmse` is in quality units already.  For `yeti` and `pairlogit` the
score is multiplied by one factor b >= 0, the least-squares slope of the train part's within-query
centred quality on the within-query centred score (fitted on the train part only).  `long` is the
same learner with RMSE, the control.  `ens_router_qrmse` / `ens_router_yeti`: the project router's
predicted quality averaged with `qrmse` / `yeti`, with the router's own cost prediction.

    PYTHONPATH=$PWD .venv/bin/python tests/studies/routing_plateau/study_y.py --sets rp,hm,dc
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import seeds_loop  # noqa: E402
import study  # noqa: E402
import study_s  # noqa: E402

from flows.benchmark_eval import split_benchmark  # noqa: E402
from flows.metrics import sweep_curve  # noqa: E402


def _centred(a):
    return a - a.mean(axis=1, keepdims=True)


def in_quality_units(score_tr, q_tr, score_te):
    """score_te scaled by the slope of within-query centred quality on within-query centred score."""
    x, y = _centred(score_tr).ravel(), _centred(q_tr).ravel()
    b = max(float(x @ y) / max(float(x @ x), 1e-12), 0.0)
    return b * score_te


def run(setkey, seed):
    name, load = study_s.SETS[setkey]
    train, test, _ = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    ctr = np.array([len(q) for q in tr.queries])
    cost = study.lin_cost(tr, ctr, np.array([len(q) for q in te.queries]))
    xtr, xte = study.base_features(tr.queries, [tr.queries, te.queries])
    both = np.vstack([xtr, xte])
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")}
    rows["long"] = study.score(curves, curve=sweep_curve(study.cb_long(xtr, tr.quality, xte, seed), cost,
                                                         te.quality, te.cost, scale))
    qr = study.cb_long(xtr, tr.quality, xte, seed, loss="QueryRMSE")
    rows["qrmse"] = study.score(curves, curve=sweep_curve(qr, cost, te.quality, te.cost, scale))
    rq, rc = extra["router_pred"]
    # the project router averaged with a grouped learner (a per-query offset changes no decision)
    rows["ens_router_qrmse"] = study.score(curves, curve=sweep_curve((rq + qr) / 2, rc, te.quality, te.cost, scale))
    for key, loss in (("yeti", "YetiRank"), ("pairlogit", "PairLogit")):
        s = study.cb_long(xtr, tr.quality, both, seed, loss=loss)
        pred = in_quality_units(s[:len(xtr)], tr.quality, s[len(xtr):])
        rows[key] = study.score(curves, curve=sweep_curve(pred, cost, te.quality, te.cost, scale))
        if key == "yeti":
            rows["ens_router_yeti"] = study.score(curves, curve=sweep_curve((rq + pred) / 2, rc, te.quality,
                                                                            te.cost, scale))
    return {"rows": rows}


def main():
    seeds_loop.run_sets(run, "results_y", "rp,hm,dc")


if __name__ == "__main__":
    main()
