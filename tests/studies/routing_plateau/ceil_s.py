"""Issue 12, helper S: the text-only ceiling of per-task routing on routeprofile (task inferred by a CatBoost
MultiClass on the base features). Run from the clone root:
PYTHONPATH=$PWD /work/main/.venv/bin/python tests/studies/routing_plateau/ceil_s.py"""
import sys, numpy as np
sys.path.insert(0, "tests/studies/routing_plateau")
import study
from catboost import CatBoostClassifier
from flows.benchmark_eval import split_benchmark
from flows.metrics import sweep_curve
from flows.evaluate.baselines import task_predictions
t = study.SETS["rp"][1]()
to = dict(t.select("query_id", "task").unique("query_id").iter_rows())
for seed in range(5):
    train, test, _ = split_benchmark(t, None, 0.3, seed)
    tr, te, scale = study.prepare("routeprofile", train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    pq, pc = extra["router_pred"]
    ttr = np.array([to[q] for q in tr.query_ids]); tte = np.array([to[q] for q in te.query_ids])
    xb_tr, xb_te = study.base_features(tr.queries, [tr.queries, te.queries])
    m = CatBoostClassifier(iterations=300, depth=4, learning_rate=0.1, thread_count=1, verbose=0, random_seed=0)
    m.fit(xb_tr, ttr); p = m.predict(xb_te).ravel()
    tq, tc, _ = task_predictions(train, te, list(p))
    tq2, tc2, _ = task_predictions(train, te, list(tte))
    pr = m.predict_proba(xb_te); names = list(m.classes_)
    # soft: expected task mean under p(task|x)
    mq = np.vstack([task_predictions(train, te, [n] * len(te.queries))[0][0] for n in names])
    sq = pr @ mq
    res = []
    for lab, q, c in (("router", pq, pc), ("inferred_task_q+rc", tq, pc), ("inferred_task_q+taskc", tq, tc),
                      ("soft_task_q+rc", sq, pc), ("mix.5", 0.5 * sq + 0.5 * pq, pc)):
        s = study.score(curves, curve=sweep_curve(q, c, te.quality, te.cost, scale))
        res.append(f"{lab} {s['gain_aiq']:+.3f}{'W' if s['beats_aiq'] else '.'}{'W' if s['beats_q'] else '.'}")
    print(seed, "acc", round(float(np.mean(p == tte)), 3), "task", f"{study.score(curves, 'task')['gain_aiq']:+.3f}", " | ".join(res), flush=True)
