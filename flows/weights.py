"""Inverse-propensity weights, bounded: the one rule training and off-policy evaluation share.

A logged propensity is the probability the serving policy gave the model it chose; its inverse
re-weights the logs as if every model had been tried evenly.  A contract-valid propensity can still
be absurd (``1e-300`` passes the record checks: it is in (0, 1]), and its weight (1e300) overflows
CatBoost's float32 weights ("Too few sampling units") on every later run and turns IPS estimates
into inf/NaN.  So:

- propensities are floored at ``PROPENSITY_FLOOR`` (weights at most ``1 / PROPENSITY_FLOOR``): the
  clipped-IPS estimator, biased only for the rows clipped, which are counted and reported;
- training weights are then self-normalized to mean 1, so their scale never depends on the logging
  policy and stays well inside float32.

The floor is far below what exploration logs (ε = 0.05 over 10 models gives 0.005), so weights of
real traffic are untouched; only broken or hostile propensities are clipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

__all__ = ["PROPENSITY_FLOOR", "clip_propensities", "bounded_training_weights"]

PROPENSITY_FLOOR = 1e-3


def clip_propensities(props: np.ndarray) -> tuple[np.ndarray, int]:
    """``props`` floored at PROPENSITY_FLOOR, and how many were below it."""
    props = np.asarray(props, dtype=np.float64)
    low = props < PROPENSITY_FLOOR
    return np.where(low, PROPENSITY_FLOOR, props), int(low.sum())


def bounded_training_weights(train: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``train`` with its ``weight`` column = 1 / clipped propensity, self-normalized to mean 1, and
    the statement of that for the manifest (``training.weighting``)."""
    props, clipped = clip_propensities(train["propensity"].to_numpy())
    w = 1.0 / props
    mean = float(w.mean()) if len(w) else 1.0
    info = {"method": "inverse propensity, clipped and self-normalized",
            "propensity_floor": PROPENSITY_FLOOR, "max_weight_before_normalizing": 1.0 / PROPENSITY_FLOOR,
            "clipped_rows": clipped, "rows": len(w), "normalizer": mean}
    return train.with_columns(pl.Series("weight", w / mean, dtype=pl.Float64)), info
