"""Exploration: exact propensities (hand-computed), the quality floor, cold-start share, and the
router's logged propensities matching its empirical choice frequencies."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from router_runtime import ContractError, ModelInfo, Router
from router_runtime.policy import Exploration, choice_probabilities

U = {"a": 0.9, "b": 0.5, "c": 0.4, "d": 0.1}
Q = {"a": 0.9, "b": 0.5, "c": 0.4, "d": 0.1}


def test_off_means_greedy_with_propensity_one():
    p = choice_probabilities(U, Q, "a", frozenset(), Exploration(rate=0.0))
    assert p == {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}


def test_epsilon_uniform_hand_computed():
    p = choice_probabilities(U, Q, "a", frozenset(), Exploration(rate=0.2))
    # greedy: 0.8 + 0.2/4; others 0.2/4
    assert p == pytest.approx({"a": 0.85, "b": 0.05, "c": 0.05, "d": 0.05}, abs=1e-15)


def test_quality_floor_never_explores_bad_models():
    p = choice_probabilities(U, Q, "a", frozenset(), Exploration(rate=0.3, quality_floor=0.45))
    # explorable = {a, b}: a = 0.7 + 0.15, b = 0.15, c and d never
    assert p == pytest.approx({"a": 0.85, "b": 0.15, "c": 0.0, "d": 0.0}, abs=1e-15)


def test_softmax_hand_computed():
    p = choice_probabilities({"a": 0.2, "b": 0.1}, {"a": 0.2, "b": 0.1}, "a", frozenset(),
                             Exploration(rate=0.1, method="softmax", temperature=0.1))
    wa, wb = 1.0, math.exp(-1.0)  # exp((u - max) / T)
    assert p["a"] == pytest.approx(0.9 + 0.1 * wa / (wa + wb), abs=1e-15)
    assert p["b"] == pytest.approx(0.1 * wb / (wa + wb), abs=1e-15)


def test_cold_models_get_a_bounded_share():
    p = choice_probabilities(U, Q, "a", frozenset({"d"}), Exploration(rate=0.2, cold_start_share=0.5))
    # d (cold) gets 0.2 * 0.5 even though its predicted quality is the lowest; warm {a, b, c} share 0.1
    assert p == pytest.approx({"a": 0.8 + 0.1 / 3, "b": 0.1 / 3, "c": 0.1 / 3, "d": 0.1}, abs=1e-15)
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("bad", [
    {"rate": 0.9}, {"rate": -0.1}, {"method": "thompson"}, {"temperature": 0.0}, {"quality_floor": 2.0},
    {"cold_start_share": 1.5},
])
def test_invalid_exploration_is_refused(bad):
    with pytest.raises(ContractError, match="exploration"):
        Exploration(**bad)


def test_router_logs_the_propensity_it_samples_with(trained_registry):
    router = Router.load(trained_registry, exploration=Exploration(rate=0.3), seed=7, use_numpy=False)
    q = "Which river flows through Vienna?"
    greedy = Router.load(trained_registry).decide(q).model
    n = 4000
    decisions = [router.decide(q) for _ in range(n)]
    counts = Counter(d.model for d in decisions)
    props = {d.model: d.propensity for d in decisions}
    for model, c in counts.items():
        expected = props[model]
        assert abs(c / n - expected) < 4 * math.sqrt(expected * (1 - expected) / n) + 1e-9, model
    assert all(d.explored == (d.model != greedy) for d in decisions)
    assert props[greedy] == pytest.approx(0.7 + 0.3 / 8)
    explored = next(d for d in decisions if d.explored)
    assert explored.reason.startswith("exploring:")
    # Seeded: the same seed replays the same sequence of choices.
    again = Router.load(trained_registry, exploration=Exploration(rate=0.3), seed=7, use_numpy=False)
    assert [again.decide(q).model for _ in range(200)] == [d.model for d in decisions[:200]]


def test_a_new_model_is_scored_and_explored_without_retraining(trained_registry, demo_pool):
    newcomer = ModelInfo("phi-4-mini", capabilities=("chat", "code"), size_b=3.8, context_length=16384,
                         cost=demo_pool[0].cost)
    pool = [m for m in demo_pool if m.name != "gemma-2-9b-it"] + [newcomer]  # one removed, one added
    router = Router.load(trained_registry, pool=pool, exploration=Exploration(rate=0.2), seed=1)
    d = router.decide("Write a Python function that checks whether a string is a palindrome.")
    names = {s.model for s in d.scores}
    assert "phi-4-mini" in names and "gemma-2-9b-it" not in names
    s = d.score("phi-4-mini")
    assert 0.0 <= s.quality <= 1.0 and "no outcomes yet" in d.reason and "phi-4-mini" in d.reason
    # The artifact's learned cost model still applies to the models it knows.
    art = router.artifact
    known = d.score("llama-3.3-70b-instruct")
    assert known.cost == art.model("llama-3.3-70b-instruct").expected_cost(len(d.query))
    seen = Counter(router.decide("Write a Python function that checks whether a string is a palindrome.").model
                   for _ in range(2000))
    assert 0.06 < seen["phi-4-mini"] / 2000 < 0.2  # about rate * cold share = 0.1, plus any greedy wins
