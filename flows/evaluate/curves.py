"""Routing quality metrics, each defined once: this docstring is their definition.  numpy only; tests
on hand-computed cases in ``tests/pipeline/test_curves.py``.

Curves.  A router is a cost-quality curve: for each cost weight λ of a sweep it routes every test query
by the runtime's rule (``flows.evaluate.holdout.route_at``: highest ``q̂ − λ·ĉ/scale``, ties to the cheaper
model, then the name) and gives one point (mean true cost, mean true quality).  A router that is one
fixed choice (best single model, cheapest, random) is a curve of one point; the single models together
form one curve of one point each.

AIQ, as RouterBench's ``evaluation/AIQ.py`` computes it:

1. each curve is replaced by its non-decreasing convex hull (``nondecreasing_hull``): the upper concave
   envelope of its points, cut where it stops rising (a vertex lower than the one before is dropped);
2. ``max_cost`` = the largest cost among the hulls of all compared curves;
3. each hull is extended flat to ``max_cost`` and integrated with the trapezoid rule from its own
   cheapest point (nothing is credited below it); AIQ = area / ``max_cost``.

Two details AIQ.py leaves undefined, and what is done here: points with equal cost keep the highest
quality (AIQ.py's result there depends on the sort order), and a one- or two-point curve gets the same
treatment as any other (AIQ.py raises IndexError on them).  For distinct costs and three or more points
the result is AIQ.py's.

APGR and CPT (RouteLLM, ``routellm/evals/evaluate.py``) for a weak/strong pair: a router is a curve of
(share of calls sent to the strong model, mean quality).  APGR = (AUC − AUC_weak) / (AUC_strong −
AUC_weak), the AUCs by the trapezoid rule over the curve's share range, AUC_weak/strong of the constant
weak/strong quality.  CPT(x) is the smallest share of strong calls at which the curve reaches
weak + x·(strong − weak), linear between points (RouteLLM's ``np.interp``, which assumes a rising curve).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .holdout import route_at

__all__ = [
    "COST_WEIGHTS",
    "sweep_curve",
    "nondecreasing_hull",
    "aiq",
    "quality_at_cost",
    "cost_at_quality",
    "normalized_gain",
    "strong_share_curve",
    "apgr",
    "cpt",
]

# λ = 0 (quality only), then log-spaced up to where the cheapest model always wins: with utility
# q − λ·c/scale, two models whose costs differ by 1% of the scale trade places only past λ ≈ 100.
COST_WEIGHTS: tuple[float, ...] = (0.0, *np.round(np.logspace(-3, 3, 61), 12).tolist())


def sweep_curve(pred_quality: np.ndarray, pred_cost: np.ndarray, true_quality: np.ndarray,
                true_cost: np.ndarray, scale: float, cost_weights: Sequence[float] = COST_WEIGHTS) -> np.ndarray:
    """Points (mean true cost, mean true quality), one per cost weight, of routing by the predictions.

    All four matrices are (queries, models); the oracle's curve is this with the true values as predictions.
    """
    rows = np.arange(true_quality.shape[0])
    out = []
    for lam in cost_weights:
        cols = route_at(pred_quality, pred_cost, float(lam), scale)
        out.append((true_cost[rows, cols].mean(), true_quality[rows, cols].mean()))
    return np.asarray(out, dtype=np.float64)


def nondecreasing_hull(points: np.ndarray) -> np.ndarray:
    """The (m, 2) vertices of the non-decreasing upper convex hull of (cost, quality) points, by cost."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) == 0:
        raise ValueError("a curve needs at least one point")
    p = p[np.lexsort((-p[:, 1], p[:, 0]))]            # by cost, best quality first among equal costs
    p = p[np.r_[True, p[1:, 0] != p[:-1, 0]]]          # one point per cost: the best
    hull: list[np.ndarray] = []
    for pt in p:                                       # monotone chain, upper part
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # drop the middle vertex when it lies on or under the chord from hull[-2] to pt
            if (x2 - x1) * (pt[1] - y1) - (y2 - y1) * (pt[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(pt)
    h = np.asarray(hull)
    # the envelope rises then falls: keep it while it does not fall (equal qualities stay, as in AIQ.py)
    keep = np.r_[True, h[1:, 1] >= h[:-1, 1]]
    return h[: int(np.argmin(keep)) if not keep.all() else len(h)]


def aiq(curves: Mapping[str, np.ndarray]) -> dict[str, float]:
    """AIQ of each curve against the others (they share ``max_cost``); see the module docstring."""
    hulls = {k: nondecreasing_hull(v) for k, v in curves.items()}
    max_cost = max(h[-1, 0] for h in hulls.values())
    if max_cost <= 0:
        raise ValueError("AIQ needs a curve with a positive cost")
    out = {}
    for k, h in hulls.items():
        h = np.vstack([h, [max_cost, h[-1, 1]]])
        out[k] = float(np.sum((h[1:, 0] - h[:-1, 0]) * (h[1:, 1] + h[:-1, 1]) / 2.0) / max_cost)
    return out


def quality_at_cost(points: np.ndarray, cost: float) -> float | None:
    """The hull's quality at ``cost`` (flat past its last point); None below its cheapest point."""
    h = nondecreasing_hull(points)
    if cost < h[0, 0]:
        return None
    return float(np.interp(cost, h[:, 0], h[:, 1]))


def cost_at_quality(points: np.ndarray, quality: float) -> float | None:
    """The least cost at which the hull reaches ``quality``; None if it never does."""
    h = nondecreasing_hull(points)
    i = int(np.argmax(h[:, 1] >= quality)) if (h[:, 1] >= quality).any() else None
    if i is None:
        return None
    if i == 0:
        return float(h[0, 0])
    (x0, y0), (x1, y1) = h[i - 1], h[i]
    return float(x0 + (quality - y0) * (x1 - x0) / (y1 - y0))


def normalized_gain(value: float | None, base: float | None, top: float | None) -> float | None:
    """(value − base) / (top − base): 0 at the baseline, 1 at the oracle; None when undefined."""
    if value is None or base is None or top is None or top == base:
        return None
    return float((value - base) / (top - base))


def strong_share_curve(score: np.ndarray, weak_quality: np.ndarray, strong_quality: np.ndarray) -> np.ndarray:
    """(share sent to strong, mean quality) when queries go to the strong model in decreasing ``score``.

    Queries with equal scores are one block: points only at block edges, so the line between two points
    is the expected curve under a random order inside the block (a constant score gives the straight
    line of random routing).
    """
    score = np.asarray(score, dtype=np.float64)
    n = len(score)
    order = np.argsort(-score, kind="stable")
    gain = (strong_quality - weak_quality)[order]
    cum = np.r_[0.0, np.cumsum(gain)]
    s = score[order]
    edges = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1, n]
    return np.column_stack([edges / n, (weak_quality.sum() + cum[edges]) / n])


def apgr(curve: np.ndarray, weak: float, strong: float) -> float | None:
    """RouteLLM's average performance gap recovered of a (share, quality) curve."""
    c = np.asarray(curve, dtype=np.float64)
    c = c[np.argsort(c[:, 0], kind="stable")]
    span = c[-1, 0] - c[0, 0]
    if strong == weak or span == 0:
        return None
    auc = float(np.sum((c[1:, 0] - c[:-1, 0]) * (c[1:, 1] + c[:-1, 1]) / 2.0))
    return float((auc - weak * span) / ((strong - weak) * span))


def cpt(curve: np.ndarray, weak: float, strong: float, fraction: float) -> float | None:
    """Smallest share of strong calls that recovers ``fraction`` of the weak→strong gap; None if never."""
    c = np.asarray(curve, dtype=np.float64)
    c = c[np.argsort(c[:, 0], kind="stable")]
    target = weak + fraction * (strong - weak)
    hit = np.flatnonzero(c[:, 1] >= target)
    if len(hit) == 0:
        return None
    i = int(hit[0])
    if i == 0:
        return float(c[0, 0])
    (x0, y0), (x1, y1) = c[i - 1], c[i]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))
