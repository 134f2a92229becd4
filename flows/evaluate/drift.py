"""Drift: how far the recent logs' feature distributions moved from the training window.

Population Stability Index per feature output: bins are the training window's deciles (distinct
edges only, so a constant feature has one bin), PSI = Σ (r − t) · ln(r / t) over bins, with shares
floored at 1e-4 so an empty bin does not give infinity.  Missing values form their own bin.
Informative, not gating: by the usual reading < 0.1 is stable, 0.1–0.25 moderate, > 0.25 large.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from router_runtime.features import FeatureSpec

from ..features import feature_matrix

__all__ = ["psi", "drift_report"]

_FLOOR = 1e-4


def psi(train: np.ndarray, recent: np.ndarray, bins: int = 10) -> float:
    train = np.asarray(train, dtype=np.float64)
    recent = np.asarray(recent, dtype=np.float64)
    t_ok, r_ok = train[~np.isnan(train)], recent[~np.isnan(recent)]
    edges = np.unique(np.quantile(t_ok, np.linspace(0, 1, bins + 1)[1:-1])) if len(t_ok) else np.array([])

    def shares(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, ok, side="right"), minlength=len(edges) + 1).astype(float)
        counts = np.append(counts, len(x) - len(ok))  # the missing-value bin
        return np.maximum(counts / max(len(x), 1), _FLOOR)

    t, r = shares(train, t_ok), shares(recent, r_ok)
    return float(np.sum((r - t) * np.log(r / t)))


def drift_report(spec: FeatureSpec, train_queries: list[str], recent_queries: list[str], *,
                 top: int = 10) -> dict[str, Any]:
    """PSI of every feature output between the two query sets, largest first."""
    if not train_queries or not recent_queries:
        return {"n_train": len(train_queries), "n_recent": len(recent_queries), "features": [], "max_psi": None}
    a = feature_matrix(pl.Series(train_queries, dtype=pl.String), spec)
    b = feature_matrix(pl.Series(recent_queries, dtype=pl.String), spec)
    values = [(name, psi(a[name].to_numpy(), b[name].to_numpy())) for name in spec.output_names]
    values.sort(key=lambda kv: -kv[1])
    return {
        "n_train": len(train_queries), "n_recent": len(recent_queries), "bins": "training deciles",
        "max_psi": values[0][1] if values else None,
        "moderate_or_large": sum(v >= 0.1 for _, v in values),
        "features": [{"feature": n, "psi": round(v, 6)} for n, v in values[:top] if not math.isnan(v)],
    }
