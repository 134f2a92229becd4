"""Issue 12, helper S: where routeprofile's gap to per-task is (quality or cost side). Run from the clone root:
PYTHONPATH=$PWD /work/main/.venv/bin/python tests/studies/routing_plateau/diag_s.py"""
import sys, numpy as np
sys.path.insert(0, "tests/studies/routing_plateau")
import study
from flows.benchmark_eval import split_benchmark
from flows.metrics import sweep_curve
from flows.evaluate.baselines import task_predictions
for seed in range(5):
    name, load = study.SETS["rp"]
    train, test, _ = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    pq, pc = extra["router_pred"]
    task_of = dict(test.select("query_id", "task").unique("query_id").iter_rows())
    tq, tc, _ = task_predictions(train, te, [task_of.get(q) for q in te.query_ids])
    out = []
    for lab, q, c in (("router", pq, pc), ("rq+taskc", pq, tc), ("taskq+rc", tq, pc), ("rq+truec", pq, te.cost), ("taskq+truec", tq, te.cost)):
        s = study.score(curves, curve=sweep_curve(q, c, te.quality, te.cost, scale))
        out.append(f"{lab} {s['gain_aiq']:+.3f}{'W' if s['beats_aiq'] else '.'}")
    print(seed, "task", f"{study.score(curves,'task')['gain_aiq']:+.3f}", " | ".join(out), "cost MAE router", np.abs(pc-te.cost).mean()/te.cost.mean(), "task", np.abs(tc-te.cost).mean()/te.cost.mean(), flush=True)
