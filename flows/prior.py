"""The descriptor prior: the quality of a model the quality model has no outcomes for, from what is
known about it (size, family, quantization, context, capabilities, a public benchmark score).

The quality model also sees the candidates' descriptors, but beside the identity one-hots the trees
have no reason to split on them: with identity hidden on a share of rows they learned the average
model, so a 0.1 B and a 70 B newcomer got the same quality.  The prior is a separate small ensemble
with no identity input at all, so descriptors are all it has to tell models apart.  It predicts a
model's quality relative to the average model on a query (what the runtime adds to the quality
model's identity-hidden score; the same for every query: the query features it once also read
ranked unseen models worse, see below), and it is non-decreasing in ``model_size_b`` and
``model_benchmark_score``: with a handful of training models, an unconstrained fit would memorize
each model's size as its name.  A model with no declared size sorts below every declared one: a
cautious prior.

Which prior is chosen by the training data alone.  A few candidates (``CANDIDATES``: a monotone
least-squares line on size, one on the benchmark score, and a ridge regression on every descriptor
including the words of the model's name, ``router_runtime.candidates.name_tokens``) are each trained
without one training model at a time and scored by how well their predictions rank the left-out
models (Spearman, leave-one-model-out over the training models); the best one is trained on every
training model.  When none ranks better than a constant (Spearman <= 0: descriptors that do not
explain quality), there is no prior, and models without outcomes are scored as the average model,
which is what the evidence supports.  The chosen candidate and every candidate's score are in the
note.  Name words matter where size misleads: on LLMRouter's DCRouter set the two ChatQA fine-tunes
(8 B and 70 B) are the two worst models, and "chatqa" in a newcomer's name says more than its size.

It is exported as the artifact's optional ``descriptor_prior``, an ordinary oblivious-tree ensemble
(a line is a sum of one-split trees), and evaluated like the quality model (same evaluator, same
engine, bit-identical); ``python -m flows.evaluate.cold_start`` measures it by leave-one-model-out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl

from router_runtime.artifact import PRIOR_TARGET
from router_runtime.candidates import candidate_value, candidate_vector, prior_input_names
from router_runtime.features import FeatureSpec
from router_runtime.pool import ModelInfo

__all__ = ["DescriptorPrior", "CANDIDATES", "RIDGE_PENALTY", "MONOTONE_INCREASING", "LINE_STEPS",
           "train_descriptor_prior", "prior_offsets"]

# How the candidates were chosen (`python -m flows.evaluate.cold_start`, Spearman of the held-out
# models, mean over seeds 0-4, RouteProfile / DCRouter):
#   lines + descriptors-only trees (100 trees of depth 2, no name words):  0.41 / -0.32  (session 4)
#   lines + those trees, with name words:                                  --   /  0.17 (seeds 0-1)
#   the same with "it" read as "instruct":                                 --   / -0.02
#   lines + ridge on the descriptors and name words (kept):                0.39 /  0.38
#   the same with "it" read as "instruct" (kept):                          0.39 /  0.62
# Trees on 7-8 rows split on whichever 0/1 word comes first; the ridge shares a model's offset among
# its words and keeps each a part.  RIDGE_PENALTY (on standardized inputs) was set to 1 before these
# runs, not tuned on them; a scan of it on the full tables' model means (not these splits) gave
# DCRouter 0.70-0.78 and RouteProfile 0.69-0.79 for penalties 0.3-3.  The "it" synonym was added
# after reading DCRouter's names (Gemma's "-it"): a convention, but chosen while looking at this set.
# The first prior's learned trees (query features and descriptors) lowered both sets as a candidate
# (seeds 0-1: 0.31, 0.05 / -0.29, -0.31) and cost a full fit per training model; they are not one.
RIDGE_PENALTY = 1.0
MONOTONE_INCREASING = ("model_size_b", "model_benchmark_score")
# A line is exported as this many one-split trees on a grid over the training models' range (flat
# outside it: a 400 B newcomer gets the largest trained size's value, not an extrapolation).
LINE_STEPS = 64
CANDIDATES = ("line:model_size_b", "line:model_benchmark_score", "ridge")


@dataclass
class DescriptorPrior:
    ensemble: dict[str, Any] | None   # the artifact's ``descriptor_prior``, None when not trained
    note: str                         # what it was trained on and why this candidate, or why there is none
    parity_max_abs_diff: float = 0.0
    chosen: str | None = None         # the candidate (one of CANDIDATES), None for no prior
    selection: dict[str, float] = field(default_factory=dict)  # candidate -> leave-one-model-out Spearman


@dataclass
class _Fit:
    ensemble: dict[str, Any]
    reference: Callable[[np.ndarray], np.ndarray]  # the fitting library's prediction on the ensemble's inputs


def _varying(names: Sequence[str], models: Sequence[ModelInfo]) -> list[str]:
    """The inputs whose value differs between at least two of ``models`` (NaN counts as a value)."""
    out = []
    for n in names:
        values = {("nan" if math.isnan(v) else v) for v in (candidate_value(n, m) for m in models)}
        if len(values) > 1:
            out.append(n)
    return out


def _offset_rows(labeled: pl.DataFrame) -> pl.DataFrame:
    # The target is each answer's quality relative to the mean over the models that answered the same
    # query: the model's own effect, which descriptors can explain, with the query's difficulty (the
    # quality model's part) taken out.  Without that, holding out a strong model lowers the mean of
    # the rest, and a prior that learned mostly the mean ranks held-out models backwards.
    return (labeled.with_columns(pl.len().over("query_id").alias("_answers"),
                                 (pl.col("quality") - pl.col("quality").mean().over("query_id")).alias("_offset"))
            .filter(pl.col("_answers") >= 2)
            .with_columns(pl.col("_offset").alias("quality"), pl.lit(False).alias("_hide_identity")))


def _model_offsets(rows: pl.DataFrame) -> dict[str, float]:
    return dict(rows.group_by("model").agg(pl.col("quality").mean()).iter_rows())


def _steps(t: np.ndarray, slope: float, log: bool) -> tuple[list[float], float, float]:
    """A line ``slope * t`` over the training range of ``t`` as LINE_STEPS one-split trees: the
    borders (in the input's own unit), the step each adds, and the line's value at the range's
    start (flat outside the range)."""
    grid = np.linspace(t.min(), t.max(), LINE_STEPS + 1)
    mids = (grid[:-1] + grid[1:]) / 2.0
    borders = np.exp(mids) if log else mids
    return [float(b) for b in borders], float(slope * (grid[1] - grid[0])), float(slope * grid[0])


def _line(name: str, rows: pl.DataFrame, models: Sequence[ModelInfo]) -> _Fit | None:
    """Least-squares line of the models' mean offsets on one descriptor (log size for size: sizes span
    orders of magnitude), as LINE_STEPS one-split trees.  None (no prior) when a
    model does not declare the descriptor, all declare the same value, or the slope is not positive."""
    xs = np.array([candidate_value(name, m) for m in models], dtype=np.float64)
    if np.isnan(xs).any() or (name == "model_size_b" and (xs <= 0).any()) or len(set(xs.tolist())) < 2:
        return None
    log = name == "model_size_b"
    t = np.log(xs) if log else xs
    off = _model_offsets(rows)
    y = np.array([off[m.name] for m in models])
    slope = float(np.polyfit(t, y, 1)[0])
    if not slope > 0:  # quality does not rise with it: a flat line is the constant, no prior
        return None
    intercept = float(y.mean() - slope * t.mean())
    borders, step, start = _steps(t, slope, log)
    ens = {"kind": "oblivious_trees", "inputs": [name], "tree_depth": [1] * LINE_STEPS,
           "split_input": [0] * LINE_STEPS, "split_border": borders,
           "leaf_values": [v for _ in range(LINE_STEPS) for v in (0.0, step)], "nan_as_true": [],
           "scale": 1.0, "bias": intercept + start, "target": PRIOR_TARGET}
    cut = np.array(borders)

    def reference(x: np.ndarray) -> np.ndarray:
        v = np.nan_to_num(x[:, 0], nan=-np.inf)  # an undeclared value sorts below every border
        return ens["bias"] + step * (v[:, None] > cut[None, :]).sum(axis=1)

    return _Fit(ens, reference)


def _ridge(rows: pl.DataFrame, models: Sequence[ModelInfo], cand: Sequence[str]) -> _Fit | None:
    """Ridge regression of the models' mean offsets on every descriptor the training models differ
    in (one row per model, inputs standardized, no intercept: offsets average 0).  Its point is
    the 0/1 descriptors (name words, family, capabilities): a word one training model has, such as
    "chatqa" or "nemotron", carries part of that model's offset to a newcomer that shares it, and
    the penalty keeps it a part.  Size (log) and the benchmark score must not lower quality: an
    input whose coefficient comes out negative is dropped and the rest refitted.  Numeric inputs
    undeclared by a training model are left out; one undeclared by a newcomer sorts below every
    border, as for a line.  Exported as one-split trees (a 0/1 input: one tree; a numeric one:
    LINE_STEPS trees over the training range)."""
    off = _model_offsets(rows)
    y = np.array([off[m.name] for m in models])
    names = []
    for n in _varying(cand, models):
        xs = np.array([candidate_value(n, m) for m in models])
        if np.isnan(xs).any() or (n == "model_size_b" and (xs <= 0).any()):
            continue
        names.append(n)
    if not names:
        return None
    raw = {n: np.array([candidate_value(n, m) for m in models], dtype=np.float64) for n in names}
    t = {n: (np.log(v) if n == "model_size_b" else v) for n, v in raw.items()}
    while names:
        x = np.stack([t[n] for n in names], axis=1)
        mu, sd = x.mean(axis=0), x.std(axis=0)
        z = (x - mu) / sd
        coef = np.linalg.solve(z.T @ z + RIDGE_PENALTY * np.eye(len(names)), z.T @ (y - y.mean())) / sd  # per unit
        wrong = [n for n, c in zip(names, coef) if n in MONOTONE_INCREASING and c < 0]
        if not wrong:
            break
        names = [n for n in names if n not in wrong]
    if not names or not np.any(coef):
        return None
    trees: list[tuple[int, float, float]] = []  # (input index, border, step)
    bias = -float(coef @ mu)
    for i, (n, c) in enumerate(zip(names, coef)):
        if n in ("model_size_b",) or len(set(raw[n].tolist())) > 2 or set(raw[n].tolist()) - {0.0, 1.0}:
            borders, step, start = _steps(t[n], float(c), n == "model_size_b")
            trees += [(i, b, step) for b in borders]
            bias += start
        else:
            trees.append((i, 0.5, float(c)))
    ens = {"kind": "oblivious_trees", "inputs": names, "tree_depth": [1] * len(trees),
           "split_input": [i for i, _, _ in trees], "split_border": [b for _, b, _ in trees],
           "leaf_values": [v for _, _, step in trees for v in (0.0, step)], "nan_as_true": [],
           "scale": 1.0, "bias": bias, "target": PRIOR_TARGET}

    def reference(a: np.ndarray) -> np.ndarray:
        v = np.nan_to_num(a, nan=-np.inf)
        return ens["bias"] + sum(step * (v[:, i] > b) for i, b, step in trees)

    return _Fit(ens, reference)


def _fit(candidate: str, rows: pl.DataFrame, models: Sequence[ModelInfo], cand: Sequence[str]) -> _Fit | None:
    if candidate.startswith("line:"):
        return _line(candidate[5:], rows, models)
    return _ridge(rows, models, cand)


def prior_offsets(ensemble: dict[str, Any] | None, rows: pl.DataFrame, spec: FeatureSpec,
                  pool: Sequence[ModelInfo]) -> np.ndarray:
    """The prior's offset for each (query, model) row of ``rows``, evaluated by the runtime's own
    evaluator; zeros without a prior (a model without outcomes is then the average model)."""
    from router_runtime.trees import ObliviousEnsemble

    from .training import training_matrix

    if ensemble is None:
        return np.zeros(len(rows))
    q = set(spec.output_names)
    cand = [n for n in ensemble["inputs"] if n not in q]
    x, _, _ = training_matrix(rows.with_columns(pl.lit(0.0).alias("quality")) if "quality" not in rows.columns
                              else rows, spec, cand, pool)
    return np.asarray(ObliviousEnsemble(ensemble).predict_many(x.select(ensemble["inputs"]).rows(), use_numpy=True))


def _predicted_offset(fit: _Fit | None, model: ModelInfo) -> float:
    """A descriptors-only prior's offset for ``model`` (0, the average model, without a prior)."""
    if fit is None:
        return 0.0
    return float(fit.reference(np.array([candidate_vector(fit.ensemble["inputs"], model)]))[0])


def _selection(labeled: pl.DataFrame, trained: Sequence[ModelInfo], cand: Sequence[str]) -> dict[str, float]:
    """Per candidate: Spearman over the training models between each one's mean offset and the one
    predicted for it by the candidate trained without it (NaN, a constant prediction, counts as 0)."""
    from .evaluate.cold_start import spearman
    from .training import PARITY_TOLERANCE

    truth = _model_offsets(_offset_rows(labeled))
    predicted: dict[str, list[float]] = {c: [] for c in CANDIDATES}
    for held in trained:
        rest = [m for m in trained if m.name != held.name]
        rows = _offset_rows(labeled.filter(pl.col("model") != held.name))  # offsets among the rest
        for c in CANDIDATES:
            predicted[c].append(_predicted_offset(_fit(c, rows, rest, cand), held))
    out = {}
    for c, p in predicted.items():
        # Differences below the parity tolerance are float noise of a flat fit, not a ranking.
        r = spearman(np.round(np.asarray(p) / PARITY_TOLERANCE), [truth[m.name] for m in trained])
        out[c] = 0.0 if math.isnan(r) else r
    return out


def train_descriptor_prior(table: pl.DataFrame, pool: Sequence[ModelInfo]) -> DescriptorPrior:
    """The candidate that ranks left-out training models best, fitted on ``table``'s labeled rows, or
    no prior when none ranks them better than a constant (every candidate is a closed-form fit: no
    seed, no threads)."""
    from .training import check_parity

    by_name = {m.name: m for m in pool}
    trained = [by_name[n] for n in sorted(table["model"].unique().to_list()) if n in by_name]
    cand = prior_input_names(pool)
    varying = _varying(cand, trained)
    if len(trained) < 2 or not varying:
        return DescriptorPrior(None, f"no descriptor differs between the {len(trained)} trained models "
                                     "(declare size_b, family, benchmark_score ... in the pool)")
    if len(trained) < 3:
        return DescriptorPrior(None, f"a prior is chosen by leaving one of at least 3 trained models out; "
                                     f"there are {len(trained)}")
    labeled = table.filter(pl.col("quality").is_not_null())
    rows = _offset_rows(labeled)
    if rows.is_empty():
        return DescriptorPrior(None, "no query has labeled answers from two models: nothing to compare models by")
    scores = _selection(labeled, trained, cand)
    shown = ", ".join(f"{c} {s:.2f}" for c, s in scores.items())
    best = max(CANDIDATES, key=lambda c: scores[c])  # the first (simplest) of equals
    how = f"leave-one-model-out Spearman over the {len(trained)} training models"
    if scores[best] <= 0:
        return DescriptorPrior(None, f"no candidate prior ranks left-out models better than a constant ({how}: "
                                     f"{shown}); models without outcomes are scored as the average model",
                               selection=scores)
    fit = _fit(best, rows, trained, cand)
    if fit is None:  # rises without each single model but not over all of them: no ranking to trust
        return DescriptorPrior(None, f"{best} chosen ({how}: {shown}) is flat on all the training models",
                               selection=scores)
    # Parity on every trained model's descriptors: the prior reads nothing else.
    xn = np.array([candidate_vector(fit.ensemble["inputs"], m) for m in trained], dtype=np.float64)
    diff = check_parity(fit.ensemble, _Reference(fit.reference), xn)
    return DescriptorPrior(fit.ensemble, f"{best} prior, chosen by {how} ({shown}), trained on {len(rows)} rows of "
                                         f"{len(trained)} models (varying: {', '.join(varying)})",
                           parity_max_abs_diff=diff, chosen=best, selection=scores)


class _Reference:
    """``check_parity`` asks the reference in CatBoost's words."""

    def __init__(self, f: Callable[[np.ndarray], np.ndarray]):
        self._f = f

    def predict(self, x: np.ndarray, prediction_type: str = "RawFormulaVal") -> np.ndarray:
        return self._f(x)
