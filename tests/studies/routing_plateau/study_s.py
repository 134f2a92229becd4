"""Issue 12, second pass (helper S): training-only changes of the project learner, chosen by inner
validation, scored 5 seeds x (routeprofile, dcrouter, hand-made table).  No runtime change.

    cd <clone> && PYTHONPATH=$PWD /work/main/.venv/bin/python tests/studies/routing_plateau/study_s.py \
        --sets rp,dc,hm --seeds 0,1,2,3,4          -> results_s/<set>_<seed>.json
    ... study_s.py --hc --sets rp,dc,hm --seeds 0,1,2,3,4   -> results_s/<set>_<seed>_hc.json (HC below)
    ... study_s.py --sel2 --sets rp,dc,hm --seeds 0,1,2,3,4 -> results_s/<set>_<seed>_sel2.json (GRID2)
    ... study_s.py --table                          -> the markdown table of results_s/*.json

Candidates are the project's own pipeline (flows.benchmark_eval.fit_router + the runtime Router,
CatBoost thread_count=1) trained on a smoothed target: quality := a * q + (1 - a) * prior, with
prior = the leave-one-out mean of the query's task for that model (`task`, rows without a task keep q)
or the leave-one-out mean of its k nearest train neighbours (`knn`: the project kNN, hashed BoW, k by
LOO AIQ).  `sel` = the configuration with the highest mean normalized AIQ gain over K=3 inner folds
grouped by query inside the train part (the reported test part is never seen by the choice).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import study  # noqa: E402  (split, curves and score exactly as the first study)

from flows.benchmark_eval import fit_router, split_benchmark  # noqa: E402
from flows.evaluate.baselines import _knn_means, _neighbours, fit_idf, fit_knn, hashed_bow  # noqa: E402
from flows.evaluation import predicted_matrix, quality_matrix  # noqa: E402
from flows.metrics import aiq, normalized_gain, sweep_curve  # noqa: E402
from flows.sources import load_table  # noqa: E402
from flows.training import TrainParams  # noqa: E402

SETS = dict(study.SETS)
SETS["hm"] = ("handmade", lambda: load_table(str(HERE / "handmade.csv"))[0])
GRID = (("none", 1.0), ("task", 0.6), ("task", 0.3), ("knn", 0.6), ("knn", 0.3))
K_INNER = 3


def task_prior(train: pl.DataFrame) -> pl.DataFrame:
    """(query_id, model, prior): leave-one-out mean quality of the query's task for that model (null
    where the query has no task or is its task's only query)."""
    if "task" not in train.columns:
        return train.select("query_id", "model", pl.lit(None, pl.Float64).alias("prior"))
    g = pl.col("quality").sum().over("task", "model")
    n = pl.len().over("task", "model")
    return train.select("query_id", "model", pl.when(pl.col("task").is_not_null() & (n > 1))
                        .then((g - pl.col("quality")) / (n - 1)).otherwise(None).alias("prior"))


def knn_prior(train: pl.DataFrame, scale: float) -> pl.DataFrame:
    models = sorted(train["model"].unique().to_list())
    tr = quality_matrix(train, models)
    k = fit_knn(tr, scale).k
    x = hashed_bow(tr.queries, fit_idf(tr.queries))
    sim = (x @ x.T).toarray()
    codes = np.unique(np.asarray(tr.queries, dtype=object), return_inverse=True)[1]
    sim[codes[:, None] == codes[None, :]] = -np.inf
    p = _knn_means(_neighbours(sim, k), tr.quality, [k])[k]
    return pl.DataFrame({"query_id": np.repeat(tr.query_ids, len(models)).tolist(),
                         "model": models * len(tr.query_ids), "prior": p.reshape(-1)})


def smoothed(train: pl.DataFrame, prior: str, a: float, scale: float) -> pl.DataFrame:
    if prior == "none" or a == 1.0:
        return train
    pr = task_prior(train) if prior == "task" else knn_prior(train, scale)
    return (train.join(pr, on=["query_id", "model"], how="left", maintain_order="left")
            .with_columns(quality=pl.when(pl.col("prior").is_null()).then(pl.col("quality"))
                          .otherwise(a * pl.col("quality") + (1 - a) * pl.col("prior"))).drop("prior"))


def classifier_prior(train: pl.DataFrame, seed: int, folds: int = 5) -> pl.DataFrame:
    """Out-of-fold soft task prior: a CatBoost MultiClass on the query's base features (fitted
    FeatureSpec) predicts p(task | text) on each held-out fold; prior = p @ (task x model mean quality
    of the other folds).  Queries without a task get no prior."""
    from catboost import CatBoostClassifier
    models = sorted(train["model"].unique().to_list())
    tr = quality_matrix(train, models)
    task_of = dict(train.select("query_id", "task").unique("query_id").iter_rows())
    tasks = np.array([task_of.get(q) for q in tr.query_ids], dtype=object)
    have = np.array([t is not None for t in tasks])
    names = sorted(set(tasks[have]))
    lab = np.array([names.index(t) if t is not None else -1 for t in tasks])
    (x,) = study.base_features(tr.queries, [tr.queries])
    fold = np.array([int.from_bytes(hashlib.sha256(f"clf{seed}:{q}".encode()).digest()[:8], "big") % folds
                     for q in tr.query_ids])
    prior = np.full(tr.quality.shape, np.nan)
    for f in range(folds):
        fit, out = have & (fold != f), have & (fold == f)
        m = CatBoostClassifier(iterations=300, depth=4, learning_rate=0.1, thread_count=1, verbose=0,
                               random_seed=seed, allow_writing_files=False)
        m.fit(x[fit], lab[fit])
        mq = np.vstack([tr.quality[fit & (lab == c)].mean(axis=0) if (fit & (lab == c)).any()
                        else tr.quality[fit].mean(axis=0) for c in range(len(names))])
        p = np.zeros((out.sum(), len(names)))
        p[:, [int(c) for c in np.ravel(m.classes_)]] = m.predict_proba(x[out])
        prior[out] = p @ mq
    flat = prior.reshape(-1)
    return pl.DataFrame({"query_id": np.repeat(tr.query_ids, len(models)).tolist(),
                         "model": models * len(tr.query_ids),
                         "prior": [None if np.isnan(v) else float(v) for v in flat]}, schema_overrides={"prior": pl.Float64})


def fit_predict(train, te, prior, a, seed, scale, **params):
    if prior == "clf" and a < 1.0:
        pr = classifier_prior(train, seed)
        train = (train.join(pr, on=["query_id", "model"], how="left", maintain_order="left")
                 .with_columns(quality=pl.when(pl.col("prior").is_null()).then(pl.col("quality"))
                               .otherwise(a * pl.col("quality") + (1 - a) * pl.col("prior"))).drop("prior"))
    else:
        train = smoothed(train, prior, a, scale)
    art, _ = fit_router(train, TrainParams(seed=seed, thread_count=1, **params))
    return predicted_matrix(art, te)


# high capacity (depth 6, learning rate 0.1) on smoothed targets: a smooth target can take deeper trees
HC = (("task", 0.0), ("task", 0.3), ("clf", 0.0), ("clf", 0.3))


def run_hc(setkey, seed):
    name, load = SETS[setkey]
    train, test, split = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    rows = {}
    for g in HC:
        pq, pc = fit_predict(train, te, g[0], g[1], seed, scale, depth=6, learning_rate=0.1)
        rows[f"hc_{g[0]}{g[1]}"] = study.score(curves, curve=sweep_curve(pq, pc, te.quality, te.cost, scale))
    return {"rows": rows}


def inner_folds(train: pl.DataFrame, seed: int, k: int = K_INNER):
    ids = train["query_id"].unique().to_list()
    fold = {q: int.from_bytes(hashlib.sha256(f"inner{seed}:{q}".encode()).digest()[:8], "big") % k for q in ids}
    for f in range(k):
        val = sorted(q for q in ids if fold[q] == f)
        part = train.with_columns(split=pl.when(pl.col("query_id").is_in(val)).then(pl.lit("test"))
                                  .otherwise(pl.lit("train")))
        itr, ite, _ = split_benchmark(part, "split")
        yield itr.drop("split"), ite.drop("split")


def inner_select(train, seed):
    """Mean normalized AIQ gain (router vs single models and oracle) of each GRID entry over K folds."""
    gains = {g: [] for g in GRID}
    for itr, ite in inner_folds(train, seed):
        tr, te, scale = study.prepare("inner", itr, ite, seed)
        singles = np.vstack([[[te.cost[:, j].mean(), te.quality[:, j].mean()]] for j in range(len(te.models))])
        oracle = sweep_curve(te.quality, te.cost, te.quality, te.cost, scale)
        for g in GRID:
            pq, pc = fit_predict(itr, te, g[0], g[1], seed, scale)
            a = aiq({"router": sweep_curve(pq, pc, te.quality, te.cost, scale), "single_models": singles,
                     "oracle": oracle})
            gains[g].append(normalized_gain(a["router"], a["single_models"], a["oracle"]))
    mean = {g: float(np.mean(v)) for g, v in gains.items()}
    return max(GRID, key=lambda g: (mean[g], g == ("none", 1.0))), gains


# sel2: the inner choice among the default learner, the best kNN smoothing and the high-capacity task priors
GRID2 = (("none", 1.0, ()), ("knn", 0.3, ()), ("task", 0.0, (("depth", 6), ("learning_rate", 0.1))),
         ("clf", 0.3, (("depth", 6), ("learning_rate", 0.1))))


def inner_select2(train, seed):
    gains = {g: [] for g in GRID2}
    for itr, ite in inner_folds(train, seed):
        tr, te, scale = study.prepare("inner", itr, ite, seed)
        singles = np.vstack([[[te.cost[:, j].mean(), te.quality[:, j].mean()]] for j in range(len(te.models))])
        oracle = sweep_curve(te.quality, te.cost, te.quality, te.cost, scale)
        for g in GRID2:
            pq, pc = fit_predict(itr, te, g[0], g[1], seed, scale, **dict(g[2]))
            a = aiq({"router": sweep_curve(pq, pc, te.quality, te.cost, scale), "single_models": singles,
                     "oracle": oracle})
            gains[g].append(normalized_gain(a["router"], a["single_models"], a["oracle"]))
    mean = {g: float(np.mean(v)) for g, v in gains.items()}
    return max(GRID2, key=lambda g: (mean[g], g[0] == "none")), gains


def run_sel2(setkey, seed, with_base=False):
    name, load = SETS[setkey]
    train, test, split = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    choice, gains = inner_select2(train, seed)
    pq, pc = extra["router_pred"] if choice[0] == "none" else \
        fit_predict(train, te, choice[0], choice[1], seed, scale, **dict(choice[2]))
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")} if with_base else {}
    rows["sel2"] = study.score(curves, curve=sweep_curve(pq, pc, te.quality, te.cost, scale))
    return {"rows": rows,
            "choice2": f"{choice[0]}{choice[1]}{'_hc' if choice[2] else ''}",
            "inner_gains2": {f"{g[0]}{g[1]}{'_hc' if g[2] else ''}": v for g, v in gains.items()}}


def run(setkey, seed):
    name, load = SETS[setkey]
    table = load()
    train, test, split = split_benchmark(table, None, 0.3, seed)
    t0 = time.time()
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task", "oracle")}
    preds = {("none", 1.0): extra["router_pred"]}
    for g in GRID[1:]:
        preds[g] = fit_predict(train, te, g[0], g[1], seed, scale)
        rows[f"sm{g[0]}{g[1]}"] = study.score(curves, curve=sweep_curve(*preds[g], te.quality, te.cost, scale))
    choice, gains = inner_select(train, seed)
    rows["sel"] = study.score(curves, curve=sweep_curve(*preds[choice], te.quality, te.cost, scale))
    return {"n_train": len(tr.queries), "n_test": len(te.queries), "rows": rows, "choice": list(choice),
            "inner_gains": {f"{g[0]}{g[1]}": v for g, v in gains.items()}, "seconds": round(time.time() - t0, 1)}


def table(sets=("rp", "dc", "hm")):
    lines = []
    for s in sets:
        res = {}
        for p in sorted((HERE / "results_s").glob(f"{s}_*.json")):
            if p.stem.count("_") == 1:
                res[int(p.stem.split("_")[1])] = json.loads(p.read_text())
        for x in res:
            for suffix in ("hc", "sel2"):
                extra = HERE / "results_s" / f"{s}_{x}_{suffix}.json"
                if extra.exists():
                    e = json.loads(extra.read_text())
                    res[x]["rows"].update(e["rows"])
                    if e.get("choice2"):
                        res[x]["choice2"] = e["choice2"]
        if not res:
            continue
        seeds = sorted(res)
        names = [k for k in res[seeds[0]]["rows"] if all(k in res[x]["rows"] for x in seeds)]
        lines += [f"### {SETS[s][0]} (seeds {','.join(map(str, seeds))}; inner choice per seed: "
                  + ", ".join(f"{x}:{res[x]['choice'][0]}{res[x]['choice'][1]}" for x in seeds) + "; sel2: "
                  + ", ".join(f"{x}:{res[x].get('choice2')}" for x in seeds) + ")", "",
                  "| router | AIQ | norm. AIQ gain | q at best single's cost | norm. q gain | beats knn & task: AIQ | q |",
                  "|---|---|---|---|---|---|---|"]
        for k in names:
            def ms(f, fmt):
                v = np.array([res[x]["rows"][k][f] if res[x]["rows"][k][f] is not None else np.nan for x in seeds])
                return f"{np.nanmean(v):{fmt}} ± {np.nanstd(v, ddof=1):.{fmt[-2]}f}"
            base = k in ("knn", "task", "oracle")
            wa = "–" if base else sum(res[x]["rows"][k]["beats_aiq"] for x in seeds)
            wq = "–" if base else sum(res[x]["rows"][k]["beats_q"] for x in seeds)
            lines.append(f"| {k} | {ms('aiq', '.4f')} | {ms('gain_aiq', '+.3f')} | {ms('q_at_best', '.4f')} "
                         f"| {ms('gain_q', '+.3f')} | {wa}/{len(seeds)} | {wq}/{len(seeds)} |")
        lines.append("")
    return "\n".join(lines)


def confirm_table(s="rp", seeds=range(5, 10)):
    """sel2 on seeds never looked at while GRID2 was made (its members were picked after the seeds 0-4
    test parts had been seen): router, knn, task and sel2 per seed."""
    lines = ["| seed | inner choice | router gain | task gain | knn gain | sel2 gain | router beats: AIQ / q "
             "| sel2 beats: AIQ / q |", "|---|---|---|---|---|---|---|---|"]
    for x in seeds:
        p = HERE / "results_s" / f"{s}_{x}_sel2.json"
        if not p.exists():
            continue
        r = json.loads(p.read_text())
        rows = r["rows"]
        lines.append(f"| {x} | {r['choice2']} | {rows['router']['gain_aiq']:+.3f} | {rows['task']['gain_aiq']:+.3f} "
                     f"| {rows['knn']['gain_aiq']:+.3f} | {rows['sel2']['gain_aiq']:+.3f} "
                     f"| {'W' if rows['router']['beats_aiq'] else '.'} / {'W' if rows['router']['beats_q'] else '.'} "
                     f"| {'W' if rows['sel2']['beats_aiq'] else '.'} / {'W' if rows['sel2']['beats_q'] else '.'} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="rp,dc,hm")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--hc", action="store_true", help="the high-capacity smoothed candidates (HC) only")
    ap.add_argument("--sel2", action="store_true", help="the inner choice over GRID2 only")
    a = ap.parse_args()
    if a.table:
        print(table())
        print(confirm_table())
        return
    out = HERE / "results_s"
    out.mkdir(exist_ok=True)
    for s in a.sets.split(","):
        for seed in map(int, a.seeds.split(",")):
            r = run_hc(s, seed) if a.hc else run_sel2(s, seed, with_base=seed > 4) if a.sel2 else run(s, seed)
            suffix = "_hc" if a.hc else "_sel2" if a.sel2 else ""
            (out / f"{s}_{seed}{suffix}.json").write_text(json.dumps(r, indent=1))
            print(s, seed, r.get("seconds"), "s choice", r.get("choice") or r.get("choice2"), flush=True)
            for k, v in r["rows"].items():
                print(f"  {k:12s} aiq {v['aiq']:.4f} gain {v['gain_aiq']:+.3f} gq "
                      f"{v['gain_q'] if v['gain_q'] is not None else float('nan'):+.3f} "
                      f"{'W' if v['beats_aiq'] else '.'}{'W' if v['beats_q'] else '.'}", flush=True)


if __name__ == "__main__":
    main()
