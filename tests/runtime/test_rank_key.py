"""The one rank rule (``router_runtime.policy.rank_key``): utility first, exact; ties to the cheaper
model, then to the name.  The Router's choice follows it on ties built through a real artifact."""

from __future__ import annotations

import math

import pytest

from router_runtime import Router, write_artifact
from router_runtime.policy import rank_key, rank_scores
from router_runtime.router import CandidateScore


def test_highest_utility_first_then_cheaper_then_name():
    rows = [(0.5, 2.0, "b"), (0.7, 9.0, "z"), (0.5, 1.0, "c"), (0.5, 1.0, "a")]
    assert [r[2] for r in sorted(rows, key=lambda r: rank_key(*r))] == ["z", "a", "c", "b"]


def test_a_near_tie_is_not_a_tie():
    # 0.1 + 0.2 is one ulp above 0.3: the comparison is exact, so the dearer model with the larger
    # utility wins (a tolerance would hand it to the cheaper one).
    hi, lo = 0.1 + 0.2, 0.3
    assert hi > lo and math.nextafter(lo, 1.0) == hi
    assert min([(lo, 1.0, "cheap"), (hi, 5.0, "dear")], key=lambda r: rank_key(*r))[2] == "dear"


def test_rank_scores_orders_candidate_scores_by_the_same_key():
    scores = [CandidateScore("b", 0.5, 1.0, None, 0.4), CandidateScore("a", 0.5, 1.0, None, 0.4),
              CandidateScore("c", 0.9, 3.0, None, 0.6)]
    assert [s.model for s in rank_scores(scores)] == ["c", "a", "b"]


def _two_model_artifact(root, cost_a: float, cost_b: float):
    doc = {
        "format_version": 1, "version": "",
        "feature_spec": {"version": 1, "max_chars": 4096, "features": [
            {"name": "chars", "op": "char_count", "params": {}}]},
        "pool": [{"name": "a", "capabilities": ["chat"], "cost": {"intercept": cost_a, "per_char": 0.0}},
                 {"name": "b", "capabilities": ["chat"], "cost": {"intercept": cost_b, "per_char": 0.0}}],
        # the same predicted quality for both models: only cost and name can separate them
        "quality_model": {"kind": "oblivious_trees", "inputs": ["chars", "model__a", "model__b"],
                          "tree_depth": [1], "split_input": [1], "split_border": [0.5],
                          "leaf_values": [0.5, 0.5], "scale": 1.0, "bias": 0.0},
        "policy": {"cost_weight": 0.0, "cost_scale": 1.0},
    }
    return write_artifact(root, doc, {})


@pytest.mark.parametrize(("cost_a", "cost_b", "chosen"), [(1.0, 1.0, "a"), (2.0, 1.0, "b"), (1.0, 2.0, "a")])
@pytest.mark.parametrize("engine", ["python", "auto"])
def test_the_router_breaks_ties_by_the_rank_key(tmp_path, cost_a, cost_b, chosen, engine):
    router = Router.load(_two_model_artifact(tmp_path, cost_a, cost_b), engine=engine)
    d = router.decide("hello", cost_weight=0.0)
    assert d.score("a").utility == d.score("b").utility and d.model == chosen
    assert d.model == min(d.scores, key=lambda s: rank_key(s.utility, s.cost, s.model)).model
