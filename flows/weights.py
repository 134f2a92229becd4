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

__all__ = ["PROPENSITY_FLOOR", "clip_propensities", "shadow_weights", "bounded_training_weights"]

PROPENSITY_FLOOR = 1e-3


def clip_propensities(props: np.ndarray) -> tuple[np.ndarray, int]:
    """``props`` floored at PROPENSITY_FLOOR, and how many were below it."""
    props = np.asarray(props, dtype=np.float64)
    low = props < PROPENSITY_FLOOR
    return np.where(low, PROPENSITY_FLOOR, props), int(low.sum())


def shadow_weights(train: pl.DataFrame) -> np.ndarray | None:
    """The weight of each shadow row (``shadow_of`` set; None when there is no such column): K, the
    number of candidates of the decision it shadows (the pool's model count when candidates are not
    at hand).  K is what 1/propensity averages to under any logging policy that can pick each of K
    candidates, so a replayed answer counts as much as a logged one.  Measured by the simulated-judge
    study (tests/studies/judge_labels, a = 0.85, r = 10 %): AIQ +0.017 on RouteProfile (9 of 10 seeds
    better) and +0.003 on LLMRouter (4 of 5) against weight 1."""
    if "shadow_of" not in train.columns:
        return None
    if "candidates" in train.columns:
        k = train["candidates"].list.len().fill_null(0).to_numpy().astype(np.float64)
    else:
        k = np.zeros(len(train))
    k = np.where(k > 0, k, float(max(train["model"].n_unique(), 1)))
    return np.where(train["shadow_of"].is_not_null().to_numpy(), k, np.nan)


def bounded_training_weights(train: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``train`` with its ``weight`` column = 1 / clipped propensity (a shadow row: ``shadow_weights``),
    self-normalized to mean 1, and the statement of that for the manifest (``training.weighting``)."""
    props, clipped = clip_propensities(train["propensity"].to_numpy())
    w = 1.0 / props
    shadow = shadow_weights(train)
    n_shadow = 0
    if shadow is not None:
        is_shadow = ~np.isnan(shadow)
        n_shadow = int(is_shadow.sum())
        w = np.where(is_shadow, shadow, w)
    mean = float(w.mean()) if len(w) else 1.0
    info = {"method": "inverse propensity, clipped and self-normalized; shadow rows weigh K (their decision's "
                      "candidate count)",
            "propensity_floor": PROPENSITY_FLOOR, "max_weight_before_normalizing": 1.0 / PROPENSITY_FLOOR,
            "clipped_rows": clipped, "shadow_rows": n_shadow, "rows": len(w), "normalizer": mean}
    return train.with_columns(pl.Series("weight", w / mean, dtype=pl.Float64)), info
