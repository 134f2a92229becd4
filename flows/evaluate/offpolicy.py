"""Off-policy evaluation (OPE) of a routing policy from logged bandit feedback.

A logged row i has a context x_i (the query), the action a_i the logging policy took (a model index in
0..K-1), its propensity p_i = π0(a_i|x_i) in (0, 1], and the observed reward r_i (quality, or a utility
quality − λ·cost/scale).  The target policy π is given as an (n, K) matrix of action probabilities
π(a|x_i); a deterministic policy is a one-hot matrix (`deterministic_probs`).  A reward model is an
(n, K) matrix q̂(x_i, a).

    w_i   = π(a_i|x_i) / p_i                                    importance weight
    IPS   = (1/n) Σ_i w_i r_i
    SNIPS = Σ_i w_i r_i / Σ_i w_i                               NaN when Σ_i w_i = 0 (no row where π
                                                                 puts mass on the logged action)
    DR    = (1/n) Σ_i [ Σ_a π(a|x_i) q̂(x_i,a) + w_i (r_i − q̂(x_i,a_i)) ]
    ESS   = (Σ_i w_i)² / Σ_i w_i²                               0 when every w_i = 0
    match_rate = share of rows with π(a_i|x_i) > 0

`reward_model=None` means q̂ ≡ 0, under which the DR formula is exactly IPS: DR is then reported equal to
IPS (no silent model is invented).  IPS and DR are unbiased whenever p_i is the true logging propensity
and π0 > 0 wherever π > 0; DR is also unbiased for any fixed q̂ (one not fitted on the same log) and has
lower variance the better q̂ is.  SNIPS is biased (consistent) but bounded by the reward range.

Confidence intervals: the pipeline's one bootstrap (``flows.evaluate.bootstrap``: over rows, percentile
interval at `level`).  A SNIPS replicate with Σw = 0 is undefined and left out of its interval;
`n_bootstrap=0` gives point estimates with NaN intervals.

Known limit, measured (`tests/pipeline/test_offpolicy.py`, LLMRouter test set, 500 rows x 9 models, deterministic
target): the percentile bootstrap needs a reasonable effective sample size.  Uniform logging (ESS ~56)
and softmax logging with max weight ~25 (ESS ~48) cover at 0.90-0.96; softmax with max weight ~170
(ESS ~23) covers only ~0.80-0.85 for IPS and DR (400 seeds), 0.90 at 2,000 rows.  A gate should
therefore also require a minimum ESS (or the logger a propensity floor), not only a CI.

`paired_difference` is what a promotion gate uses: DR(candidate) − DR(champion) on the same logged rows,
with both estimates computed on the same resampled rows in every replicate (a paired bootstrap), and
`p_diff_le_0`, the share of replicates in which the candidate is not better.

The research harness that checks all of this on a full-information table (every action's reward known:
simulate many logs, reveal only the logged action's reward, measure bias, RMSE and CI coverage against
the known true value of the target policy) is a test helper, ``tests/pipeline/ope_study.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_runtime.errors import ContractError

from .bootstrap import bootstrap_sums, percentile_interval

__all__ = ["OPEEstimate", "ope_estimates", "paired_difference", "deterministic_probs"]

_PROB_TOL = 1e-9


@dataclass(frozen=True)
class OPEEstimate:
    ips: float
    snips: float
    dr: float
    ci_low: float                      # bootstrap percentile CI of DR at `level`
    ci_high: float
    ips_ci: tuple[float, float]
    snips_ci: tuple[float, float]
    n: int
    level: float
    n_bootstrap: int
    ess: float
    match_rate: float

    def to_json(self) -> dict:
        """Plain JSON types; NaN (undefined SNIPS, no bootstrap) becomes None because JSON has no NaN."""
        def f(x: float) -> float | None:
            return None if math.isnan(x) else float(x)
        return {"ips": f(self.ips), "snips": f(self.snips), "dr": f(self.dr),
                "ci_low": f(self.ci_low), "ci_high": f(self.ci_high),
                "ips_ci": [f(x) for x in self.ips_ci], "snips_ci": [f(x) for x in self.snips_ci],
                "n": self.n, "level": self.level, "n_bootstrap": self.n_bootstrap,
                "ess": f(self.ess), "match_rate": f(self.match_rate)}


# ---------------------------------------------------------------------------------------------- validation

def _float_array(x: Any, field: str, shape: tuple[int | None, ...]) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ContractError(field, f"must be numeric ({exc})") from None
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise ContractError(field, f"must have shape {want}, got {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ContractError(field, "must be finite (no NaN or inf)", row=int(np.argwhere(bad)[0][0]))
    return a


def _int_array(x: Any, field: str, n: int | None, k: int) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ContractError(field, f"must be an integer array of action indices, got dtype {a.dtype}")
    if a.ndim != 1 or (n is not None and a.shape[0] != n):
        raise ContractError(field, f"must have shape ({'?' if n is None else n},), got {a.shape}")
    out = (a < 0) | (a >= k)
    if out.any():
        i = int(np.argmax(out))
        raise ContractError(field, f"must be in 0..{k - 1}, got {a[i]}", row=i)
    return a.astype(np.int64, copy=False)


def _prob_matrix(x: Any, field: str, n: int, k: int | None = None) -> np.ndarray:
    a = _float_array(x, field, (n, k))
    if a.shape[1] < 1:
        raise ContractError(field, "must have at least one action column")
    neg = (a < 0).any(axis=1)
    if neg.any():
        raise ContractError(field, "probabilities must be >= 0", row=int(np.argmax(neg)))
    off = np.abs(a.sum(axis=1) - 1.0) > _PROB_TOL
    if off.any():
        i = int(np.argmax(off))
        raise ContractError(field, f"each row must sum to 1 within {_PROB_TOL}, got {a[i].sum()!r}", row=i)
    return a


def _logged(actions: Any, rewards: Any, propensities: Any, k: int) -> tuple[np.ndarray, ...]:
    r = _float_array(rewards, "rewards", (None,))
    n = r.shape[0]
    if n == 0:
        raise ContractError("rewards", "need at least one logged row")
    a = _int_array(actions, "actions", n, k)
    p = _float_array(propensities, "propensities", (n,))
    bad = (p <= 0) | (p > 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ContractError("propensities", f"must be in (0, 1], got {p[i]!r}", row=i)
    return a, r, p


def _boot_args(n_bootstrap: Any, level: Any) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ContractError("n_bootstrap", f"must be an integer >= 0, got {n_bootstrap!r}")
    if not isinstance(level, (int, float, np.floating)) or not 0.0 < float(level) < 1.0:
        raise ContractError("level", f"must be in (0, 1), got {level!r}")


# ---------------------------------------------------------------------------------------------- estimators

def deterministic_probs(chosen: np.ndarray, k: int) -> np.ndarray:
    """One-hot (n, k) action probabilities of a deterministic policy that picks ``chosen[i]`` on row i."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ContractError("k", f"must be an integer >= 1, got {k!r}")
    c = _int_array(chosen, "chosen", None, int(k))
    out = np.zeros((c.shape[0], int(k)))
    out[np.arange(c.shape[0]), c] = 1.0
    return out


def _row_terms(a, r, p, pi, q) -> tuple[np.ndarray, np.ndarray]:
    """Importance weights and per-row DR terms (whose mean is DR)."""
    rows = np.arange(a.shape[0])
    w = pi[rows, a] / p
    if q is None:
        return w, w * r                     # q̂ ≡ 0: the DR term is the IPS term
    return w, (pi * q).sum(axis=1) + w * (r - q[rows, a])


def _inputs(actions: Any, rewards: Any, propensities: Any, probs: Any, field: str,
            reward_model: Any) -> tuple[np.ndarray, ...]:
    """The logged rows, a target policy's (n, K) probabilities (``field`` names it in errors) and the
    reward model (None: q̂ ≡ 0), validated against each other."""
    p0 = np.asarray(probs)
    k = p0.shape[1] if p0.ndim == 2 else 0
    if k < 1:
        raise ContractError(field, f"must have shape (n, K) with K >= 1, got {p0.shape}")
    a, r, p = _logged(actions, rewards, propensities, k)
    n = a.shape[0]
    pi = _prob_matrix(probs, field, n)
    q = None if reward_model is None else _float_array(reward_model, "reward_model", (n, k))
    return a, r, p, pi, q


def ope_estimates(actions: np.ndarray, rewards: np.ndarray, propensities: np.ndarray,
                  target_probs: np.ndarray, reward_model: np.ndarray | None = None,
                  *, n_bootstrap: int = 500, level: float = 0.95, seed: Any = 0) -> OPEEstimate:
    """IPS, SNIPS and DR estimates of the target policy's value with bootstrap percentile CIs.

    ``reward_model=None`` means q̂ ≡ 0, so DR (and its CI) equals IPS exactly; pass a reward model to get
    a real doubly robust estimate.
    """
    _boot_args(n_bootstrap, level)
    a, r, p, pi, q = _inputs(actions, rewards, propensities, target_probs, "target_probs", reward_model)
    n = a.shape[0]

    w, dr_terms = _row_terms(a, r, p, pi, q)
    sw, swr = w.sum(), (w * r).sum()
    snips = float(swr / sw) if sw > 0 else math.nan
    sw2 = (w * w).sum()
    ess = float(sw * sw / sw2) if sw2 > 0 else 0.0

    nan2 = (math.nan, math.nan)
    ips_ci = snips_ci = dr_ci = nan2
    if n_bootstrap > 0:
        s = bootstrap_sums(np.column_stack([w * r, w, dr_terms]), n_bootstrap, seed)
        ips_ci = percentile_interval(s[:, 0] / n, level)
        with np.errstate(invalid="ignore", divide="ignore"):
            snips_ci = percentile_interval(np.where(s[:, 1] > 0, s[:, 0] / s[:, 1], np.nan), level)
        dr_ci = percentile_interval(s[:, 2] / n, level)
    return OPEEstimate(ips=float(swr / n), snips=snips, dr=float(dr_terms.mean()),
                       ci_low=dr_ci[0], ci_high=dr_ci[1], ips_ci=ips_ci, snips_ci=snips_ci,
                       n=n, level=float(level), n_bootstrap=int(n_bootstrap), ess=ess,
                       match_rate=float((pi[np.arange(n), a] > 0).mean()))


def paired_difference(actions: np.ndarray, rewards: np.ndarray, propensities: np.ndarray,
                      candidate_probs: np.ndarray, champion_probs: np.ndarray,
                      reward_model: np.ndarray | None = None,
                      *, n_bootstrap: int = 500, level: float = 0.95, seed: Any = 0) -> dict:
    """DR estimate of V(candidate) − V(champion) on the same logged rows, with a paired bootstrap CI.

    Every replicate resamples the rows once and computes both policies' DR on them, so the noise the two
    share (the same queries, the same logged outcomes) cancels in the difference.  ``p_diff_le_0`` is the
    share of replicates with diff <= 0 (NaN without replicates).  ``reward_model=None``: q̂ ≡ 0 (IPS).
    """
    _boot_args(n_bootstrap, level)
    a, r, p, cand, q = _inputs(actions, rewards, propensities, candidate_probs, "candidate_probs", reward_model)
    n = a.shape[0]
    champ = _prob_matrix(champion_probs, "champion_probs", n, cand.shape[1])
    _, t_cand = _row_terms(a, r, p, cand, q)
    _, t_champ = _row_terms(a, r, p, champ, q)
    v_cand, v_champ = float(t_cand.mean()), float(t_champ.mean())
    ci, p_le0 = (math.nan, math.nan), math.nan
    if n_bootstrap > 0:
        s = bootstrap_sums(np.column_stack([t_cand, t_champ]), n_bootstrap, seed) / n
        d = s[:, 0] - s[:, 1]
        ci, p_le0 = percentile_interval(d, level), float((d <= 0).mean())
    return {"estimator": "dr" if q is not None else "ips", "candidate": v_cand, "champion": v_champ,
            "diff": float((t_cand - t_champ).mean()), "ci_low": ci[0], "ci_high": ci[1],
            "p_diff_le_0": p_le0, "n": n, "level": float(level), "n_bootstrap": int(n_bootstrap)}
