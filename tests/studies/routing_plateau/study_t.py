"""Issue 12, third pass (session 5): the router told the request's task, as the per-task baseline is.

The per-task baseline reads each test query's task label; the router reads only the text.  Here the
router's predicted quality is blended with the per-task means of the train part for the query's
task: q = a * router + (1 - a) * task_mean (cost: the router's per-query prediction), a chosen on
K=3 inner folds grouped by query inside the train part (`blend_sel`), and fixed a = 0.5
(`blend0.5`).  At serving time this needs the client to send the task (a request field).

    cd <clone> && PYTHONPATH=$PWD /work/main/.venv/bin/python tests/studies/routing_plateau/study_t.py \
        --sets rp,hm,dc --seeds 0,1,2,3,4       -> results_t/<set>_<seed>.json, then --table
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import study  # noqa: E402
import study_s  # noqa: E402

from flows.baselines import task_predictions  # noqa: E402
from flows.benchmark_eval import split_benchmark  # noqa: E402
from flows.metrics import aiq, normalized_gain, sweep_curve  # noqa: E402

ALPHAS = (0.25, 0.5, 0.75, 1.0)


def task_means(train, test, te):
    task_of = dict(test.select("query_id", "task").unique("query_id").iter_rows())
    tp = task_predictions(train, te, [task_of.get(q) for q in te.query_ids])
    return None if tp is None else tp[0]


def inner_alpha(train, seed):
    gains = {a: [] for a in ALPHAS}
    for itr, ite in study_s.inner_folds(train, seed):
        _, te, scale = study.prepare("inner", itr, ite, seed)
        pq, pc = study_s.fit_predict(itr, te, "none", 1.0, seed, scale)
        tm = task_means(itr, ite, te)
        singles = np.vstack([[[te.cost[:, j].mean(), te.quality[:, j].mean()]] for j in range(len(te.models))])
        oracle = sweep_curve(te.quality, te.cost, te.quality, te.cost, scale)
        for a in ALPHAS:
            q = pq if tm is None else a * pq + (1 - a) * tm
            r = aiq({"router": sweep_curve(q, pc, te.quality, te.cost, scale), "single_models": singles,
                     "oracle": oracle})
            gains[a].append(normalized_gain(r["router"], r["single_models"], r["oracle"]))
    mean = {a: float(np.mean(v)) for a, v in gains.items()}
    return max(ALPHAS, key=lambda a: (mean[a], a)), mean


def run(setkey, seed):
    name, load = study_s.SETS[setkey]
    t0 = time.time()
    train, test, _ = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    pq, pc = extra["router_pred"]
    tm = task_means(train, test, te)
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")}
    rows["blend0.5"] = study.score(curves, curve=sweep_curve(0.5 * pq + 0.5 * tm, pc, te.quality, te.cost, scale))
    a, inner = inner_alpha(train, seed)
    rows["blend_sel"] = study.score(curves, curve=sweep_curve(a * pq + (1 - a) * tm, pc, te.quality, te.cost, scale))
    return {"rows": rows, "alpha": a, "inner": inner, "seconds": round(time.time() - t0, 1)}


def table(sets=("rp", "hm", "dc")):
    lines = []
    for s in sets:
        res = {int(p.stem.split("_")[1]): json.loads(p.read_text()) for p in sorted((HERE / "results_t").glob(f"{s}_*.json"))}
        if not res:
            continue
        seeds = sorted(res)
        lines += [f"### {study_s.SETS[s][0]} (seeds {','.join(map(str, seeds))}; inner a per seed: "
                  + ", ".join(f"{x}:{res[x]['alpha']}" for x in seeds) + ")", "",
                  "| router | AIQ | norm. AIQ gain | q at best single's cost | beats knn & task: AIQ | q |",
                  "|---|---|---|---|---|---|"]
        for k in res[seeds[0]]["rows"]:
            def ms(f, fmt):
                v = np.array([res[x]["rows"][k][f] if res[x]["rows"][k][f] is not None else np.nan for x in seeds])
                return f"{np.nanmean(v):{fmt}} ± {np.nanstd(v, ddof=1):.{fmt[-2]}f}"
            base = k in ("knn", "task")
            wa = "–" if base else sum(res[x]["rows"][k]["beats_aiq"] for x in seeds)
            wq = "–" if base else sum(res[x]["rows"][k]["beats_q"] for x in seeds)
            lines.append(f"| {k} | {ms('aiq', '.4f')} | {ms('gain_aiq', '+.3f')} | {ms('q_at_best', '.4f')} "
                         f"| {wa}/{len(seeds)} | {wq}/{len(seeds)} |")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="rp,hm,dc")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    if a.table:
        print(table())
        return
    out = HERE / "results_t"
    out.mkdir(exist_ok=True)
    for s in a.sets.split(","):
        for seed in map(int, a.seeds.split(",")):
            r = run(s, seed)
            (out / f"{s}_{seed}.json").write_text(json.dumps(r, indent=1))
            print(s, seed, r["seconds"], "s alpha", r["alpha"], {k: (round(v["gain_aiq"], 3), v["beats_aiq"], v["beats_q"])
                                                               for k, v in r["rows"].items()}, flush=True)


if __name__ == "__main__":
    main()
