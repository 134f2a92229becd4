"""Issue 12, session 6: YetiRank through the project's own learner.  study_y.py measured YetiRank with
the study's learner (cb_long); the project's differs: its hidden-identity rows (cold-start prior), its
weights, and its export and runtime scoring.  Here `flows.training.fit_rows` is swapped, for the
quality model only, for the same rows fitted with YetiRank.  Groups are (query, identity hidden or
not), so hidden rows rank among themselves.  The score is then scaled into quality units, with the
bias set to the train part's mean quality: per query, the centred score's least-squares slope, as in
study_y.in_quality_units.  The scale is put into the exported ensemble's `scale`, and the runtime
Router scores the test part as usual.  The length model is unchanged.

    PYTHONPATH=$PWD .venv/bin/python tests/studies/routing_plateau/study_p.py --sets hm,rp,dc
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import seeds_loop  # noqa: E402
import study  # noqa: E402
import study_s  # noqa: E402

import flows.training as training  # noqa: E402
from flows.benchmark_eval import fit_router, split_benchmark  # noqa: E402
from flows.evaluation import predicted_matrix  # noqa: E402
from flows.metrics import sweep_curve  # noqa: E402
from flows.training import TrainParams  # noqa: E402

_ORIGINAL = training.fit_rows


def _yeti_rows(aug, x, y, w, spec, cand, pool, params, *, iterations, label):
    if not label.startswith("training the quality model"):
        return _ORIGINAL(aug, x, y, w, spec, cand, pool, params, iterations=iterations, label=label)
    from catboost import CatBoost, Pool

    inputs = list(x.columns)
    key = aug.select(pl.col("query_id") + pl.when(pl.col("_hide_identity")).then(pl.lit("#h"))
                     .otherwise(pl.lit("")))["query_id"].to_numpy()
    order = np.argsort(key, kind="stable")
    groups = np.unique(key[order], return_inverse=True)[1]
    xn = x.to_numpy().astype(np.float64)[order]
    ys = y[order]
    model = CatBoost(dict(
        loss_function="YetiRank", iterations=iterations, depth=params.depth, learning_rate=params.learning_rate,
        l2_leaf_reg=params.l2_leaf_reg, random_seed=params.seed, thread_count=params.thread_count, verbose=0,
        allow_writing_files=False, nan_mode="Min",
        feature_weights=[params.identity_weight if n.startswith(training.IDENTITY_PREFIX) else 1.0
                         for n in inputs]))
    model.fit(Pool(xn, ys, group_id=groups))
    s = model.predict(xn, prediction_type="RawFormulaVal")
    n_groups = groups.max() + 1
    def centred(v):
        return v - (np.bincount(groups, v, n_groups) / np.bincount(groups, None, n_groups))[groups]
    cs, cy = centred(s), centred(ys)
    b = max(float(cs @ cy) / max(float(cs @ cs), 1e-12), 0.0)
    ensemble = training.ensemble_from_catboost(model, inputs)
    ensemble["scale"] *= b
    ensemble["bias"] = ensemble["bias"] * b + float(ys.mean())
    return model, ensemble, 0.0


def run(setkey, seed):
    name, load = study_s.SETS[setkey]
    train, test, _ = split_benchmark(load(), None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    curves, _ = study.base_curves(train, test, tr, te, scale, seed)
    training.fit_rows = _yeti_rows
    try:
        art, _ = fit_router(train, TrainParams(seed=seed, thread_count=1))
    finally:
        training.fit_rows = _ORIGINAL
    pq, pc = predicted_matrix(art, te)
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")}
    rows["router_yeti"] = study.score(curves, curve=sweep_curve(pq, pc, te.quality, te.cost, scale))
    return {"rows": rows}


def main():
    seeds_loop.run_sets(run, "results_p", "hm,rp,dc")


if __name__ == "__main__":
    main()
