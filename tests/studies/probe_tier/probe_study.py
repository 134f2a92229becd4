"""Stage 2 of the probe-tier study: does a SmolLM2 probe (probe.py) help the router?  5 seeds x both sets.

    cd /work/wt-t && nice -n 10 /work/main/.venv/bin/python tests/studies/probe_tier/probe_study.py --sets rp,dc
    ... --sets dc --n 1200   (the first 1,200 probed queries; --tag _x names the result files)
    ... --table [--tag _x]   -> the markdown tables of results/*.json

The harness is tests/studies/routing_plateau/study.py's (imported, not copied): the split, metrics and the
curves beside each candidate are those of `zeta evaluate-benchmark` (project router, knn, per-task, single
models, oracle; each candidate is scored in the router's place), CatBoost thread_count=1.  The tables are
restricted to the query texts that were probed (routeprofile: all 600; dcrouter: the sha256-first 1,200,
see probe.py), so every row of one table is scored on the same queries.

Candidates (everything fitted on the train part only; predicted cost = the pool's linear cost in chars):
  long_base         the project's learner (CatBoost RMSE on (query, model) rows, identity one-hot weight 3)
                    on the project's default features: the "without" arm
  long_ppl          + probe scalars: mean / std / min token log-prob of the prompt, log token count
  long_probe16      + those scalars + PCA-16 of the mean-pooled SmolLM2 hidden state (PCA fitted on train)
  long_probe32      same with PCA-32
  knn_probe16/32    cosine kNN on the PCA probe embedding, k by leave-one-out AIQ on train
Controls (only when routing_plateau's embeddings.npz is found in $STUDY_EMB_DIR, e.g. /work/scratch12):
  knn_static32      the same kNN on routing_plateau's static32 op (runtime-computable, no model call)
  knn_sent32        the same kNN on PCA-32 of all-MiniLM-L6-v2 sentence embeddings (not runtime-computable)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "routing_plateau"))
import study as rps  # noqa: E402  (the routing_plateau harness)

from flows.benchmark_eval import split_benchmark  # noqa: E402

NAMES = {"rp": "routeprofile", "dc": "dcrouter"}


def load_probe(setkey, n=None):
    """probe_<set>.npz plus any continuation parts probe_<set>_<offset>.npz (probe.py --offset), cut to the
    first n queries of the sha256 order (so every seed sees the same queries while a part still grows)."""
    qs, emb, scal = [], [], []
    for path in [HERE / f"probe_{setkey}.npz"] + sorted(HERE.glob(f"probe_{setkey}_*.npz")):
        z = np.load(path)
        q = z["queries"].tolist()
        qs += q
        emb.append(z["emb"][:len(q)].astype(np.float64))
        scal.append(np.column_stack([z["lp"][:len(q)], np.log1p(z["n_tok"][:len(q)].astype(np.float64))]))
    if n is not None and len(qs) < n:
        raise SystemExit(f"only {len(qs)} {setkey} queries probed, --n {n} asked")
    qs = qs[:n]
    return {q: i for i, q in enumerate(qs)}, np.vstack(emb)[:len(qs)], np.vstack(scal)[:len(qs)]


def pca(xtr, xte, dims):
    mu = xtr.mean(axis=0)
    _, _, vt = np.linalg.svd(xtr - mu, full_matrices=False)
    return (xtr - mu) @ vt[:dims].T, (xte - mu) @ vt[:dims].T


def evaluate(setkey, seed, n=None):
    name, load = rps.SETS[setkey]
    index, emb, scal = load_probe(setkey, n)
    table = load()
    table = table.filter(pl.col("query").is_in(list(index)))
    train, test, split = split_benchmark(table, None, 0.3, seed)
    tr, te, scale = rps.prepare(name, train, test, seed)
    curves, extra = rps.base_curves(train, test, tr, te, scale, seed)
    rows = {k: rps.score(curves, k) for k in ("router", "knn", "task", "oracle")}
    itr = [index[q] for q in tr.queries]
    ite = [index[q] for q in te.queries]
    cl = rps.lin_cost(tr, np.array([len(q) for q in tr.queries]), np.array([len(q) for q in te.queries]))
    xb_tr, xb_te = rps.base_features(tr.queries, [tr.queries, te.queries])
    s_tr, s_te = scal[itr], scal[ite]
    cands = {"long_base": rps.cb_long(xb_tr, tr.quality, xb_te, seed),
             "long_ppl": rps.cb_long(np.hstack([xb_tr, s_tr]), tr.quality, np.hstack([xb_te, s_te]), seed)}
    ks = {}
    for d in (16, 32):
        p_tr, p_te = pca(emb[itr], emb[ite], d)
        cands[f"long_probe{d}"] = rps.cb_long(np.hstack([xb_tr, s_tr, p_tr]), tr.quality,
                                              np.hstack([xb_te, s_te, p_te]), seed)
        kq, _, k, _ = rps._knn_fit_predict(p_tr, p_te, tr.quality, tr.cost, scale, tr.queries)
        cands[f"knn_probe{d}"] = kq
        ks[d] = k
    emb_dir = os.environ.get("STUDY_EMB_DIR")
    if emb_dir and (Path(emb_dir) / "embeddings.npz").is_file():
        rps.HERE = Path(emb_dir)  # where rps.emb() finds embeddings.npz
        se = rps.StaticEmbedding(tr.queries, source="tok_st", dims=32)
        e_tr, e_te = se.transform(tr.queries), se.transform(te.queries)
        cands["knn_static32"] = rps._knn_fit_predict(e_tr, e_te, tr.quality, tr.cost, scale, tr.queries)[0]
        u_tr, u_te = rps.sentence_pca(name, tr.queries, [tr.queries, te.queries], dims=32)
        cands["knn_sent32"] = rps._knn_fit_predict(u_tr, u_te, tr.quality, tr.cost, scale, tr.queries)[0]
    for k, pq in cands.items():
        rows[k] = rps.score(curves, curve=rps.sweep_curve(pq, cl, te.quality, te.cost, scale))
    return {"n_train": len(tr.queries), "n_test": len(te.queries), "knn_k_probe": ks, "split": split,
            "rows": rows}


def table(tag=""):
    import glob
    import re
    lines = []
    for s in ("rp", "dc"):
        rows = {}
        for path in sorted(glob.glob(str(HERE / "results" / f"{s}_*.json"))):
            m = re.fullmatch(rf"{s}_(\d+){tag}\.json", Path(path).name)
            if m:
                r = json.loads(Path(path).read_text())
                rows[int(m.group(1))] = r["rows"]
                n = (r["n_train"], r["n_test"])
        seeds = sorted(rows)
        if not seeds:
            continue
        lines += [f"### {NAMES[s]} (seeds {','.join(map(str, seeds))}; seed {seeds[-1]}: {n[0]} train / {n[1]} test queries)",
                  "", "| router | AIQ | norm. AIQ gain | q at best single's cost | norm. q gain | beats knn & task: AIQ | q |",
                  "|---|---|---|---|---|---|---|"]

        def ms(k, f):
            v = np.array([rows[x][k][f] if rows[x][k][f] is not None else np.nan for x in seeds], dtype=float)
            sd = np.nanstd(v, ddof=1) if len(seeds) > 1 else float("nan")
            return f"{np.nanmean(v):.4f} ± {sd:.4f}" if f in ("aiq", "q_at_best") else f"{np.nanmean(v):+.3f} ± {sd:.3f}"
        for k in rows[seeds[0]]:
            base = k in ("knn", "task", "oracle")
            wa = "–" if base else sum(rows[x][k]["beats_aiq"] for x in seeds)
            wq = "–" if base else sum(rows[x][k]["beats_q"] for x in seeds)
            lines.append(f"| {k} | {ms(k, 'aiq')} | {ms(k, 'gain_aiq')} | {ms(k, 'q_at_best')} | {ms(k, 'gain_q')} "
                         f"| {wa}/{len(seeds)} | {wq}/{len(seeds)} |")
        # paired: with probe minus without, per seed (same split, same curves)
        pairs = [(k, "long_base") for k in ("long_ppl", "long_probe16", "long_probe32")]
        pairs += [("knn_probe16", b) for b in ("router", "knn", "knn_static32", "knn_sent32")]
        lines.append("")
        for k, b in pairs:
            if k not in rows[seeds[0]] or b not in rows[seeds[0]]:
                continue
            d = np.array([rows[x][k]["gain_aiq"] - rows[x][b]["gain_aiq"] for x in seeds])
            lines.append(f"- paired {k} - {b}, norm. AIQ gain per seed: {np.round(d, 3).tolist()} "
                         f"(mean {d.mean():+.3f}, {int((d > 0).sum())}/{len(seeds)} seeds > 0)")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="rp,dc")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--n", type=int, help="use the first N probed queries (sha256 order) of each set")
    ap.add_argument("--tag", default="", help="suffix of the results/<set>_<seed><tag>.json files")
    a = ap.parse_args()
    if a.table:
        print(table(a.tag))
        return
    (HERE / "results").mkdir(exist_ok=True)
    for s in a.sets.split(","):
        for seed in map(int, a.seeds.split(",")):
            r = evaluate(s, seed, a.n)
            (HERE / "results" / f"{s}_{seed}{a.tag}.json").write_text(json.dumps(r, indent=1))
            print(s, seed, {k: round(v["gain_aiq"], 3) for k, v in r["rows"].items()}, flush=True)


if __name__ == "__main__":
    main()
