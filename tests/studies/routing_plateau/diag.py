import sys, numpy as np
import study
from flows.benchmark_eval import split_benchmark
from flows.baselines import task_predictions
from flows.metrics import sweep_curve
for s in sys.argv[1].split(","):
  for seed in map(int, sys.argv[2].split(",")):
    name, load = study.SETS[s]
    t = load()
    train, test, split = split_benchmark(t, None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    pq, pc = extra["router_pred"]
    task_of = dict(test.select("query_id", "task").unique("query_id").iter_rows())
    tq, tc, _ = task_predictions(train, te, [task_of.get(q) for q in te.query_ids])
    ctr = np.array([len(q) for q in tr.queries]); cte = np.array([len(q) for q in te.queries])
    cl = study.lin_cost(tr, ctr, cte)
    res = {"router": study.score(curves, "router"), "task": study.score(curves, "task"),
           "task_q+lin_c": study.score(curves, curve=sweep_curve(tq, cl, te.quality, te.cost, scale)),
           "router_q+task_c": study.score(curves, curve=sweep_curve(pq, tc, te.quality, te.cost, scale)),
           "router_q+true_c": study.score(curves, curve=sweep_curve(pq, te.cost, te.quality, te.cost, scale)),
           "task_q+true_c": study.score(curves, curve=sweep_curve(tq, te.cost, te.quality, te.cost, scale)),
           "knn": study.score(curves, "knn")}
    print(s, seed, " ".join(f"{k}={v['gain_aiq']:+.3f}/{v['gain_q']:+.3f}" for k, v in res.items()), flush=True)
