"""Issue 12 study: which router beats per-task AND kNN on both data sets (5 seeds).

Stage 1 (separate venv): `HF_HUB_OFFLINE=1 .venv/bin/python embed.py` -> embeddings.npz.
Stage 2 (this file, project venv, project imported read-only):
    cd /work/scratch12 && PYTHONPATH=/work/main /work/main/.venv/bin/python study.py [--sets rp,dc] [--seeds 0,1,2,3,4]
        [--routers a,b,...] [--inner]   -> results/<set>_<seed>.json, RESULTS table printed

Same split and metrics as `zeta evaluate-benchmark` (flows/benchmark_eval.py): query_id hash split, test
fraction 0.3, seed s; test queries whose text is in train are dropped; AIQ over the curves of
router + knn + task + single models + best single + cheapest + random + oracle (each candidate router is
put in the place of "router", so max_cost is computed as the project would).  Everything a candidate
learns (feature vocab, PCA, tables, trees, k) is fitted on the train part only; --inner scores the same
candidates on 2 inner 70/30 splits of the train part (that is what selects the winner).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from flows.baselines import fit_knn, fixed_choices, task_predictions
from flows.benchmark_eval import fit_router, split_benchmark
from flows.evaluation import predicted_matrix, quality_matrix, QualityMatrix
from flows.export import cost_scale
from flows.features import feature_matrix, fit_feature_spec
from flows.importers import import_dcrouter, import_routeprofile
from flows.metrics import aiq, normalized_gain, quality_at_cost, sweep_curve
from flows.training import TrainParams, build_pool, fit_linear_cost, split_query_ids
from router_runtime.features import default_feature_spec

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/data")
SETS = {"rp": ("routeprofile", lambda: import_routeprofile(DATA / "routeprofile")),
        "dc": ("dcrouter", lambda: import_dcrouter(DATA / "llmrouter_dcrouter"))}
_TOKEN_BYTES = bytes(c + 32 if 65 <= c <= 90 else c if (97 <= c <= 122 or 48 <= c <= 57 or c == 95) else 32
                     for c in range(256))
EMB = None
SMOOTH = tuple(float(x) for x in os.environ.get("STUDY_SMOOTH", "0.0,0.3,0.6").split(","))
FULL = False  # --full: the first, wide exploration (candidates()); default: final_candidates()


def emb():
    global EMB
    if EMB is None:
        z = np.load(HERE / "embeddings.npz")
        EMB = {k: z[k] for k in z.files}
        EMB["tok_index"] = {t: i for i, t in enumerate(EMB["tokens"].tolist())}
        for name in ("routeprofile", "dcrouter"):
            EMB[f"{name}_index"] = {q: i for i, q in enumerate(EMB[f"{name}_queries"].tolist())}
    return EMB


def runtime_tokens(q: str, max_chars: int = 65536) -> list[str]:
    """router_runtime/features.py's token op: UTF-8 bytes, A-Z lower-cased, runs of [a-z0-9_]."""
    return [t.decode("ascii") for t in q[:max_chars].encode("utf-8").translate(_TOKEN_BYTES).split()]


# ------------------------------------------------------------------------------------------ features

class StaticEmbedding:
    """The runtime-computable op: mean over the query's runtime tokens found in the table of an int8 row
    per token, times a per-dimension float scale.  Fitted on train queries only: vocabulary = train
    tokens (min_count), vectors = the chosen per-token table, PCA to `dims` on train pooled vectors,
    then quantized to int8 (symmetric, per-dimension scale = max |value| / 127)."""

    def __init__(self, train_queries, source="tok_st", dims=32, min_count=1, quantize=True, sif=None):
        e = emb()
        counts: dict[str, int] = {}
        for q in train_queries:
            for t in runtime_tokens(q):
                counts[t] = counts.get(t, 0) + 1
        vocab = sorted(t for t, c in counts.items() if c >= min_count and t in e["tok_index"])
        vec = e[source][[e["tok_index"][t] for t in vocab]].astype(np.float64)
        if sif is not None:  # SIF weight a / (a + p(token)), p from train token frequencies
            tot = sum(counts.values())
            w = np.array([sif / (sif + counts[t] / tot) for t in vocab])
            vec = vec * w[:, None]
        self.vocab = {t: i for i, t in enumerate(vocab)}
        pooled = self._pool(train_queries, vec)
        mu = pooled.mean(axis=0)
        _, _, vt = np.linalg.svd(pooled - mu, full_matrices=False)
        proj = (vec - mu) @ vt[:dims].T  # mean of projected rows = projection of the mean (linear)
        if quantize:
            self.scale = np.abs(proj).max(axis=0) / 127.0
            self.scale[self.scale == 0] = 1.0
            self.table = np.round(proj / self.scale).astype(np.int8)
        else:
            self.scale, self.table = np.ones(dims), proj
        self.dims = dims

    def _pool(self, queries, table):
        out = np.zeros((len(queries), table.shape[1]))
        for i, q in enumerate(queries):
            rows = [self.vocab[t] for t in runtime_tokens(q) if t in self.vocab]
            if rows:
                out[i] = table[rows].astype(np.float64).sum(axis=0) / len(rows)
        return out

    def transform(self, queries):
        # int8 sums are exact integers; then (sum * scale) / n: two IEEE operations, same in any engine
        out = np.zeros((len(queries), self.dims))
        for i, q in enumerate(queries):
            rows = [self.vocab[t] for t in runtime_tokens(q) if t in self.vocab]
            if rows:
                s = self.table[rows].astype(np.int64).sum(axis=0).astype(np.float64)
                out[i] = s * self.scale / float(len(rows))
        return out


def sentence_pca(name, train_queries, queries, dims=32, key="sent"):
    e = emb()
    idx = e[f"{name}_index"]
    a = e[f"{name}_{key}"].astype(np.float64)
    xtr = a[[idx[q] for q in train_queries]]
    mu = xtr.mean(axis=0)
    _, _, vt = np.linalg.svd(xtr - mu, full_matrices=False)
    return [(a[[idx[q] for q in qs]] - mu) @ vt[:dims].T for qs in queries]


def base_features(train_queries, queries_list):
    spec = fit_feature_spec(default_feature_spec(), pl.Series(train_queries))
    return [feature_matrix(qs, spec).to_numpy().astype(np.float64) for qs in queries_list]


# ------------------------------------------------------------------------------------------ learners

def _knn_fit_predict(etr, ete, qtr, ctr, scale, texts_tr, ks=(1, 2, 4, 8, 16, 32, 64, 128), qtr_true=None):
    """Cosine kNN on dense vectors; k by leave-one-out AIQ on train (exact duplicates excluded)."""
    def nrm(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    a, b = nrm(etr), nrm(ete)
    n = len(a)
    ks = [k for k in ks if k < n]
    kmax = max(ks)
    codes = np.unique(np.asarray(texts_tr, dtype=object), return_inverse=True)[1]
    sim = a @ a.T
    sim[codes[:, None] == codes[None, :]] = -np.inf
    nb = np.argsort(-sim, axis=1, kind="stable")[:, :kmax]
    cq, cc = np.cumsum(qtr[nb], axis=1), np.cumsum(ctr[nb], axis=1)
    scores = {}
    for k in ks:
        c = sweep_curve(cq[:, k - 1] / k, cc[:, k - 1] / k, qtr, ctr, scale)
        scores[k] = aiq({"x": c})["x"]
    k = max(ks, key=lambda k: (scores[k], -k))
    st = b @ a.T
    nbt = np.argsort(-st, axis=1, kind="stable")[:, :k]
    loo = (cq[:, k - 1] / k, cc[:, k - 1] / k)
    return qtr[nbt].mean(axis=1), ctr[nbt].mean(axis=1), k, loo


def _cb_params(n_queries, n_rows_per_model, **over):
    depth = 4 if n_rows_per_model < 2000 else 6
    lr = 0.04 if n_queries < 2000 else 0.08
    p = dict(iterations=300, depth=depth, learning_rate=lr, l2_leaf_reg=3.0, random_seed=0, thread_count=1,
             verbose=0, allow_writing_files=False, nan_mode="Min")
    p.update(over)
    return p


def cb_long(xtr, qtr, xte, seed, loss="RMSE", identity_weight=3.0, extra_tr=None, extra_te=None,
            baseline_tr=None, baseline_te=None, **over):
    """One CatBoost over (query features, one-hot model identity) rows, as the project trains."""
    from catboost import CatBoost, Pool
    n, m = qtr.shape

    def rows(x, extra):
        xs = np.repeat(x, m, axis=0)
        oh = np.tile(np.eye(m), (len(x), 1))
        parts = [xs, oh]
        if extra is not None:
            parts.append(extra.reshape(len(x) * m, -1))
        return np.hstack(parts)
    a, b = rows(xtr, extra_tr), rows(xte, extra_te)
    fw = [1.0] * xtr.shape[1] + [identity_weight] * m + [1.0] * (a.shape[1] - xtr.shape[1] - m)
    p = _cb_params(n, n, random_seed=seed, **over)
    model = CatBoost(dict(loss_function=loss, feature_weights=fw, **p))
    group = np.repeat(np.arange(n), m) if loss != "RMSE" else None
    model.fit(Pool(a, qtr.reshape(-1), group_id=group,
                   baseline=None if baseline_tr is None else baseline_tr.reshape(-1)))
    pred = model.predict(b, prediction_type="RawFormulaVal").reshape(len(xte), m)
    return pred if baseline_te is None else pred + baseline_te


def cb_multi(xtr, ytr, xte, seed, **over):
    """One CatBoost with a vector leaf (MultiRMSE): all models' quality per query at once."""
    from catboost import CatBoostRegressor
    n, m = ytr.shape
    p = _cb_params(n, n, random_seed=seed, **over)
    model = CatBoostRegressor(loss_function="MultiRMSE", boosting_type="Plain", **p)
    model.fit(xtr, ytr)
    return model.predict(xte)


def irt_fit(q, rank=2, iters=400, lr=0.5, l2=1e-2, seed=0):
    """Logistic low-rank decomposition of train quality: q_ij ~ sigmoid(theta_i . a_j + b_j) (an IRT model
    with `rank` latent query traits; soft labels, so it also takes continuous quality)."""
    rng = np.random.default_rng(seed)
    n, m = q.shape
    th = rng.normal(0, 0.1, (n, rank))
    a = rng.normal(0, 0.1, (m, rank))
    p0 = np.clip(q.mean(axis=0), 1e-3, 1 - 1e-3)
    b = np.log(p0 / (1 - p0))
    for _ in range(iters):
        z = th @ a.T + b
        g = 1 / (1 + np.exp(-z)) - q  # d(cross-entropy)/dz
        th -= lr * (g @ a / m + l2 * th)
        a -= lr * (g.T @ th / n + l2 * a)
        b -= lr * g.mean(axis=0)
    return th, a, b


def irt_router(xtr, qtr, xte, seed, rank=2):
    th, a, b = irt_fit(qtr, rank=rank, seed=seed)
    th_hat = cb_multi(xtr, th, xte, seed) if rank > 1 else cb_multi(xtr, np.hstack([th, th]), xte, seed)[:, :1]
    return 1 / (1 + np.exp(-(th_hat @ a.T + b)))


def ridge(xtr, ytr, xte, alpha):
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-9
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    a1, b1 = np.hstack([a, np.ones((len(a), 1))]), np.hstack([b, np.ones((len(b), 1))])
    reg = alpha * np.eye(a1.shape[1])
    reg[-1, -1] = 0
    w = np.linalg.solve(a1.T @ a1 + reg, a1.T @ ytr)
    return b1 @ w


def lin_cost(tr: QualityMatrix, chars_tr, chars_te):
    """The pool's cost model (flows.training.fit_linear_cost per model: a + b * chars)."""
    out = np.empty((len(chars_te), len(tr.models)))
    for j in range(len(tr.models)):
        lc = fit_linear_cost(chars_tr, tr.cost[:, j])
        out[:, j] = [lc.at(int(c)) for c in chars_te]
    return out


# ------------------------------------------------------------------------------------------ evaluation

def base_curves(train, test, tr, te, scale, seed):
    """Everything `zeta evaluate-benchmark` puts beside the router, plus the project's router itself."""
    models = tr.models
    curves, extra = {}, {}
    t0 = time.time()
    art, _ = fit_router(train, TrainParams(seed=seed, thread_count=1))
    pq, pc = predicted_matrix(art, te)
    curves["router"] = sweep_curve(pq, pc, te.quality, te.cost, scale)
    extra["router_pred"] = (pq, pc)
    knn = fit_knn(tr, scale)
    kq, kc = knn.predict(te.queries)
    curves["knn"] = sweep_curve(kq, kc, te.quality, te.cost, scale)
    extra["knn_k"] = knn.k
    task_of = dict(test.select("query_id", "task").unique("query_id").iter_rows())
    tp = task_predictions(train, te, [task_of.get(q) for q in te.query_ids])
    curves["task"] = sweep_curve(tp[0], tp[1], te.quality, te.cost, scale)
    picks = fixed_choices(train, models)

    def point(j):
        return np.array([[te.cost[:, j].mean(), te.quality[:, j].mean()]])
    curves["single_models"] = np.vstack([point(j) for j in range(len(models))])
    curves["best_single"] = point(models.index(picks["best_single"]))
    curves["cheapest"] = point(models.index(picks["cheapest"]))
    curves["random"] = np.array([[te.cost.mean(), te.quality.mean()]])
    curves["oracle"] = sweep_curve(te.quality, te.cost, te.quality, te.cost, scale)
    extra["seconds_baselines"] = time.time() - t0
    return curves, extra


def score(curves, name=None, curve=None):
    """AIQ, normalized AIQ gain, quality at best single's cost and its normalized gain of `name` (or of
    `curve` put in the router's place), and the same of knn and task in that same set of curves (AIQ's
    max_cost is shared, so a comparison is only exact inside one set)."""
    c = dict(curves)
    if curve is not None:
        c["router"] = curve
        name = "router"
    a = aiq(c)
    bx, by = c["best_single"][0]
    qo = quality_at_cost(c["oracle"], bx)

    def one(k):
        q = quality_at_cost(c[k], bx)
        return {"aiq": a[k], "gain_aiq": normalized_gain(a[k], a["single_models"], a["oracle"]),
                "q_at_best": q, "gain_q": normalized_gain(q, by, qo)}
    out = one(name)
    out["beats_aiq"] = bool(a[name] > a["knn"] and a[name] > a["task"])
    qk, qt, qn = (quality_at_cost(c[k], bx) for k in ("knn", "task", name))
    out["beats_q"] = bool(qn is not None and qn > max(x if x is not None else -1 for x in (qk, qt)))
    out["same_set"] = {k: one(k) for k in ("knn", "task")}
    return out


def prepare(setname, train, test, seed):
    models = sorted(train["model"].unique().to_list())
    tr, te = quality_matrix(train, models), quality_matrix(test, models)
    pool = build_pool(train)
    scale = cost_scale(pool, models, train["query"].str.len_chars().to_numpy())
    return tr, te, scale


def task_probs(etr, ete, tasks_tr, k=16, texts_tr=None):
    """p(task | query) by a cosine k-nearest-neighbour vote among train queries that have a task; for
    train rows leave-one-out (own text excluded), so stacked features are out of fold."""
    have = np.array([t is not None for t in tasks_tr])
    names = sorted({t for t in tasks_tr if t is not None})
    lab = np.array([names.index(t) if t is not None else -1 for t in tasks_tr])

    def nrm(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    a = nrm(etr)[have]
    la = lab[have]
    out = []
    for x, loo in ((nrm(etr), True), (nrm(ete), False)):
        sim = x @ a.T
        if loo:
            codes = np.unique(np.asarray(texts_tr, dtype=object), return_inverse=True)[1]
            sim[codes[:, None] == codes[have][None, :]] = -np.inf
        nb = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        p = np.zeros((len(x), len(names)))
        for c in range(len(names)):
            p[:, c] = (la[nb] == c).sum(axis=1)
        out.append((p + 0.1) / (p + 0.1).sum(axis=1, keepdims=True))
    return names, out[0], out[1]


def loo_task_mean(tasks_tr, q):
    """Per train row, the mean quality of its task's other train rows (its own quality where it has no
    task, so rows without a task are not smoothed)."""
    lab = np.array([hash(t) if t is not None else 0 for t in tasks_tr])
    out = q.copy()
    for t in set(x for x in tasks_tr if x is not None):
        idx = np.flatnonzero(np.array([x == t for x in tasks_tr]))
        if len(idx) > 1:
            tot = q[idx].sum(axis=0)
            out[idx] = (tot - q[idx]) / (len(idx) - 1)
    return out


def task_means(tasks_tr, qtr, ctr, names, loo=False):
    """(tasks, models) mean quality and cost on train; loo: per train row, its own task's mean without it."""
    lab = np.array([names.index(t) if t is not None else -1 for t in tasks_tr])
    mq = np.vstack([qtr[lab == c].mean(axis=0) for c in range(len(names))])
    mc = np.vstack([ctr[lab == c].mean(axis=0) for c in range(len(names))])
    return mq, mc


def candidates(name, tr: QualityMatrix, te: QualityMatrix, scale, seed, only=None, tasks_tr=None):
    """Every candidate router: name -> (predicted quality, predicted cost) on te, fitted on tr only."""
    out = {}
    want = (lambda k: True) if not only else (lambda k: k in only)
    ctr = np.array([len(q) for q in tr.queries])
    cte = np.array([len(q) for q in te.queries])
    cost_lin = lin_cost(tr, ctr, cte)
    xb_tr, xb_te = base_features(tr.queries, [tr.queries, te.queries])
    feats = {"base": (xb_tr, xb_te)}
    for src in ("tok_st", "tok_m2v"):
        se = StaticEmbedding(tr.queries, source=src, dims=32)
        feats[f"st32_{src}"] = (se.transform(tr.queries), se.transform(te.queries))
    s_tr, s_te = sentence_pca(name, tr.queries, [tr.queries, te.queries], dims=32)
    feats["sent32"] = (s_tr, s_te)
    # kNN on each embedding (dense cosine), k by LOO AIQ on train; LOO predictions serve as OOF stack inputs
    knn = {}
    for fk in ("st32_tok_st", "st32_tok_m2v", "sent32"):
        if want(f"knn_{fk}") or any(k.startswith("stack") or k.startswith("ens") for k in (only or ["stack"])):
            kq, kc, k, loo = _knn_fit_predict(feats[fk][0], feats[fk][1], tr.quality, tr.cost, scale, tr.queries)
            knn[fk] = (kq, kc, k, loo)
            out[f"knn_{fk}"] = (kq, kc)
    for fk in ("base", "st32_tok_st", "st32_tok_m2v", "sent32"):
        xa = feats["base"][0] if fk == "base" else np.hstack([feats["base"][0], feats[fk][0]])
        xe = feats["base"][1] if fk == "base" else np.hstack([feats["base"][1], feats[fk][1]])
        if want(f"cb_long_{fk}"):
            out[f"cb_long_{fk}"] = (cb_long(xa, tr.quality, xe, seed), cost_lin)
        if want(f"cb_qrmse_{fk}"):
            out[f"cb_qrmse_{fk}"] = (cb_long(xa, tr.quality, xe, seed, loss="QueryRMSE"), cost_lin)
        if want(f"cb_multi_{fk}"):
            out[f"cb_multi_{fk}"] = (cb_multi(xa, tr.quality, xe, seed), cost_lin)
        if want(f"ridge_{fk}") and fk != "base":
            out[f"ridge_{fk}"] = (np.clip(ridge(xa, tr.quality, xe, alpha=float(len(xa)) * 0.1), 0, 1), cost_lin)
    if tasks_tr is not None and any(t is not None for t in tasks_tr):
        for fk in ("st32_tok_st", "sent32"):
            names, ptr, pte = task_probs(feats[fk][0], feats[fk][1], tasks_tr, texts_tr=tr.queries)
            mq, mc = task_means(tasks_tr, tr.quality, tr.cost, names)
            prior_tr, prior_te = ptr @ mq, pte @ mq
            out[f"taskprior_{fk}"] = (prior_te, pte @ mc)
            xa = np.hstack([feats["base"][0], feats[fk][0], ptr])
            xe = np.hstack([feats["base"][1], feats[fk][1], pte])
            m = tr.quality.shape[1]
            for it in (50, 150):
                if want(f"resid{it}_{fk}"):
                    # per-task prior as CatBoost baseline: trees fit only the within-task residual
                    out[f"resid{it}_{fk}"] = (cb_long(xa, tr.quality, xe, seed, baseline_tr=prior_tr,
                                                      baseline_te=prior_te, iterations=it), pte @ mc)
            if want(f"stackprior_{fk}"):
                ex_tr = np.concatenate([np.repeat(prior_tr[:, None, :], m, axis=1), prior_tr[:, :, None]], axis=2)
                ex_te = np.concatenate([np.repeat(prior_te[:, None, :], m, axis=1), prior_te[:, :, None]], axis=2)
                out[f"stackprior_{fk}"] = (cb_long(xa, tr.quality, xe, seed, extra_tr=ex_tr, extra_te=ex_te), pte @ mc)
    for fk, (kq, kc, k, loo) in knn.items():
        xa = np.hstack([feats["base"][0], feats[fk][0]])
        xe = np.hstack([feats["base"][1], feats[fk][1]])
        if want(f"stack_{fk}"):
            # out-of-fold (leave-one-out) neighbour means of every model, for train rows; full-train kNN for test
            m = tr.quality.shape[1]
            ex_tr = np.repeat(loo[0][:, None, :], m, axis=1)  # (n, m rows, m feats): same per query
            ex_te = np.repeat(kq[:, None, :], m, axis=1)
            self_tr = loo[0][:, :, None]
            self_te = kq[:, :, None]
            pq = cb_long(xa, tr.quality, xe, seed, extra_tr=np.concatenate([ex_tr, self_tr], axis=2),
                         extra_te=np.concatenate([ex_te, self_te], axis=2))
            out[f"stack_{fk}"] = (pq, cost_lin)
        if want(f"ens_{fk}") and f"cb_long_{fk}" in out:
            out[f"ens_{fk}"] = ((out[f"cb_long_{fk}"][0] + kq) / 2, cost_lin)
    return out, knn


def final_candidates(name, tr: QualityMatrix, te: QualityMatrix, scale, seed, router_pred, tasks_tr, only=None):
    """The lean set run on every seed and data set (see RESULTS.md for what was dropped and why)."""
    want = (lambda k: True) if not only else (lambda k: k in only)
    ctr = np.array([len(q) for q in tr.queries])
    cte = np.array([len(q) for q in te.queries])
    cl = lin_cost(tr, ctr, cte)
    out = {}
    xb_tr, xb_te = base_features(tr.queries, [tr.queries, te.queries])
    se = StaticEmbedding(tr.queries, source="tok_st", dims=32)
    e_tr, e_te = se.transform(tr.queries), se.transform(te.queries)
    s_tr, s_te = sentence_pca(name, tr.queries, [tr.queries, te.queries], dims=32)
    m = tr.quality.shape[1]
    k_st = _knn_fit_predict(e_tr, e_te, tr.quality, tr.cost, scale, tr.queries)
    k_se = _knn_fit_predict(s_tr, s_te, tr.quality, tr.cost, scale, tr.queries)
    out["knn_static32"] = (k_st[0], cl)
    out["knn_sent32"] = (k_se[0], cl)
    xs_tr, xs_te = np.hstack([xb_tr, e_tr]), np.hstack([xb_te, e_te])
    xu_tr, xu_te = np.hstack([xb_tr, s_tr]), np.hstack([xb_te, s_te])
    out["multi_base"] = (cb_multi(xb_tr, tr.quality, xb_te, seed), cl)
    out["multi_static32"] = (cb_multi(xs_tr, tr.quality, xs_te, seed), cl)
    out["multi_sent32"] = (cb_multi(xu_tr, tr.quality, xu_te, seed), cl)
    # out-of-fold (leave-one-out on train) neighbour means of every model, stacked into the trees
    out["stackmulti_static32"] = (cb_multi(np.hstack([xs_tr, k_st[3][0]]), tr.quality,
                                           np.hstack([xs_te, k_st[0]]), seed), cl)
    out["stackmulti_sent32"] = (cb_multi(np.hstack([xu_tr, k_se[3][0]]), tr.quality,
                                         np.hstack([xu_te, k_se[0]]), seed), cl)
    # label smoothing toward a prior: target = a * q + (1 - a) * prior, the prior being the leave-one-out
    # mean of the query's task (train rows that have a task) or of its k nearest train neighbours
    if tasks_tr is not None and any(t is not None for t in tasks_tr):
        prior_task = loo_task_mean(tasks_tr, tr.quality)
    else:
        prior_task = None
    for a in SMOOTH:
        if prior_task is not None:
            y = a * tr.quality + (1 - a) * prior_task
            if want(f"smtask{a}_multi_static32"):
                out[f"smtask{a}_multi_static32"] = (cb_multi(xs_tr, y, xs_te, seed), cl)
            if want(f"smtask{a}_long_base"):
                out[f"smtask{a}_long_base"] = (cb_long(xb_tr, y, xb_te, seed), cl)
            if want(f"smtask{a}_long_static32"):
                out[f"smtask{a}_long_static32"] = (cb_long(xs_tr, y, xs_te, seed), cl)
        y = a * tr.quality + (1 - a) * k_st[3][0]
        if want(f"smknn{a}_multi_static32"):
            out[f"smknn{a}_multi_static32"] = (cb_multi(xs_tr, y, xs_te, seed), cl)
    if want("irt2_static32"):
        out["irt2_static32"] = (irt_router(xs_tr, tr.quality, xs_te, seed, rank=2), cl)
    if tasks_tr is not None and any(t is not None for t in tasks_tr):
        names, ptr, pte = task_probs(e_tr, e_te, tasks_tr, texts_tr=tr.queries)
        mq, mc = task_means(tasks_tr, tr.quality, tr.cost, names)
        out["taskprior_static32"] = (pte @ mq, pte @ mc)
        if want("stackprior_static32"):
          out["stackprior_static32"] = (cb_multi(np.hstack([xs_tr, ptr @ mq]), tr.quality,
                                               np.hstack([xs_te, pte @ mq]), seed), cl)
    r = router_pred[0]
    ens = {"ens_router_knnstatic": (r, k_st[0]),
           "ens_multistatic_knnstatic": (out["multi_static32"][0], k_st[0]),
           "ens_router_multistatic_knnstatic": (r, out["multi_static32"][0], k_st[0]),
           "ens_stackmulti_knn_static": (out["stackmulti_static32"][0], k_st[0]),
           "ens_all_static": (r, out["multi_static32"][0], k_st[0], out["stackmulti_static32"][0],
                              out["multi_base"][0]),
           "ens_router_multisent_knnsent": (r, out["multi_sent32"][0], k_se[0])}
    if "taskprior_static32" in out:
        ens["ens_router_taskprior_knnstatic"] = (r, out["taskprior_static32"][0], k_st[0])
        ens["ens_all_static_prior"] = ens["ens_all_static"] + (out["taskprior_static32"][0],)
    for k, parts in ens.items():
        out[k] = (np.mean(parts, axis=0), cl)
    return {k: v for k, v in out.items() if want(k)}, {"knn_static32": k_st[2], "knn_sent32": k_se[2]}


def run_one(setkey, seed, only=None, inner=False):
    name, load = SETS[setkey]
    table = load()
    train, test, split = split_benchmark(table, None, 0.3, seed)
    if inner:  # the train part split again: only what is seen here may choose a winner
        ids = train["query_id"].unique().to_list()
        res = []
        for k in range(2):
            vt = split_query_ids(ids, 0.3, 1000 + 10 * seed + k)
            itr, ite, _ = split_benchmark(train.with_columns(split=pl.when(pl.col("query_id").is_in(sorted(vt)))
                                                              .then(pl.lit("test")).otherwise(pl.lit("train"))),
                                          "split", 0.3, seed)
            res.append(_evaluate(name, itr.drop("split"), ite.drop("split"), seed, only))
        return res
    return [_evaluate(name, train, test, seed, only, split)]


def _evaluate(name, train, test, seed, only, split=None):
    t0 = time.time()
    tr, te, scale = prepare(name, train, test, seed)
    curves, extra = base_curves(train, test, tr, te, scale, seed)
    rows = {k: score(curves, k) for k in ("router", "knn", "task", "oracle")}
    task_of = dict(train.select("query_id", "task").unique("query_id").iter_rows())
    tasks_tr = [task_of.get(q) for q in tr.query_ids]
    if FULL:
        cands, knn = candidates(name, tr, te, scale, seed, only, tasks_tr=tasks_tr)
        knn = {k: v[2] for k, v in knn.items()}
    else:
        cands, knn = final_candidates(name, tr, te, scale, seed, extra["router_pred"], tasks_tr, only)
    for k, (pq, pc) in cands.items():
        rows[k] = score(curves, curve=sweep_curve(pq, pc, te.quality, te.cost, scale))
    return {"n_train": len(tr.queries), "n_test": len(te.queries), "knn_k": extra["knn_k"],
            "knn_k_dense": knn, "split": split, "rows": rows,
            "seconds": round(time.time() - t0, 1)}


def table(tag_filter=None):
    """Markdown: per data set, every router x 5 seeds mean ± std and the count of seeds in which it beats
    BOTH knn and task (AIQ / quality at best single's cost, compared inside the same set of curves)."""
    import glob
    import re
    lines = []
    for s in ("rp", "dc"):
        rows: dict[int, dict] = {}
        for path in sorted(glob.glob(str(HERE / "results" / f"{s}_*.json"))):
            m = re.fullmatch(rf"{s}_(\d+)(.*)\.json", os.path.basename(path))
            if not m or "inner" in m.group(2):
                continue
            for k, v in json.loads(Path(path).read_text())[0]["rows"].items():
                rows.setdefault(int(m.group(1)), {})[k] = v
        seeds = sorted(rows)
        if not seeds:
            continue
        names = [k for k in rows[seeds[0]] if all(k in rows[x] for x in seeds)]
        lines += [f"### {SETS[s][0]} (seeds {','.join(map(str, seeds))})", "",
                  "| router | AIQ | norm. AIQ gain | q at best single's cost | norm. q gain | beats knn & task: AIQ | q |",
                  "|---|---|---|---|---|---|---|"]

        def ms(k, f):
            v = np.array([rows[x][k][f] if rows[x][k][f] is not None else np.nan for x in seeds], dtype=float)
            return f"{np.nanmean(v):.4f} ± {np.nanstd(v, ddof=1):.4f}" if f in ("aiq", "q_at_best") else \
                f"{np.nanmean(v):+.3f} ± {np.nanstd(v, ddof=1):.3f}"
        for k in names:
            wa = sum(rows[x][k].get("beats_aiq", False) for x in seeds) if k not in ("knn", "task", "oracle") else "–"
            wq = sum(rows[x][k].get("beats_q", False) for x in seeds) if k not in ("knn", "task", "oracle") else "–"
            lines.append(f"| {k} | {ms(k, 'aiq')} | {ms(k, 'gain_aiq')} | {ms(k, 'q_at_best')} | {ms(k, 'gain_q')} "
                         f"| {wa}/{len(seeds)} | {wq}/{len(seeds)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="rp,dc")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--routers", default="")
    ap.add_argument("--inner", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--table", action="store_true", help="print the markdown table of results/*.json")
    a = ap.parse_args(argv)
    global FULL
    FULL = a.full
    if a.table:
        print(table())
        return
    only = [r for r in a.routers.split(",") if r] or None
    outdir = HERE / "results"
    outdir.mkdir(exist_ok=True)
    for s in a.sets.split(","):
        for seed in map(int, a.seeds.split(",")):
            r = run_one(s, seed, only, a.inner)
            path = outdir / f"{s}_{seed}{'_inner' if a.inner else ''}{a.tag}.json"
            path.write_text(json.dumps(r, indent=1))
            for part in r:
                print(s, seed, "inner" if a.inner else "test", part["seconds"], "s", flush=True)
                for k, v in part["rows"].items():
                    print(f"  {k:28s} aiq {v['aiq']:.4f} gain {v['gain_aiq']:+.3f} q@best "
                          f"{(v['q_at_best'] or float('nan')):.4f} gq {(v['gain_q'] if v['gain_q'] is not None else float('nan')):+.3f}"
                          f" {'W' if v['beats_aiq'] else '.'}{'W' if v['beats_q'] else '.'}",
                          flush=True)


if __name__ == "__main__":
    main()
