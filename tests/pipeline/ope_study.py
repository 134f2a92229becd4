"""The bias / coverage study of the off-policy estimators (a research harness, not pipeline code).

``bias_coverage_study`` simulates many logs of a full-information table (every action's reward known),
reveals only the logged action's reward, and measures bias, RMSE and CI coverage of IPS / SNIPS / DR
against the known true value of the target policy; ``format_study`` prints its result.  Used by
``test_offpolicy.py``; its measured limits are written in ``flows/evaluate/offpolicy.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from flows.evaluate.offpolicy import (_boot_args, _float_array, _int_array, _prob_matrix, deterministic_probs,
                                      ope_estimates)
from router_runtime.errors import ContractError

__all__ = ["bias_coverage_study", "format_study"]

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
