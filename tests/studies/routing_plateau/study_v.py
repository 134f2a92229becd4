"""Issue 12, session 5: supervised cue tokens.  The default spec hashes the 4,096 most frequent
tokens into 64 buckets, so a cue word ("sql", "haiku") shares its input with filler.  Here a second
token_buckets feature gives each of the K tokens that most shift the models' relative quality (on the
train part only) its own bucket: an existing op, fitted differently (no runtime change).

Token score (train part): for a token t in c_t >= MIN_COUNT queries, r_t(m) = mean quality of model m
on those queries minus the mean over models; score = sqrt(c_t) * || r_t - r ||_2 with r the same over
all train queries.  K fixed before any run (64; 128 as the one alternative).

    PYTHONPATH=$PWD .venv/bin/python tests/studies/routing_plateau/study_v.py --sets rp,hm,dc
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import study  # noqa: E402
import seeds_loop  # noqa: E402
import study_s  # noqa: E402

import flows.evaluate.benchmark as bench  # noqa: E402
from flows.benchmark_eval import split_benchmark  # noqa: E402
from flows.features import fit_feature_spec, token_lists  # noqa: E402
from flows.metrics import sweep_curve  # noqa: E402
from router_runtime.features import FeatureSpec, default_feature_spec  # noqa: E402

MIN_COUNT = 5


def cue_tokens(train: pl.DataFrame, k: int, within: bool = False) -> list[str]:
    """``within``: score the shift against the query's task mean (what per-task routing already has),
    so that the tokens chosen tell queries of one task apart rather than name the task."""
    models = sorted(train["model"].unique().to_list())
    qm = study.quality_matrix(train, models)
    rel = qm.quality - qm.quality.mean(axis=1, keepdims=True)
    if within and "task" in train.columns:
        task_of = dict(train.select("query_id", "task").unique("query_id").iter_rows())
        tasks = np.array([str(task_of.get(q)) for q in qm.query_ids])
        for t in set(tasks):
            rel[tasks == t] -= rel[tasks == t].mean(axis=0)
    r = rel.mean(axis=0)
    toks = token_lists(list(qm.queries), max_chars=65536)
    where: dict[str, list[int]] = {}
    for i, ts in enumerate(toks):
        for t in set(ts):
            where.setdefault(t, []).append(i)
    scored = []
    for t, rows in where.items():
        if len(rows) >= MIN_COUNT and len(rows) < len(toks):
            scored.append((float(np.sqrt(len(rows)) * np.linalg.norm(rel[rows].mean(axis=0) - r)), t))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [t for _, t in scored[:k]]


def spec_with_cues(train: pl.DataFrame, k: int, within: bool = False) -> FeatureSpec:
    queries = train.unique("query_id", keep="first", maintain_order=True)["query"]
    base = fit_feature_spec(default_feature_spec(), queries)
    d = base.to_json()
    d["features"].append({"name": "cue", "op": "token_buckets",
                          "params": {"n_buckets": k, "vocab": {t: i for i, t in enumerate(cue_tokens(train, k, within))}}})
    return FeatureSpec.from_json(d)


def predict_with(spec, train, te, seed, scale):
    orig = bench.default_feature_spec
    bench.default_feature_spec = lambda: spec
    try:
        return study_s.fit_predict(train, te, "none", 1.0, seed, scale)
    finally:
        bench.default_feature_spec = orig


def run(setkey, seed, ks=(64, 128), variants=(("cue", False), ("cuew", True))):
    name, load = study_s.SETS[setkey]
    train, test, _ = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")}
    for label, within in variants:
        for k in ks:
            pq, pc = predict_with(spec_with_cues(train, k, within), train, te, seed, scale)
            rows[f"{label}{k}"] = study.score(curves, curve=sweep_curve(pq, pc, te.quality, te.cost, scale))
    return {"rows": rows, "cues": cue_tokens(train, 24), "cues_within": cue_tokens(train, 24, True)}


def main():
    seeds_loop.run_sets(run, "results_v", "rp,hm,dc")


if __name__ == "__main__":
    main()
