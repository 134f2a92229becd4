"""How well the length model predicts completion tokens on held-out queries, against a per-model
constant (each model's median completion tokens on the train part).

    python -m flows.evaluate.length --source ../shared/data/routeprofile --format routeprofile --seeds 0 1 2 3 4

Per seed: the pipeline's split (``flows.sources.split_table``), the length model trained exactly as
``zeta train`` trains it (``flows.length.train_length_model``), and the median absolute error in
tokens of both predictors on every (test query, model) pair that carries a token count.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Sequence

import numpy as np
import polars as pl

from router_runtime.candidates import candidate_input_names
from router_runtime.features import default_feature_spec
from router_runtime.trees import ObliviousEnsemble

__all__ = ["length_error"]


def length_error(table: pl.DataFrame, seeds: Sequence[int] = (0, 1, 2, 3, 4), test_fraction: float = 0.3,
                 iterations: int = 300, thread_count: int = 1) -> dict[str, Any]:
    from ..features import fit_feature_spec
    from ..length import length_rows, train_length_model
    from ..sources import split_table
    from ..training import TrainParams, build_pool, training_matrix

    runs = []
    for seed in seeds:
        train, test, _ = split_table(table, None, test_fraction, seed)
        pool = build_pool(train)
        spec = fit_feature_spec(default_feature_spec(), train.unique("query_id", keep="first")["query"])
        models = sorted(train["model"].unique().to_list())
        params = TrainParams(iterations=iterations, seed=seed, thread_count=thread_count).resolved(
            len(train) / max(1, len(models)), train["query_id"].n_unique())
        cand = candidate_input_names(models, pool)
        lm = train_length_model(train, spec, cand, pool, params)
        if lm.ensemble is None:
            raise ValueError(f"seed {seed}: no length model ({lm.note})")
        rows = length_rows(test).filter(pl.col("model").is_in(models))
        x, _, _ = training_matrix(rows.with_columns(pl.lit(0.0).alias("quality")), spec, cand, pool)
        raw = ObliviousEnsemble(lm.ensemble).predict_many(x.to_numpy().tolist(), use_numpy=True)
        pred = np.array([math.expm1(max(0.0, r)) for r in raw])
        truth = rows["completion_tokens"].to_numpy().astype(np.float64)
        medians = dict(length_rows(train).group_by("model").agg(pl.col("completion_tokens").median()).iter_rows())
        const = np.array([medians[m] for m in rows["model"].to_list()], dtype=np.float64)
        runs.append({"seed": seed, "test_rows": len(rows),
                     "mae_model": float(np.median(np.abs(pred - truth))),
                     "mae_constant": float(np.median(np.abs(const - truth))),
                     "mean_abs_model": float(np.mean(np.abs(pred - truth))),
                     "mean_abs_constant": float(np.mean(np.abs(const - truth)))})
    keys = ("mae_model", "mae_constant", "mean_abs_model", "mean_abs_constant")
    return {"runs": runs, "mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
            "model_better_seeds": sum(r["mae_model"] < r["mae_constant"] for r in runs),
            "statement": "median absolute error in completion tokens on the test part; constant = each "
                         "model's train median"}


def main(argv: list[str] | None = None) -> None:
    from ..sources import load_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True)
    ap.add_argument("--format", default="table")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--iterations", type=int, default=300)
    a = ap.parse_args(argv)
    table, _ = load_table(a.source, a.format)
    print(json.dumps(length_error(table, a.seeds, iterations=a.iterations), indent=1))


if __name__ == "__main__":
    import sys

    from ..cli import run_script

    sys.exit(run_script(main, "python -m flows.evaluate.length"))
