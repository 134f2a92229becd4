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

Confidence intervals: nonparametric bootstrap over rows, percentile interval at `level`.  Row indices
are drawn with `np.random.default_rng(seed)` (any seed `default_rng` accepts), `n_bootstrap` replicates,
in chunks of at most `_BOOT_CHUNK` (replicate × row) cells, so memory stays bounded for n ~ 1e6; each
chunk turns its index matrix into per-replicate row counts (multinomial weights) and takes one matrix
product with the per-row terms.  A SNIPS replicate with Σw = 0 is undefined and left out of its interval;
`n_bootstrap=0` gives point estimates with NaN intervals.

Known limit, measured (`tests/test_ope.py`, LLMRouter test set, 500 rows x 9 models, deterministic
target): the percentile bootstrap needs a reasonable effective sample size.  Uniform logging (ESS ~56)
and softmax logging with max weight ~25 (ESS ~48) cover at 0.90-0.96; softmax with max weight ~170
(ESS ~23) covers only ~0.80-0.85 for IPS and DR (400 seeds), 0.90 at 2,000 rows.  A gate should
therefore also require a minimum ESS (or the logger a propensity floor), not only a CI.

`paired_difference` is what a promotion gate uses: DR(candidate) − DR(champion) on the same logged rows,
with both estimates computed on the same resampled rows in every replicate (a paired bootstrap), and
`p_diff_le_0`, the share of replicates in which the candidate is not better.

`bias_coverage_study` checks all of this on a full-information table (every action's reward known): it
simulates many logs, reveals only the logged action's reward, and measures bias, RMSE and CI coverage
against the known true value of the target policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_runtime.errors import ContractError

__all__ = ["OPEEstimate", "ope_estimates", "paired_difference", "deterministic_probs",
           "bias_coverage_study", "format_study"]

_PROB_TOL = 1e-9
_BOOT_CHUNK = 1 << 22  # replicate × row cells per chunk: ~32 MB of int64 indices, the same of counts


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


def _bootstrap_sums(values: np.ndarray, n_bootstrap: int, seed: Any) -> np.ndarray:
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


def _percentile(x: np.ndarray, level: float) -> tuple[float, float]:
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


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
        s = _bootstrap_sums(np.column_stack([w * r, w, dr_terms]), n_bootstrap, seed)
        ips_ci = _percentile(s[:, 0] / n, level)
        with np.errstate(invalid="ignore", divide="ignore"):
            snips_ci = _percentile(np.where(s[:, 1] > 0, s[:, 0] / s[:, 1], np.nan), level)
        dr_ci = _percentile(s[:, 2] / n, level)
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
        s = _bootstrap_sums(np.column_stack([t_cand, t_champ]), n_bootstrap, seed) / n
        d = s[:, 0] - s[:, 1]
        ci, p_le0 = _percentile(d, level), float((d <= 0).mean())
    return {"estimator": "dr" if q is not None else "ips", "candidate": v_cand, "champion": v_champ,
            "diff": float((t_cand - t_champ).mean()), "ci_low": ci[0], "ci_high": ci[1],
            "p_diff_le_0": p_le0, "n": n, "level": float(level), "n_bootstrap": int(n_bootstrap)}


# ---------------------------------------------------------------------------------------- simulation study

_ESTIMATORS = ("ips", "snips", "dr")


def _summarize(est: np.ndarray, lo: np.ndarray, hi: np.ndarray, truth: float) -> dict:
    ok = ~np.isnan(est)
    e, l_, h = est[ok], lo[ok], hi[ok]
    m = int(ok.sum())
    if m == 0:
        nan = math.nan
        return {"bias": nan, "se": nan, "std": nan, "rmse": nan, "coverage": nan, "ci_width": nan, "undefined": int(est.size)}
    std = float(e.std(ddof=1)) if m > 1 else 0.0
    return {"bias": float(e.mean() - truth), "se": std / math.sqrt(m), "std": std,
            "rmse": float(np.sqrt(np.mean((e - truth) ** 2))),
            "coverage": float(np.mean((l_ <= truth) & (truth <= h))),   # NaN CI bounds count as misses
            "ci_width": float(np.nanmean(h - l_)) if np.isfinite(h - l_).any() else math.nan,
            "undefined": int(est.size - m)}


def bias_coverage_study(quality: np.ndarray, cost: np.ndarray | None, target_choice: np.ndarray,
                        reward_model: np.ndarray | None, *, seeds: int = 100, rows: int | None = None,
                        logging: str | np.ndarray = "uniform", temperature: float = 0.25,
                        n_bootstrap: int = 200, level: float = 0.95, seed: int = 0) -> dict:
    """Bias, RMSE and CI coverage of IPS / SNIPS / DR over many simulated logs of a full-information table.

    ``quality[i, a]`` is the true reward of action a on query i (pass a utility matrix to study utility);
    the truth is mean_i quality[i, target_choice[i]].  For each of ``seeds`` logs: contexts are every
    query once (``rows=None``; the truth is then the log's own mean; the row bootstrap also counts
    context-sampling noise, so its variance is an overestimate, though skewed weights can still make
    the percentile interval undercover) or ``rows`` queries drawn i.i.d. with replacement
    (the truth is then the population mean, as in production, and coverage should be nominal); the
    logging policy draws one action per row; only that action's reward is revealed.

    ``logging``: "uniform" (p = 1/K), "softmax" (π0(a|x) ∝ exp(q̂(x,a)/temperature), needs
    ``reward_model``; skewed propensities show IPS's variance), or an (n, K) probability matrix.
    ``cost`` (optional, same shape): the target's mean cost is estimated from the same logs and reported
    under "cost" (no cost model: its DR equals IPS).  The reward model must not be fitted on the
    simulated logs (it is fixed here), which keeps DR unbiased.

    Returns {"truth", "ips", "snips", "dr", "mean_ess", "mean_match_rate", "seeds", "rows", "logging",
    "n_bootstrap", "level", ["cost"]}; each estimator maps to bias, se (of the bias), std, rmse, coverage,
    ci_width and undefined (seeds where the estimate is NaN, e.g. SNIPS with no matching rows).
    """
    qual = _float_array(quality, "quality", (None, None))
    n, k = qual.shape
    if n == 0 or k == 0:
        raise ContractError("quality", f"must be a non-empty (n, K) matrix, got {qual.shape}")
    cst = None if cost is None else _float_array(cost, "cost", (n, k))
    tgt = _int_array(target_choice, "target_choice", n, k)
    qhat = None if reward_model is None else _float_array(reward_model, "reward_model", (n, k))
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ContractError("seeds", f"must be an integer >= 1, got {seeds!r}")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1):
        raise ContractError("rows", f"must be None or an integer >= 1, got {rows!r}")
    _boot_args(n_bootstrap, level)

    if isinstance(logging, str):
        if logging == "uniform":
            log_p = None
        elif logging == "softmax":
            if qhat is None:
                raise ContractError("reward_model", "softmax logging is built from the reward model: pass one")
            if not temperature > 0:
                raise ContractError("temperature", f"must be > 0, got {temperature!r}")
            z = qhat / temperature
            z = np.exp(z - z.max(axis=1, keepdims=True))
            log_p = z / z.sum(axis=1, keepdims=True)
        else:
            raise ContractError("logging", f"must be 'uniform', 'softmax' or an (n, K) matrix, got {logging!r}")
    else:
        log_p = _prob_matrix(logging, "logging", n, k)
        if ((log_p == 0) & (deterministic_probs(tgt, k) > 0)).any():
            # IPS is biased where the target can act but the logger never does: refuse, don't mislead.
            raise ContractError("logging", "must give every target action a probability > 0")

    truth = float(qual[np.arange(n), tgt].mean())
    pi_all = deterministic_probs(tgt, k)
    metrics = {"quality": (qual, qhat)} | ({"cost": (cst, None)} if cst is not None else {})
    res = {m: {e: np.empty((3, seeds)) for e in _ESTIMATORS} for m in metrics}
    ess, match = np.empty(seeds), np.empty(seeds)

    # Independent streams per seed, and separate ones for the log and its bootstrap.
    for s, child in enumerate(np.random.SeedSequence(seed).spawn(seeds)):
        log_ss, boot_ss = child.spawn(2)
        rng = np.random.default_rng(log_ss)
        ctx = np.arange(n) if rows is None else rng.integers(0, n, size=rows)
        m_rows = ctx.shape[0]
        if log_p is None:
            act = rng.integers(0, k, size=m_rows)
            prop = np.full(m_rows, 1.0 / k)
        else:
            cdf = np.cumsum(log_p[ctx], axis=1)
            act = np.minimum((cdf < rng.random(m_rows)[:, None] * cdf[:, -1:]).sum(axis=1), k - 1)
            prop = log_p[ctx, act]
        for name, (mat, model) in metrics.items():
            e = ope_estimates(act, mat[ctx, act], prop, pi_all[ctx], None if model is None else model[ctx],
                              n_bootstrap=n_bootstrap, level=level, seed=boot_ss)
            for est, lo_hi in (("ips", e.ips_ci), ("snips", e.snips_ci), ("dr", (e.ci_low, e.ci_high))):
                res[name][est][:, s] = (getattr(e, est), *lo_hi)
            if name == "quality":
                ess[s], match[s] = e.ess, e.match_rate

    out: dict[str, Any] = {"truth": truth}
    out |= {est: _summarize(*res["quality"][est], truth) for est in _ESTIMATORS}
    out |= {"mean_ess": float(ess.mean()), "mean_match_rate": float(match.mean()), "seeds": int(seeds),
            "rows": n if rows is None else int(rows), "contexts": "fixed" if rows is None else "iid",
            "logging": logging if isinstance(logging, str) else "matrix",
            "n_bootstrap": int(n_bootstrap), "level": float(level)}
    if cst is not None:
        c_truth = float(cst[np.arange(n), tgt].mean())
        out["cost"] = {"truth": c_truth} | {est: _summarize(*res["cost"][est], c_truth) for est in _ESTIMATORS}
    return out


def format_study(study: dict, title: str = "") -> str:
    """A fixed-width table of a `bias_coverage_study` result, for reports and closing notes."""
    head = (f"{title}\n" if title else "") + (
        f"truth={study['truth']:.4f}  seeds={study['seeds']}  rows={study['rows']} ({study['contexts']} contexts)"
        f"  logging={study['logging']}  bootstrap={study['n_bootstrap']}  level={study['level']:.2f}"
        f"  mean ESS={study['mean_ess']:.1f}  mean match={study['mean_match_rate']:.3f}")
    lines = [head, f"{'estimator':<9} {'bias':>9} {'se(bias)':>9} {'std':>8} {'rmse':>8} {'coverage':>9} {'ci width':>9} {'undef':>5}"]
    for est in _ESTIMATORS:
        r = study[est]
        lines.append(f"{est:<9} {r['bias']:>+9.4f} {r['se']:>9.4f} {r['std']:>8.4f} {r['rmse']:>8.4f}"
                     f" {r['coverage']:>9.3f} {r['ci_width']:>9.4f} {r['undefined']:>5d}")
    return "\n".join(lines)
