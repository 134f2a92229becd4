"""Issue 12, session 5: per-model calibration.  On 3 inner folds of the train part (grouped by query)
the router's out-of-fold predictions are collected; per model, a least-squares line (q ~ a_m + b_m
q_hat, `lin`) or isotonic regression (`iso`, pool-adjacent-violators) maps predicted to observed
quality; the map is applied to the router trained on the whole train part.  A per-model map changes
which model wins a query, so it can change routing, not only the scale.

    PYTHONPATH=$PWD .venv/bin/python tests/studies/routing_plateau/study_w.py --sets rp,hm,dc
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import study  # noqa: E402
import seeds_loop  # noqa: E402
import study_s  # noqa: E402

from flows.benchmark_eval import split_benchmark  # noqa: E402
from flows.metrics import sweep_curve  # noqa: E402


def _pav(x, y):
    """Isotonic (non-decreasing) fit of y on x; returns a function by step interpolation."""
    o = np.argsort(x, kind="mergesort")
    xs, ys = x[o], y[o].astype(float)
    vals, wts, ends = [], [], []
    for xi, yi in zip(xs, ys):
        vals.append(yi); wts.append(1.0); ends.append(xi)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / (wts[-2] + wts[-1])
            w = wts[-2] + wts[-1]
            vals[-2:], wts[-2:], ends[-2:] = [v], [w], [ends[-1]]
    ends, vals = np.array(ends), np.array(vals)
    return lambda q: vals[np.minimum(np.searchsorted(ends, q, side="left"), len(vals) - 1)]


def oof(train, seed):
    """Out-of-fold (predicted, observed) per model over the inner folds."""
    pairs = None
    for itr, ite in study_s.inner_folds(train, seed):
        _, te, scale = study.prepare("inner", itr, ite, seed)
        pq, _ = study_s.fit_predict(itr, te, "none", 1.0, seed, scale)
        if pairs is None:
            pairs = {m: ([], []) for m in te.models}
        for j, m in enumerate(te.models):
            pairs[m][0].extend(pq[:, j]); pairs[m][1].extend(te.quality[:, j])
    return {m: (np.array(a), np.array(b)) for m, (a, b) in pairs.items()}


def run(setkey, seed):
    name, load = study_s.SETS[setkey]
    train, test, _ = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    pq, pc = extra["router_pred"]
    pairs = oof(train, seed)
    lin, iso = np.empty_like(pq), np.empty_like(pq)
    for j, m in enumerate(te.models):
        x, y = pairs[m]
        b, a = np.polyfit(x, y, 1)
        lin[:, j] = a + b * pq[:, j]
        iso[:, j] = _pav(x, y)(pq[:, j])
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")}
    rows["cal_lin"] = study.score(curves, curve=sweep_curve(lin, pc, te.quality, te.cost, scale))
    rows["cal_iso"] = study.score(curves, curve=sweep_curve(iso, pc, te.quality, te.cost, scale))
    return {"rows": rows}


def main():
    seeds_loop.run_sets(run, "results_w", "rp,hm,dc")


if __name__ == "__main__":
    main()
