"""The oblivious-tree evaluator: float32 border semantics, NaN handling, and exact parity with CatBoost."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.training import check_parity, ensemble_from_catboost
from router_runtime import ContractError, ObliviousEnsemble
from router_runtime.trees import float32_threshold


def f32(x: float) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


@given(border=st.floats(width=32, allow_nan=False, allow_infinity=False),
       x=st.floats(allow_nan=False, allow_infinity=True))
@settings(max_examples=3000, deadline=None)
def test_threshold_matches_float32_comparison(border, x):
    t = float32_threshold(border)
    assert (x > t) == (f32(x) > border)


@given(border=st.floats(width=32, allow_nan=False, allow_infinity=False))
@settings(max_examples=1000, deadline=None)
def test_threshold_at_the_rounding_edges(border):
    t = float32_threshold(border)
    for x in (t, math.nextafter(t, math.inf), math.nextafter(t, -math.inf), border,
              math.nextafter(border, math.inf), math.nextafter(border, -math.inf)):
        assert (x > t) == (f32(x) > border), (border, x)


def _ensemble(**over):
    spec = {"kind": "oblivious_trees", "inputs": ["a", "b"], "tree_depth": [2, 0],
            "split_input": [0, 1], "split_border": [0.5, 1.5], "leaf_values": [1.0, 2.0, 3.0, 4.0, 10.0],
            "scale": 2.0, "bias": 0.25}
    spec.update(over)
    return ObliviousEnsemble(spec)


def test_hand_computed_leaves_depth_zero_tree_and_nan():
    e = _ensemble()
    # leaf index: bit0 = a > 0.5, bit1 = b > 1.5; the depth-0 tree always adds 10.
    cases = {(0.0, 0.0): 1.0, (1.0, 0.0): 2.0, (0.0, 2.0): 3.0, (1.0, 2.0): 4.0}
    for (a, b), leaf in cases.items():
        assert e.predict([a, b]) == (leaf + 10.0) * 2.0 + 0.25
    assert e.predict([math.nan, 2.0]) == (3.0 + 10.0) * 2.0 + 0.25  # NaN goes to the "not greater" side
    e_true = _ensemble(nan_as_true=["a"])
    assert e_true.predict([math.nan, 0.0]) == (2.0 + 10.0) * 2.0 + 0.25
    rows = [[0.0, 0.0], [1.0, 2.0], [math.nan, math.nan], [0.5, 1.5]]
    assert e.predict_many(rows) == e.predict_many(rows, use_numpy=True)


@pytest.mark.parametrize("over,field", [
    ({"tree_depth": [2]}, "leaf_values"),
    ({"split_input": [0, 7]}, "split_input[1]"),
    ({"split_border": [0.5, math.inf]}, "split_border"),
    ({"leaf_values": [1.0, 2.0, 3.0, math.nan, 10.0]}, "leaf_values"),
    ({"inputs": ["a", "a"]}, "inputs"),
    ({"nan_as_true": ["zzz"]}, "nan_as_true"),
    ({"scale": math.inf}, "scale"),
])
def test_malformed_ensembles_are_refused(over, field):
    with pytest.raises(ContractError) as ei:
        _ensemble(**over)
    assert ei.value.field.startswith(field.split("[")[0])


def test_wrong_input_length_is_refused():
    with pytest.raises(ContractError, match="expected 2 values"):
        _ensemble().predict([1.0])


@pytest.mark.parametrize("nan_mode", ["Min", "Max"])
def test_exact_parity_with_catboost(nan_mode):
    from catboost import CatBoostRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 6))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 2] = np.round(x[:, 2] * 3)  # many values sit exactly on borders
    y = np.nan_to_num(x[:, 0]) * 2 + np.nan_to_num(x[:, 1]) + rng.normal(size=len(x)) * 0.1
    model = CatBoostRegressor(iterations=150, depth=6, verbose=0, random_seed=0, thread_count=2,
                              nan_mode=nan_mode, allow_writing_files=False)
    model.fit(x, y)
    ens = ensemble_from_catboost(model, [f"f{i}" for i in range(6)])
    probe = rng.normal(size=(3000, 6))
    probe[rng.random(probe.shape) < 0.1] = np.nan
    # float64 values a hair either side of every border of feature 0: the float32 rounding cases.
    borders = sorted({b for i, b in zip(ens["split_input"], ens["split_border"]) if i == 0})
    edge = np.repeat(borders, 3) + np.tile([-1e-12, 0.0, 1e-12], len(borders))
    probe[: len(edge), 0] = edge
    assert check_parity(ens, model, probe) <= 1e-9


def test_candidate_scorer_is_bit_identical_to_full_evaluation(trained_registry):
    """The routing specialisation (query part once, candidate part cached) changes no bit."""
    from router_runtime import load_artifact

    art = load_artifact(trained_registry)
    rng = np.random.default_rng(5)
    spec = art.feature_spec
    queries = ["", "What is 2 + 2?", "def f(x):\n    return x  # fix", "日本語のテキスト " * 20, None]
    for q in queries:
        feats = spec.extract(q)
        for noise in range(3):
            qv = [v + (rng.normal() if noise and v == v else 0.0) for v in feats]
            bases, rows = [], []
            for m in art.pool:
                cand = art.candidate_vector(m)
                bases.append(art.scorer.candidate_base(cand))
                rows.append([qv[i] if src == "q" else cand[i] for src, i in art.input_plan])
            full = art.ensemble.predict_many(rows)
            assert art.scorer.score(qv, bases) == full
            assert art.scorer.score(qv, np.asarray(bases), use_numpy=True) == full
            assert art.ensemble.predict_many(rows, use_numpy=True) == full
