"""Issue 12, session 6: can the must be met at all on the hand-made table?  That table is made by a
known rule (handmade.py: each query's kind fixes every model's probability of a correct answer), so
its Bayes-optimal router is known: predicted quality = the true P[kind][model], cost = the true
cost.  No router can do better in expectation.  If even it is not strictly above kNN and per-task
on the realized 0/1 labels of a test part in 4 of 5 seeds, the criterion measures the draw of the
labels, not the router.

`bayes`: the true P and the true cost; `bayes_pc`: the true P with the router's own cost prediction.
`STUDY_HM_N=N` regenerates the table with N queries per task (same rule and generator seed, two filler
words per query so that there are enough distinct texts).

    PYTHONPATH=$PWD .venv/bin/python tests/studies/routing_plateau/study_x.py --sets hm
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import handmade  # noqa: E402
import seeds_loop  # noqa: E402
import study  # noqa: E402
import study_s  # noqa: E402

from flows.benchmark_eval import split_benchmark  # noqa: E402
from flows.metrics import sweep_curve  # noqa: E402

# The kind of a hand-made query, read back from the cue words handmade._query puts into it.
_KIND_RULES = (
    ("word", re.compile(r"Explain each step")),
    ("arith", re.compile(r"^What is \d+ (plus|times|minus) \d+\?")),
    ("sql", re.compile(r"SQL|regex")),
    ("python", re.compile(r"in Python\?")),
    ("obscure", re.compile(r"obscure")),
    ("formal", re.compile(r"formal")),
    ("short", re.compile(r"haiku|slogan|rhyme")),
)


def kind_of(query: str) -> str:
    for kind, rx in _KIND_RULES:
        if rx.search(query):
            return kind
    if any(query.startswith(c) for c in handmade.COMMON):
        return "common"
    raise ValueError(f"no kind for {query!r}")


def _table() -> pl.DataFrame:
    n = int(os.environ.get("STUDY_HM_N", "120"))
    if n == 120:
        return study_s.SETS["hm"][1]()
    return pl.DataFrame(handmade.make_rows(n_per_task=n, fillers=2))


def run(setkey, seed):
    assert setkey == "hm", "the Bayes router is known only for the hand-made table"
    table = _table()
    train, test, _ = split_benchmark(table, None, 0.3, seed)
    tr, te, scale = study.prepare("handmade", train, test, seed)
    curves, extra = study.base_curves(train, test, tr, te, scale, seed)
    p = np.array([[handmade.P[kind_of(q)][m] for m in te.models] for q in te.queries])
    rows = {k: study.score(curves, k) for k in ("router", "knn", "task")}
    rows["bayes"] = study.score(curves, curve=sweep_curve(p, te.cost, te.quality, te.cost, scale))
    # the same lookup learned: each model's mean quality over the train queries of the query's kind
    ktr = [kind_of(q) for q in tr.queries]
    means = {k: tr.quality[[i for i, x in enumerate(ktr) if x == k]].mean(axis=0) for k in set(ktr)}
    km = np.array([means[kind_of(q)] for q in te.queries])
    rows["kind_mean"] = study.score(curves, curve=sweep_curve(km, extra["router_pred"][1], te.quality, te.cost,
                                                              scale))
    rows["bayes_pc"] = study.score(curves, curve=sweep_curve(p, extra["router_pred"][1], te.quality, te.cost,
                                                             scale))
    return {"rows": rows, "n_test": len(te.queries)}


def main():
    tag = os.environ.get("STUDY_HM_N", "120")
    seeds_loop.run_sets(run, f"results_x_{tag}", "hm")


if __name__ == "__main__":
    main()
