"""Issue 12, session 6: can inner validation tell where YetiRank pays?  study_y.py found YetiRank above
the RMSE learner on DCRouter in 5 of 5 seeds and below it on RouteProfile and the hand-made table.  On
3 inner folds of the train part (grouped by query, study_s.inner_folds), both learners are fitted on
two folds and scored on the third (normalized AIQ gain against single models and oracle).
`sel_yeti` takes YetiRank only when it is ahead in every fold, otherwise RMSE (`long`); the inner
gains and the choice are kept per seed.

    PYTHONPATH=$PWD .venv/bin/python tests/studies/routing_plateau/study_z.py --sets hm,rp,dc
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
import study_y  # noqa: E402

from flows.benchmark_eval import split_benchmark  # noqa: E402
from flows.metrics import aiq, normalized_gain, sweep_curve  # noqa: E402


def fit_both(tr, te, seed):
    """(RMSE prediction, YetiRank prediction in quality units, linear cost) on te, fitted on tr."""
    cost = study.lin_cost(tr, np.array([len(q) for q in tr.queries]), np.array([len(q) for q in te.queries]))
    xtr, xte = study.base_features(tr.queries, [tr.queries, te.queries])
    rmse = study.cb_long(xtr, tr.quality, xte, seed)
    s = study.cb_long(xtr, tr.quality, np.vstack([xtr, xte]), seed, loss="YetiRank")
    return rmse, study_y.in_quality_units(s[:len(xtr)], tr.quality, s[len(xtr):]), cost


def inner_gains(train, seed):
    out = []
    for itr, ite in study_s.inner_folds(train, seed):
        tr, te, scale = study.prepare("inner", itr, ite, seed)
        singles = np.vstack([[[te.cost[:, j].mean(), te.quality[:, j].mean()]] for j in range(len(te.models))])
        curves = {"single_models": singles, "oracle": sweep_curve(te.quality, te.cost, te.quality, te.cost, scale)}
        rmse, yeti, cost = fit_both(tr, te, seed)
        curves["long"] = sweep_curve(rmse, cost, te.quality, te.cost, scale)
        curves["yeti"] = sweep_curve(yeti, cost, te.quality, te.cost, scale)
        a = aiq(curves)
        out.append({k: normalized_gain(a[k], a["single_models"], a["oracle"]) for k in ("long", "yeti")})
    return out


def run(setkey, seed):
    name, load = study_s.SETS[setkey]
    train, test, _ = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, _ = study.base_curves(train, test, tr, te, scale, seed)
    rmse, yeti, cost = fit_both(tr, te, seed)
    inner = inner_gains(train, seed)
    pick = "yeti" if all(g["yeti"] > g["long"] for g in inner) else "long"
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")}
    rows["long"] = study.score(curves, curve=sweep_curve(rmse, cost, te.quality, te.cost, scale))
    rows["yeti"] = study.score(curves, curve=sweep_curve(yeti, cost, te.quality, te.cost, scale))
    rows["sel_yeti"] = rows[pick]
    return {"rows": rows, "inner": inner, "pick": pick}


def main():
    seeds_loop.run_sets(run, "results_z", "hm,rp,dc")


if __name__ == "__main__":
    main()
