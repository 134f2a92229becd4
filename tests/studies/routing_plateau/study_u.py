"""Issue 12, session 5: seed bagging (mean of the router's predicted quality over 5 CatBoost seeds,
same data, same features) alone and with the task blend of study_t.py.

    PYTHONPATH=$PWD .venv/bin/python tests/studies/routing_plateau/study_u.py --sets rp,hm,dc
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
import study_t  # noqa: E402

from flows.benchmark_eval import split_benchmark  # noqa: E402
from flows.metrics import sweep_curve  # noqa: E402

BAG = 5


def run(setkey, seed):
    name, load = study_s.SETS[setkey]
    train, test, _ = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    pq, pc = extra["router_pred"]
    preds = [pq] + [study_s.fit_predict(train, te, "none", 1.0, seed + 1000 * b, scale)[0] for b in range(1, BAG)]
    bag = np.mean(preds, axis=0)
    tm = study_t.task_means(train, test, te)
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")}
    rows["bag5"] = study.score(curves, curve=sweep_curve(bag, pc, te.quality, te.cost, scale))
    if tm is not None:
        rows["bag5_blend0.5"] = study.score(curves, curve=sweep_curve(0.5 * bag + 0.5 * tm, pc, te.quality, te.cost, scale))
    return {"rows": rows}


def main():
    seeds_loop.run_sets(run, "results_u", "rp,hm")


if __name__ == "__main__":
    main()
