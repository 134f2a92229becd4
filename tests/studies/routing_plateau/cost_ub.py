"""Issue 12, third pass: the cost side's upper bound on RouteProfile: the router (and the task blend) with
the TRUE per-query cost of each model in place of its prediction.  `PYTHONPATH=$PWD python cost_ub.py`."""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import study, study_s, study_t
import numpy as np
from flows.benchmark_eval import split_benchmark
from flows.metrics import sweep_curve
for s in range(5):
    name, load = study_s.SETS['rp']
    train, test, _ = split_benchmark(load(), None, 0.3, s)
    tr, te, scale = study.prepare(name, train, test, s)
    curves, extra = study.base_curves(train, test, tr, te, scale, s)
    pq, pc = extra["router_pred"]
    tm = study_t.task_means(train, test, te)
    out = {}
    for lab, q, c in (("router", pq, pc), ("router_truecost", pq, te.cost), ("blend_truecost", 0.5*pq+0.5*tm, te.cost),
                      ("task_truecost", tm, te.cost)):
        r = study.score(curves, curve=sweep_curve(q, c, te.quality, te.cost, scale))
        out[lab] = (round(r['gain_aiq'],3), r['beats_aiq'], r['beats_q'])
    print(s, out, flush=True)
