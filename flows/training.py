"""Training: from a benchmark table (or logged outcomes in the same long shape) to a CatBoost quality model.

One model scores every candidate: each training row is one (query, model) pair whose inputs are the
query's features (the FeatureSpec) plus the candidate's inputs (a one-hot of its identity and, when
the pool declares it for every model, its size).  The label is the observed quality; rows from logs
carry an inverse-propensity weight so that the logging policy's preferences do not bias the fit.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import polars as pl

from router_runtime.candidates import IDENTITY_PREFIX, candidate_input_names, candidate_value, candidate_vector
from router_runtime.errors import ArtifactParityError, ContractError
from router_runtime.features import FeatureSpec
from router_runtime.pool import LinearCost, ModelInfo
from router_runtime.trees import ObliviousEnsemble

from .features import add_features, fit_feature_spec
from .progress import fit_catboost
from .static_embedding import with_static_embedding
from .sources import split_query_ids  # the split rule's home; this path is documented

__all__ = [
    "TrainParams",
    "TrainedModel",
    "split_query_ids",
    "build_pool",
    "with_hidden_identity",
    "training_matrix",
    "train_quality_model",
    "ensemble_from_catboost",
    "check_parity",
    "PARITY_TOLERANCE",
    "SMALL_TRAINING_OUTCOMES",
    "SMALL_TRAINING_QUERIES",
    "MIN_LABELED_PER_MODEL",
    "Refusal",
    "TOO_FEW_LABELS",
    "ALL_LABELS_EQUAL",
    "TRAINING_FAILED",
    "quality_refusal",
    "labeled_rows",
]

PARITY_TOLERANCE = 1e-9


# Below this many observed outcomes per model the trees are 4 deep, from it on 6 (``depth=None``); with
# full information that is the number of training queries, a bandit log has 1/(number of models) of it.
# Measured with `zeta evaluate-benchmark`'s normalized AIQ gain (flows/evaluate/curves.py) on splits that are
# not the reported ones: RouteProfile (420 train queries, 30 seeded splits) depth 4: 0.152, depth 6:
# 0.093; LLMRouter (a 70/30 split of its train file, 3,900 queries, 6 splits), with identity_weight 3,
# depth 6: 0.228, 5: 0.221, 4: 0.201.  Deep trees need many queries per leaf; shallow ones also make a
# decision cheaper.
SMALL_TRAINING_OUTCOMES = 2000

# Below this many distinct training queries the learning rate is 0.04, from it on 0.08
# (``learning_rate=None``).  All (query, model) rows of one query share its features, so with few
# queries the trees memorize query-level noise; a smaller step is the regularization that helped.
# Chosen by validation inside the train part (8 inner 70/30 splits of each of the 5 seeded train
# parts, normalized AIQ gain): RouteProfile (422 train queries) 0.108 -> 0.152, paired +0.045 +- 0.014,
# 5/5 seeds; the LLMRouter full-information model (4,300 queries, 6 deep) wants 0.08 (0.04: 0.233 ->
# 0.206).  On the reported test parts (seeds 0-4) RouteProfile 0.093 +- 0.083 -> 0.148 +- 0.043.  The
# threshold counts queries, not outcomes per model: LLMRouter's uniform bandit log (4,300 queries, 478
# outcomes per model, as many as RouteProfile's 422) lost 0.015 normalized AIQ gain at 0.04 (5/5 seeds).
SMALL_TRAINING_QUERIES = 2000
SMALL_DATA_LEARNING_RATE = 0.04

# Fewer labeled outcomes than this for any trained model and no quality model is trained: with a
# handful of labels the trees fit noise and the router would route on it.  20 is the contract
# value; a labeled outcome is one whose quality a user, check, judge or benchmark gave (flows.labels).
MIN_LABELED_PER_MODEL = 20
# The named reasons a training run ends without a candidate (the champion keeps serving).
TOO_FEW_LABELS = "too_few_labels"
ALL_LABELS_EQUAL = "all_labels_equal"
TRAINING_FAILED = "training_failed"
LEARNING_RATE = 0.08


@dataclass(frozen=True)
class TrainParams:
    iterations: int = 300
    depth: int | None = None   # None: 4 below SMALL_TRAINING_OUTCOMES outcomes per model, else 6
    learning_rate: float | None = None  # None: 0.04 below SMALL_TRAINING_QUERIES training queries, else 0.08
    l2_leaf_reg: float = 3.0
    # CatBoost's feature_weights for the model-identity inputs: their splits count this much more, so
    # more trees separate one model from the others (what routing needs: quality differences between
    # models, not only query difficulty).  Normalized AIQ gain, same splits as above: RouteProfile
    # 0.152 -> 0.168, LLMRouter 0.213 -> 0.228 (5 gave the same 0.228 there).
    identity_weight: float = 3.0
    seed: int = 0
    thread_count: int = 2   # fixed, so a seeded run reproduces exactly on any machine size
    unknown_model_share: float = 0.25  # rows repeated with the identity hidden (cold-start prior)
    # Dimensions of a static_embedding feature added to the spec (flows/static_embedding.py; needs the
    # embed extra); 0: none.  Off by default: 5 seeds on both data sets did not show it paying (README).
    static_embedding: int = 0

    def resolved(self, outcomes_per_model: float, queries: int | None = None) -> "TrainParams":
        """These parameters with ``depth`` and ``learning_rate`` chosen from the training data's size
        (outcomes per model, distinct queries) where they are None."""
        p = self
        if p.depth is None:
            p = replace(p, depth=4 if outcomes_per_model < SMALL_TRAINING_OUTCOMES else 6)
        if p.learning_rate is None:
            small = queries is not None and queries < SMALL_TRAINING_QUERIES
            p = replace(p, learning_rate=SMALL_DATA_LEARNING_RATE if small else LEARNING_RATE)
        return p

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Refusal:
    """Why no quality model was trained: ``code`` (one of the named reasons) and a sentence for people."""
    code: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.reason}


def labeled_rows(table: pl.DataFrame) -> pl.DataFrame:
    """The rows a quality model learns from: those with a quality (unlabeled successes are left out)."""
    return table.filter(pl.col("quality").is_not_null())


def quality_refusal(table: pl.DataFrame, minimum: int = MIN_LABELED_PER_MODEL) -> Refusal | None:
    """Whether a quality model must not be trained on ``table`` (training rows, labeled or not): a model
    of the table with fewer than ``minimum`` labeled outcomes, or labels that are all equal."""
    labeled = labeled_rows(table)
    counts = dict(labeled.group_by("model").len().iter_rows())
    few = sorted((m, counts.get(m, 0)) for m in table["model"].unique().to_list() if counts.get(m, 0) < minimum)
    if few:
        unlabeled = len(table) - len(labeled)
        return Refusal(TOO_FEW_LABELS, (
            f"too few labeled outcomes: {', '.join(f'{m} {n}' for m, n in few)} "
            f"(at least {minimum} per model, MIN_LABELED_PER_MODEL); {len(labeled)} labeled and {unlabeled} "
            "unlabeled rows (a successful call is not a quality label: add labels with zeta judge, user "
            "feedback or checks)"))
    values = labeled["quality"].unique()
    if len(values) == 0:
        return Refusal(TOO_FEW_LABELS, "no labeled outcomes at all")
    if len(values) == 1:
        return Refusal(ALL_LABELS_EQUAL, f"all {len(labeled)} labels are equal ({values[0]:g}): nothing tells "
                                         "the models apart")
    return None


@dataclass
class TrainedModel:
    spec: FeatureSpec
    inputs: list[str]
    ensemble: dict[str, Any]
    catboost_model: Any = field(repr=False)
    rows: int = 0
    parity_max_abs_diff: float = 0.0
    params: TrainParams | None = None  # as trained (depth resolved)
    length: Any = None  # flows.length.LengthModel: completion tokens per (query, model), or why none
    prior: Any = None   # flows.prior.DescriptorPrior: quality of a model without outcomes, or why none


def fit_linear_cost(chars: np.ndarray, y: np.ndarray) -> LinearCost:
    """Least-squares ``y ~ a + b * chars`` (b >= 0 so a longer prompt never looks cheaper)."""
    if len(y) == 0:
        return LinearCost(0.0, 0.0)
    if len(y) < 2 or float(np.var(chars)) == 0.0:
        return LinearCost(float(np.mean(y)), 0.0)
    b, a = np.polyfit(chars.astype(np.float64), y.astype(np.float64), 1)
    if b < 0:
        return LinearCost(float(np.mean(y)), 0.0)
    return LinearCost(float(a), float(b))


def build_pool(table: pl.DataFrame, declared: Sequence[ModelInfo] = ()) -> tuple[ModelInfo, ...]:
    """The artifact's pool: every model of the table with a cost model fitted on it (and a latency
    model when the table has ``latency_ms``), merged with what a pool file declares (capabilities,
    size, context length, extra keys).  Declared models absent from the table are kept: they are
    served by capability (for example an embedding model) without a learned quality."""
    declared_by_name = {m.name: m for m in declared}
    t = table.with_columns(pl.col("query").str.len_chars().alias("_chars"))
    out = []
    for name in sorted(t["model"].unique().to_list()):
        sub = t.filter(pl.col("model") == name)
        chars = sub["_chars"].to_numpy()
        cost = fit_linear_cost(chars, sub["cost"].to_numpy())
        lat = None
        if "latency_ms" in sub.columns and sub["latency_ms"].null_count() < len(sub):
            s2 = sub.filter(pl.col("latency_ms").is_not_null())
            lat = fit_linear_cost(s2["_chars"].to_numpy(), s2["latency_ms"].to_numpy())
        d = declared_by_name.get(name)
        if d is not None:
            out.append(ModelInfo(name, d.capabilities, d.size_b, d.context_length, cost,
                                 lat if lat is not None else d.latency_ms, d.extra))
        else:
            out.append(ModelInfo(name, cost=cost, latency_ms=lat))
    in_table = {m.name for m in out}
    out.extend(m for m in declared if m.name not in in_table)
    return tuple(out)


def training_matrix(table: pl.DataFrame, spec: FeatureSpec, cand_inputs: Sequence[str],
                    pool: Sequence[ModelInfo]) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Inputs (query features, then candidate inputs), labels and weights for (query, model) rows.

    Features are computed once per distinct query and joined back, so a table with 9 models costs
    one feature pass, not nine.  Candidate inputs come from ``router_runtime.candidates``, the
    function the runtime scores with.  A column ``_hide_identity`` (bool) zeroes the identity inputs
    of its rows.
    """
    queries = table.select("query_id", "query").unique("query_id", keep="first", maintain_order=True)
    feats = add_features(queries, spec).drop("query")
    rows = table.join(feats, on="query_id", how="left", maintain_order="left")
    by_name = {m.name: m for m in pool}
    missing = sorted(set(rows["model"].unique().to_list()) - set(by_name))
    if missing:
        raise ContractError("model", f"models {missing} are not in the pool")
    hide = pl.col("_hide_identity") if "_hide_identity" in rows.columns else pl.lit(False)
    cand_cols = []
    for name in cand_inputs:
        known = {m: candidate_value(name, info) for m, info in by_name.items()}
        value = pl.col("model").replace_strict(known, return_dtype=pl.Float64)
        if name.startswith(IDENTITY_PREFIX):
            value = pl.when(hide).then(0.0).otherwise(value)
        cand_cols.append(value.alias(name))
    rows = rows.with_columns(cand_cols)
    x = rows.select([*spec.output_names, *cand_inputs])
    y = rows["quality"].to_numpy().astype(np.float64)
    w = rows["weight"].to_numpy().astype(np.float64) if "weight" in rows.columns else np.ones(len(rows))
    return x, y, w


def with_hidden_identity(table: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """Append a seeded ``share`` of the rows again with the model identity hidden, so the model also
    learns quality from descriptors alone: the score a model without outcomes (cold start) gets."""
    base = table.with_columns(pl.lit(False).alias("_hide_identity"))
    if share <= 0 or table.is_empty():
        return base
    n = int(round(len(table) * share))
    idx = np.sort(np.random.default_rng(seed).choice(len(table), size=min(n, len(table)), replace=False))
    extra = table[idx.tolist()].with_columns(pl.lit(True).alias("_hide_identity"))
    return pl.concat([base, extra], how="vertical_relaxed")


def train_quality_model(table: pl.DataFrame, spec: FeatureSpec, pool: Sequence[ModelInfo],
                        params: TrainParams) -> TrainedModel:
    """Fit the feature statistics on the training queries, then CatBoost on (query, model) rows."""
    queries = table.unique("query_id", keep="first", maintain_order=True)["query"]
    spec = with_static_embedding(spec, params.static_embedding)
    fitted = fit_feature_spec(spec, queries) if spec.needs_fit else spec
    trained_models = sorted(table["model"].unique().to_list())
    cand = candidate_input_names(trained_models, pool)
    aug = with_hidden_identity(table, params.unknown_model_share, params.seed)
    x, y, w = training_matrix(aug, fitted, cand, pool)
    inputs = list(x.columns)
    params = params.resolved(len(table) / max(1, len(trained_models)), table["query_id"].n_unique())
    model, ensemble, diff = fit_rows(aug, x, y, w, fitted, cand, pool, params, iterations=params.iterations,
                                     label="training the quality model (trees)")
    from .length import train_length_model

    from .prior import train_descriptor_prior

    length = train_length_model(table, fitted, cand, pool, params)
    prior = train_descriptor_prior(table, pool)
    return TrainedModel(spec=fitted, inputs=inputs, ensemble=ensemble, catboost_model=model,
                        rows=len(table), parity_max_abs_diff=diff, params=params, length=length, prior=prior)


def fit_rows(aug: pl.DataFrame, x: pl.DataFrame, y: np.ndarray, w: np.ndarray | None, spec: FeatureSpec,
             cand: Sequence[str], pool: Sequence[ModelInfo], params: TrainParams, *, iterations: int,
             label: str) -> tuple[Any, dict[str, Any], float]:
    """CatBoost on the (query, model) rows ``aug`` (matrix ``x``, label ``y``, weights ``w``), its
    export, and parity end to end: the runtime's own feature extraction and candidate inputs on sampled
    rows must give CatBoost's predictions on the pipeline's (Polars) matrix for the same rows.
    The one recipe of the quality and the length model: (model, ensemble, max |diff|)."""
    from catboost import CatBoostRegressor, Pool  # heavy: imported when training, not at import

    inputs = list(x.columns)
    model = CatBoostRegressor(
        loss_function="RMSE", iterations=iterations, depth=params.depth,
        learning_rate=params.learning_rate, l2_leaf_reg=params.l2_leaf_reg, random_seed=params.seed,
        thread_count=params.thread_count, verbose=0, allow_writing_files=False, nan_mode="Min",
        feature_weights=[params.identity_weight if n.startswith(IDENTITY_PREFIX) else 1.0 for n in inputs],
    )
    xn = x.to_numpy().astype(np.float64)
    fit_catboost(model, Pool(xn, y, weight=w, feature_names=inputs), label, iterations)
    ensemble = ensemble_from_catboost(model, inputs)
    idx = np.random.default_rng(params.seed).choice(len(xn), size=min(len(xn), 2000), replace=False)
    by_name = {m.name: m for m in pool}
    runtime_rows = [list(spec.extract(r["query"])) + list(candidate_vector(cand, by_name[r["model"]],
                                                                          known=not r["_hide_identity"]))
                    for r in aug[idx.tolist()].select("query", "model", "_hide_identity").iter_rows(named=True)]
    return model, ensemble, check_parity(ensemble, model, xn[idx], runtime_rows=runtime_rows)


def ensemble_from_catboost(model: Any, inputs: Sequence[str]) -> dict[str, Any]:
    """CatBoost's JSON export, reduced to the plain arrays of ``router_runtime.trees``."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.json")
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as f:
            cb = json.load(f)
    if cb.get("features_info", {}).get("categorical_features"):
        raise ContractError("model", "categorical features are not supported: give the runtime numeric inputs")
    floats = cb["features_info"]["float_features"]
    if len(floats) != len(inputs):
        raise ContractError("model", f"CatBoost has {len(floats)} float features, expected {len(inputs)}")
    nan_true = [inputs[f["flat_feature_index"]] for f in floats if f.get("nan_value_treatment") == "AsTrue"]
    depth, split_input, split_border, leaves = [], [], [], []
    for i, tree in enumerate(cb["oblivious_trees"]):
        splits = tree.get("splits") or []  # a tree that found no useful split is exported as null
        depth.append(len(splits))
        for s in splits:
            if s.get("split_type") != "FloatFeature":
                raise ContractError(f"trees[{i}]", f"unsupported split type {s.get('split_type')!r}")
            split_input.append(int(s["float_feature_index"]))
            split_border.append(float(s["border"]))
        if len(tree["leaf_values"]) != 2 ** len(splits):
            raise ContractError(f"trees[{i}]", "multi-dimensional leaves are not supported")
        leaves.extend(float(v) for v in tree["leaf_values"])
    scale, bias = cb["scale_and_bias"]
    return {
        "kind": "oblivious_trees", "inputs": list(inputs), "tree_depth": depth, "split_input": split_input,
        "split_border": split_border, "leaf_values": leaves, "nan_as_true": nan_true,
        "scale": float(scale), "bias": float(bias[0]),
    }


def check_parity(ensemble: dict[str, Any], model: Any, x: np.ndarray,
                 runtime_rows: Sequence[Sequence[float]] | None = None) -> float:
    """Max |runtime - CatBoost| raw prediction, both runtime paths; raises above the tolerance.

    CatBoost predicts on ``x`` (the pipeline's matrix); the runtime evaluates ``runtime_rows`` (the
    same rows built by the runtime itself) or, when not given, ``x``.
    """
    ref = model.predict(x, prediction_type="RawFormulaVal")
    ev = ObliviousEnsemble(ensemble)
    rows = x.tolist() if runtime_rows is None else [list(r) for r in runtime_rows]
    py = ev.predict_many(rows)
    npv = ev.predict_many(rows, use_numpy=True)
    if py != npv:
        bad = next(i for i, (a, b) in enumerate(zip(py, npv)) if a != b)
        raise ArtifactParityError(f"pure-Python and numpy evaluators disagree on row {bad}: {py[bad]!r} vs {npv[bad]!r}")
    diff = max((abs(a - b) for a, b in zip(py, ref)), default=0.0)
    if not diff <= PARITY_TOLERANCE:
        bad = int(np.argmax(np.abs(np.asarray(py) - ref)))
        raise ArtifactParityError(
            f"runtime predictions differ from CatBoost by {diff:.3g} (> {PARITY_TOLERANCE:g}) on row {bad}: "
            f"{py[bad]!r} vs {ref[bad]!r}; refusing to export")
    return float(diff)
