"""The descriptor prior: the quality of a model the quality model has no outcomes for, from what is
known about it (size, family, quantization, context, capabilities, a public benchmark score).

The quality model also sees the candidates' descriptors, but beside the identity one-hots the trees
have no reason to split on them: with identity hidden on a share of rows they learned the average
model, so a 0.1 B and a 70 B newcomer got the same quality.  The prior is a separate small CatBoost
ensemble with no identity input at all, so descriptors are all it has to tell models apart, and
quality is constrained to be non-decreasing in ``model_size_b`` and ``model_benchmark_score``
(CatBoost ``monotone_constraints``): with a handful of training models, an unconstrained tree would
memorize each model's size as its name and put a newcomer's quality anywhere between its neighbours.
A model with no declared size sorts below every declared one (``nan_mode="Min"``): a cautious prior.

It is exported as the artifact's optional ``descriptor_prior`` and evaluated like the quality model
(same evaluator, same engine, bit-identical); ``python -m flows.evaluate.cold_start`` measures it by
leave-one-model-out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import polars as pl

from router_runtime.artifact import PRIOR_TARGET
from router_runtime.candidates import candidate_value, candidate_vector, prior_input_names
from router_runtime.features import FeatureSpec
from router_runtime.pool import ModelInfo

__all__ = ["DescriptorPrior", "PRIOR_TREES", "PRIOR_DEPTH", "PRIOR_LEARNING_RATE", "DESCRIPTOR_WEIGHT",
           "MONOTONE_INCREASING", "train_descriptor_prior"]

# Shallow trees, and descriptor splits weighted up (CatBoost feature_weights) so that trees split on
# them before the query features' noise.  Chosen on `python -m flows.evaluate.cold_start` RouteProfile
# seeds 0-1 (mean LOMO Spearman): weight 1, 100 trees, lr 0.04: 0.12; weight 10: 0.16; weight 10,
# 300 trees, lr 0.1: 0.38; no query features, 300 trees, depth 2: 0.31.
PRIOR_TREES = 300
PRIOR_DEPTH = 4
PRIOR_LEARNING_RATE = 0.1
DESCRIPTOR_WEIGHT = 10.0
MONOTONE_INCREASING = ("model_size_b", "model_benchmark_score")


@dataclass
class DescriptorPrior:
    ensemble: dict[str, Any] | None   # the artifact's ``descriptor_prior``, None when not trained
    note: str                         # what it was trained on, or why there is none
    parity_max_abs_diff: float = 0.0
    catboost_model: Any = None


def _varying(names: Sequence[str], models: Sequence[ModelInfo]) -> list[str]:
    """The inputs whose value differs between at least two of ``models`` (NaN counts as a value)."""
    out = []
    for n in names:
        values = {("nan" if math.isnan(v) else v) for v in (candidate_value(n, m) for m in models)}
        if len(values) > 1:
            out.append(n)
    return out


def train_descriptor_prior(table: pl.DataFrame, spec: FeatureSpec, pool: Sequence[ModelInfo],
                           params: Any) -> DescriptorPrior:
    """Fit quality on (query features, descriptors) over ``table``'s labeled rows; ``spec`` is
    fitted and ``params`` the quality model's resolved ``TrainParams`` (seed, learning rate, threads)."""
    from catboost import CatBoostRegressor, Pool  # heavy: imported when training, not at import

    from .training import check_parity, ensemble_from_catboost, training_matrix

    by_name = {m.name: m for m in pool}
    trained = [by_name[n] for n in sorted(table["model"].unique().to_list()) if n in by_name]
    cand = prior_input_names(pool)
    varying = _varying(cand, trained)
    if len(trained) < 2 or not varying:
        return DescriptorPrior(None, f"no descriptor differs between the {len(trained)} trained models "
                                     "(declare size_b, family, benchmark_score ... in the pool)")
    # The target is each answer's quality relative to the mean over the models that answered the same
    # query: the model's own effect, which descriptors can explain, with the query's difficulty (the
    # quality model's part) taken out.  Without that, holding out a strong model lowers the mean of
    # the rest, and a prior that learned mostly the mean ranks held-out models backwards.
    rows = (table.filter(pl.col("quality").is_not_null())
            .with_columns(pl.len().over("query_id").alias("_answers"),
                          (pl.col("quality") - pl.col("quality").mean().over("query_id")).alias("_offset"))
            .filter(pl.col("_answers") >= 2)
            .with_columns(pl.col("_offset").alias("quality"), pl.lit(False).alias("_hide_identity")))
    if rows.is_empty():
        return DescriptorPrior(None, "no query has labeled answers from two models: nothing to compare models by")
    x, y, w = training_matrix(rows, spec, cand, pool)
    inputs = list(x.columns)
    model = CatBoostRegressor(
        loss_function="RMSE", iterations=min(params.iterations, PRIOR_TREES), depth=min(params.depth, PRIOR_DEPTH),
        learning_rate=PRIOR_LEARNING_RATE, l2_leaf_reg=params.l2_leaf_reg,
        random_seed=params.seed, thread_count=params.thread_count, verbose=0, allow_writing_files=False,
        nan_mode="Min", monotone_constraints={n: 1 for n in MONOTONE_INCREASING if n in inputs},
        feature_weights=[DESCRIPTOR_WEIGHT if n in cand else 1.0 for n in inputs],
    )
    xn = x.to_numpy().astype(np.float64)
    model.fit(Pool(xn, y, weight=w, feature_names=inputs))
    ensemble = dict(ensemble_from_catboost(model, inputs), target=PRIOR_TARGET)
    idx = np.random.default_rng(params.seed).choice(len(xn), size=min(len(xn), 2000), replace=False)
    runtime_rows = [list(spec.extract(r["query"])) + list(candidate_vector(cand, by_name[r["model"]]))
                    for r in rows[idx.tolist()].select("query", "model").iter_rows(named=True)]
    diff = check_parity(ensemble, model, xn[idx], runtime_rows=runtime_rows)
    return DescriptorPrior(ensemble, f"quality from descriptors on {len(rows)} rows of {len(trained)} models "
                                     f"(varying: {', '.join(varying)})", parity_max_abs_diff=diff,
                           catboost_model=model)
