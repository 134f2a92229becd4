"""Issue 12, session 6: YetiRank with a level.  A YetiRank score has no level, so alone it cannot say
"predicted quality 0.43" as the runtime does.  Here the RMSE learner gives the level and YetiRank
continues the boosting from it: CatBoost's `baseline` is the RMSE model's prediction, and YetiRank
adds K trees.  The added part is scaled into quality units with study_y.in_quality_units, fitted on
the residual q - rmse of the train part.  Both parts are oblivious trees, so the runtime could
evaluate them as one ensemble.

- `r300_yK`: 300 RMSE trees + K YetiRank trees (more trees than today's decision);
- `r200_y100`: 200 + 100, today's 300 trees in all.

    PYTHONPATH=$PWD .venv/bin/python tests/studies/routing_plateau/study_y2.py --sets hm,rp,dc
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
from flows.metrics import sweep_curve  # noqa: E402


def continued(xtr, q, xte, seed, rmse_trees, yeti_trees):
    both = np.vstack([xtr, xte])
    base = study.cb_long(xtr, q, both, seed, iterations=rmse_trees)
    btr, bte = base[:len(xtr)], base[len(xtr):]
    add = study.cb_long(xtr, q, both, seed, loss="YetiRank", iterations=yeti_trees,
                        baseline_tr=btr, baseline_te=np.zeros_like(base))
    return bte + study_y.in_quality_units(add[:len(xtr)], q - btr, add[len(xtr):])


def run(setkey, seed):
    name, load = study_s.SETS[setkey]
    train, test, _ = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, _ = study.base_curves(train, test, tr, te, scale, seed)
    cost = study.lin_cost(tr, np.array([len(q) for q in tr.queries]), np.array([len(q) for q in te.queries]))
    xtr, xte = study.base_features(tr.queries, [tr.queries, te.queries])
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")}
    rows["long"] = study.score(curves, curve=sweep_curve(study.cb_long(xtr, tr.quality, xte, seed), cost,
                                                         te.quality, te.cost, scale))
    for key, r, y in (("r300_y100", 300, 100), ("r300_y300", 300, 300), ("r200_y100", 200, 100)):
        pred = continued(xtr, tr.quality, xte, seed, r, y)
        rows[key] = study.score(curves, curve=sweep_curve(pred, cost, te.quality, te.cost, scale))
    return {"rows": rows}


def main():
    seeds_loop.run_sets(run, "results_y2", "hm,rp,dc")


if __name__ == "__main__":
    main()
