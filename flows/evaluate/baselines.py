"""Baseline routers, fitted on the train part and scored on the same test queries as the router.

Each learned baseline returns predicted (quality, cost) matrices (test queries × models) that go
through the same λ sweep as the router (``flows.evaluate.curves.sweep_curve``); the fixed choices (random,
cheapest, best single model) are one point each.

- random: the expected point of a uniform choice (mean over models), not one sampled draw;
- cheapest / best single: the model with the lowest mean cost / highest mean quality on train
  (ties: cheaper, then name);
- kNN (RouterBench's baseline): a query's k most similar train queries (cosine similarity of hashed
  bag-of-words vectors, log term frequency x idf fitted on train) predict each model's quality and cost as their means; k is chosen on train by
  leave-one-out AIQ;
- per-task: each model's mean quality and cost on train within the query's task.  A test query
  without a task (LLMRouter's test file has no cluster id) gets the task whose train centroid is most
  similar in the same hashed bag-of-words space, so the baseline stays usable and says so.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import polars as pl

from router_runtime.text import ascii_lower

from .holdout import QualityMatrix
from .curves import aiq, sweep_curve

__all__ = ["hashed_bow", "fit_idf", "fixed_choices", "KnnRouter", "fit_knn", "TaskRouter", "fit_task_router",
           "task_predictions", "N_HASH"]

N_HASH = 1 << 14
KNN_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128)
_TOKEN_BYTES = bytes(c + 32 if 65 <= c <= 90 else c if (97 <= c <= 122 or 48 <= c <= 57 or c == 95) else 32
                     for c in range(256))


def hashed_bow(queries: Sequence[str], idf: np.ndarray | None = None, n_hash: int = N_HASH):
    """L2-normalised rows of log(1 + count) x idf of each ASCII-lower-cased [a-z0-9_] token's crc32 bucket
    (without ``idf``, every bucket weighs 1)."""
    from scipy.sparse import csr_matrix

    indptr, indices, data = [0], [], []
    for q in queries:
        counts: dict[int, int] = {}
        for tok in ascii_lower(q).encode("utf-8").translate(_TOKEN_BYTES).split():
            h = zlib.crc32(tok) % n_hash
            counts[h] = counts.get(h, 0) + 1
        v = np.log1p(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
        if idf is not None:
            v = v * idf[np.fromiter(counts, dtype=np.int64, count=len(counts))]
        norm = np.sqrt((v * v).sum())
        indices.extend(counts)
        data.extend((v / norm if norm > 0 else v).tolist())
        indptr.append(len(indices))
    return csr_matrix((np.asarray(data), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
                      shape=(len(queries), n_hash))


def fit_idf(queries: Sequence[str], n_hash: int = N_HASH) -> np.ndarray:
    """Smoothed inverse document frequency of each bucket on ``queries``: frequent words weigh less."""
    df = np.bincount(hashed_bow(queries, n_hash=n_hash).indices, minlength=n_hash)
    return np.log((1.0 + len(queries)) / (1.0 + df)) + 1.0


def fixed_choices(train: pl.DataFrame, models: Sequence[str]) -> dict[str, str]:
    """The best single model and the cheapest one, chosen on train."""
    means = (train.filter(pl.col("model").is_in(list(models))).group_by("model")
             .agg(pl.col("quality").mean(), pl.col("cost").mean()))
    best = means.sort(["quality", "cost", "model"], descending=[True, False, False])["model"][0]
    cheapest = means.sort(["cost", "quality", "model"], descending=[False, True, False])["model"][0]
    return {"best_single": best, "cheapest": cheapest}


def _neighbours(sim_rows: np.ndarray, kmax: int) -> np.ndarray:
    """Indices of the kmax most similar columns per row, most similar first (ties: lower index)."""
    kmax = min(kmax, sim_rows.shape[1])
    part = np.argpartition(-sim_rows, kmax - 1, axis=1)[:, :kmax] if kmax < sim_rows.shape[1] else \
        np.tile(np.arange(sim_rows.shape[1]), (len(sim_rows), 1))
    s = np.take_along_axis(sim_rows, part, axis=1)
    order = np.lexsort((part, -s), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _knn_means(nbrs: np.ndarray, values: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """Per k, the mean of ``values`` (train × models) over each row's first k neighbours."""
    cum = np.cumsum(values[nbrs], axis=1)  # (rows, kmax, models)
    return {k: cum[:, min(k, nbrs.shape[1]) - 1, :] / min(k, nbrs.shape[1]) for k in ks}


@dataclass
class KnnRouter:
    k: int
    idf: np.ndarray
    train_vectors: object
    train_quality: np.ndarray
    train_cost: np.ndarray
    loo_aiq: dict[int, float]

    def predict(self, queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        sim = (hashed_bow(queries, self.idf) @ self.train_vectors.T).toarray()
        nbrs = _neighbours(sim, self.k)
        return (_knn_means(nbrs, self.train_quality, [self.k])[self.k],
                _knn_means(nbrs, self.train_cost, [self.k])[self.k])


def fit_knn(train_m: QualityMatrix, scale: float, candidates: Sequence[int] = KNN_CANDIDATES,
            chunk: int = 1024) -> KnnRouter:
    """Choose k by leave-one-out AIQ on train (a query's own text never counts as its neighbour)."""
    idf = fit_idf(train_m.queries)
    x = hashed_bow(train_m.queries, idf)
    n = x.shape[0]
    ks = [k for k in candidates if k < n] or [max(1, n - 1)]
    kmax = max(ks)
    texts = np.unique(np.asarray(train_m.queries, dtype=object), return_inverse=True)[1]  # same text, same code
    pq = {k: np.empty_like(train_m.quality) for k in ks}
    pc = {k: np.empty_like(train_m.cost) for k in ks}
    for lo in range(0, n, chunk):
        sim = (x[lo:lo + chunk] @ x.T).toarray()
        same = texts[lo:lo + chunk, None] == texts[None, :]
        sim[same] = -np.inf  # itself and exact duplicates: LOO would otherwise reward k = 1
        nbrs = _neighbours(sim, kmax)
        for k, v in _knn_means(nbrs, train_m.quality, ks).items():
            pq[k][lo:lo + chunk] = v
        for k, v in _knn_means(nbrs, train_m.cost, ks).items():
            pc[k][lo:lo + chunk] = v
    curves = {k: sweep_curve(pq[k], pc[k], train_m.quality, train_m.cost, scale) for k in ks}
    scores = aiq(curves)
    best = max(ks, key=lambda k: (scores[k], -k))
    return KnnRouter(best, idf, x, train_m.quality, train_m.cost, {int(k): float(v) for k, v in scores.items()})


@dataclass
class TaskRouter:
    """The per-task baseline's predictions on the test queries and the task each one was routed as."""
    quality: np.ndarray   # (test queries, models): the models' mean quality on train within the query's task
    cost: np.ndarray
    tasks: list[str]      # the task of each test query: its own, or the inferred one
    inferred: int         # how many test queries had no task (or one unseen in train) and got an inferred one
    inferred_rows: np.ndarray  # their row indices in the test matrix


def task_predictions(train: pl.DataFrame, test_m: QualityMatrix, test_tasks: Sequence[str | None]
                     ) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(quality, cost, number of inferred tasks) of ``fit_task_router``, or None without a task."""
    tr = fit_task_router(train, test_m, test_tasks)
    return None if tr is None else (tr.quality, tr.cost, tr.inferred)


def fit_task_router(train: pl.DataFrame, test_m: QualityMatrix, test_tasks: Sequence[str | None]
                    ) -> TaskRouter | None:
    """Per-task mean quality and cost of each model on train, for each test query's task; None when the
    train part has no task."""
    if "task" not in train.columns or train["task"].null_count() == len(train):
        return None
    t = train.filter(pl.col("task").is_not_null())
    means = t.group_by("task", "model").agg(pl.col("quality").mean(), pl.col("cost").mean())
    tasks = sorted(means["task"].unique().to_list())
    q = means.pivot(on="model", index="task", values="quality").sort("task")
    c = means.pivot(on="model", index="task", values="cost").sort("task")
    # a model never seen in a task gets its overall train mean
    overall = train.group_by("model").agg(pl.col("quality").mean(), pl.col("cost").mean())
    oq = dict(zip(overall["model"], overall["quality"]))
    oc = dict(zip(overall["model"], overall["cost"]))
    tq = np.column_stack([q[m].fill_null(oq[m]).to_numpy() if m in q.columns else np.full(len(tasks), oq[m])
                          for m in test_m.models])
    tc = np.column_stack([c[m].fill_null(oc[m]).to_numpy() if m in c.columns else np.full(len(tasks), oc[m])
                          for m in test_m.models])
    index = {name: i for i, name in enumerate(tasks)}
    known = np.array([index.get(task, -1) if task is not None else -1 for task in test_tasks])
    unknown = np.flatnonzero(known < 0)
    if len(unknown):
        tq_rows = t.unique("query_id", keep="first", maintain_order=True)
        idf = fit_idf(tq_rows["query"].to_list())
        xv = hashed_bow(tq_rows["query"].to_list(), idf)
        lab = np.array([index[s] for s in tq_rows["task"].to_list()])
        cent = np.vstack([np.asarray(xv[lab == i].mean(axis=0)) for i in range(len(tasks))])
        cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
        sim = hashed_bow([test_m.queries[i] for i in unknown], idf) @ cent.T
        known[unknown] = np.asarray(sim).argmax(axis=1)
    return TaskRouter(tq[known], tc[known], [tasks[i] for i in known], int(len(unknown)), unknown)
