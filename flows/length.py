"""The length model: completion tokens per (query, model), a second small CatBoost ensemble.

It is trained on the rows that carry ``completion_tokens`` (benchmark tables such as RouteProfile,
successful logged calls), predicts ``log1p(tokens)`` over the same inputs as the quality model (the
query's features and the candidate's inputs, identity hidden on the same share of rows so that a
cold model gets a length from its descriptors) and is exported as the artifact's optional
``length_model``.  The runtime evaluates it with the quality model's evaluator on the same engine,
so the parity guarantee is the same one: ``check_parity`` against CatBoost before export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import polars as pl

from router_runtime.artifact import LENGTH_TARGET
from router_runtime.features import FeatureSpec
from router_runtime.pool import ModelInfo

__all__ = ["LengthModel", "MIN_LENGTH_ROWS", "MAX_LENGTH_TREES", "length_rows", "train_length_model"]

# Fewer rows with a token count than this, or a count that never varies (LLMRouter's importer states
# one assumed count for every answer), and there is nothing to learn: the pool's completion_tokens stay.
MIN_LENGTH_ROWS = 50

# At most this many trees: the length model runs on every decision beside the quality model.
# Measured with `python -m flows.evaluate.length` on RouteProfile (5 seeds, median absolute error in
# tokens, per-model constant 47.7): 300 trees 31.0, 100 trees 31.8; `zeta bench --quick` compiled p50
# of a decision 23 us without a length model, 30 us with 300 trees.
MAX_LENGTH_TREES = 100


@dataclass
class LengthModel:
    ensemble: dict[str, Any] | None   # the artifact's ``length_model``, None when not trained
    rows: int                         # rows with a token count
    note: str                         # why there is none, or what it was trained on
    parity_max_abs_diff: float = 0.0
    catboost_model: Any = None


def length_rows(table: pl.DataFrame) -> pl.DataFrame:
    """The rows that carry a completion token count."""
    if "completion_tokens" not in table.columns:
        return table.clear()
    return table.filter(pl.col("completion_tokens").is_not_null() & (pl.col("completion_tokens") >= 0))


def train_length_model(table: pl.DataFrame, spec: FeatureSpec, cand: Sequence[str], pool: Sequence[ModelInfo],
                       params: Any) -> LengthModel:
    """Fit log1p(completion tokens) on ``table``'s rows that carry it; ``spec`` is fitted, ``cand``
    the quality model's candidate inputs and ``params`` its resolved ``TrainParams``."""
    from .training import fit_rows, training_matrix, with_hidden_identity

    rows = length_rows(table)
    if len(rows) < MIN_LENGTH_ROWS:
        return LengthModel(None, len(rows), f"{len(rows)} rows carry completion_tokens (< {MIN_LENGTH_ROWS})")
    if rows["completion_tokens"].n_unique() < 2:
        return LengthModel(None, len(rows), "completion_tokens is one constant: nothing to learn")
    # training_matrix reads the label from ``quality``: here the label is the log1p token count,
    # and every row counts once (how long an answer is does not depend on who logged the call).
    aug = with_hidden_identity(rows, params.unknown_model_share, params.seed).with_columns(
        pl.col("completion_tokens").cast(pl.Float64).log1p().alias("quality"), pl.lit(1.0).alias("weight"))
    x, y, _ = training_matrix(aug, spec, cand, pool)
    model, ensemble, diff = fit_rows(aug, x, y, None, spec, cand, pool, params,
                                     iterations=min(params.iterations, MAX_LENGTH_TREES),
                                     label="training the length model (trees)")
    ensemble = dict(ensemble, target=LENGTH_TARGET)
    return LengthModel(ensemble, len(rows), f"log1p(completion_tokens) on {len(rows)} rows",
                       parity_max_abs_diff=diff, catboost_model=model)
