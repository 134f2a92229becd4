"""The one resampling rule of every interval the pipeline reports (off-policy estimates, the paired
differences the promotion gate reads, the full-information holdout comparison).

Nonparametric bootstrap over rows, percentile interval at ``level``.  Row indices are drawn with
``np.random.default_rng(seed)`` (any seed ``default_rng`` accepts), ``n_bootstrap`` replicates, in chunks
of at most ``_BOOT_CHUNK`` (replicate × row) cells, so memory stays bounded for n ~ 1e6; each chunk turns
its index matrix into per-replicate row counts (multinomial weights) and takes one matrix product with
the per-row terms.  A chunk of b replicates draws the same indices as b draws of n one after the other,
so the replicates do not depend on the chunk size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["bootstrap_sums", "percentile_interval"]

_BOOT_CHUNK = 1 << 22  # replicate × row cells per chunk: ~32 MB of int64 indices, the same of counts


def bootstrap_sums(values: np.ndarray, n_bootstrap: int, seed: Any) -> np.ndarray:
    """(n_bootstrap, m) column sums of ``values`` (n, m) over rows resampled with replacement."""
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((n_bootstrap, values.shape[1]))
    step = max(1, _BOOT_CHUNK // n)
    for start in range(0, n_bootstrap, step):
        b = min(step, n_bootstrap - start)
        idx = rng.integers(0, n, size=(b, n))
        # Row counts per replicate (multinomial weights) via one bincount over offset indices; then a
        # single matrix product instead of a (b, n, m) gather.
        counts = np.bincount((idx + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        out[start:start + b] = counts.astype(np.float64) @ values
    return out


def percentile_interval(x: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` interval of the replicates ``x``; NaN replicates (undefined) are left out."""
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))
