"""Offline evaluation ranks exactly as the runtime does (one rank rule: ``router_runtime.policy.rank_key``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.evaluate.holdout import route_at
from router_runtime.policy import rank_key


def _runtime_choice(pq, pc, lam, scale, models):
    # The runtime's utility expression, in its order of operations (router._decide_learned).
    return min(range(len(models)), key=lambda j: rank_key(pq[j] - lam * pc[j] / scale, pc[j], models[j]))


def test_a_utility_one_ulp_higher_wins_although_dearer():
    # 0.1 + 0.2 is one ulp above 0.3: not a tie for the runtime, so not for the evaluation either.
    pq = np.array([[0.1 + 0.2, 0.3]])
    pc = np.array([[2.0, 1.0]])
    assert route_at(pq, pc, 0.0, 1.0).tolist() == [0]
    assert _runtime_choice(pq[0], pc[0], 0.0, 1.0, ["a", "b"]) == 0


def test_exact_ties_go_to_the_cheaper_then_to_the_name():
    pq = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    pc = np.array([[3.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    assert route_at(pq, pc, 0.0, 1.0).tolist() == [1, 0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.3, 0.1 + 0.2, 0.30000000000000004, 0.7, 1e-17, 0.0]),
                          st.sampled_from([1.0, 1.0 + 2 ** -52, 2.0, 0.0, 5e-5])),
                min_size=2, max_size=6),
       st.sampled_from([0.0, 0.1, 1.0]), st.sampled_from([1.0, 3.0, 6.1e-5]))
def test_route_at_agrees_with_the_runtime_rank_key_on_near_ties(cands, lam, scale):
    models = [f"m{j}" for j in range(len(cands))]  # columns in name order, as quality_matrix sorts them
    pq = np.array([[q for q, _ in cands]])
    pc = np.array([[c for _, c in cands]])
    assert int(route_at(pq, pc, lam, scale)[0]) == _runtime_choice(pq[0], pc[0], lam, scale, models)


@pytest.mark.parametrize("seed", range(3))
def test_route_at_agrees_with_the_runtime_on_random_rows(seed):
    rng = np.random.default_rng(seed)
    pq = np.round(rng.random((500, 5)), 2)  # rounded: many exact ties
    pc = np.round(rng.random((500, 5)), 1)
    models = [f"m{j}" for j in range(5)]
    got = route_at(pq, pc, 0.1, 0.9)
    want = [_runtime_choice(pq[i], pc[i], 0.1, 0.9, models) for i in range(500)]
    assert got.tolist() == want
