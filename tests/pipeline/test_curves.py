"""The routing metrics of flows/metrics.py on small cases computed by hand (numbers in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from flows.evaluate.curves import (aiq, apgr, cost_at_quality, cpt, nondecreasing_hull, normalized_gain,
                           quality_at_cost, strong_share_curve, sweep_curve)

# A rises, then falls at its last point: hull (1,.2) (2,.5) (3,.6); the fall to (4,.55) is cut.
A = np.array([[1, 0.2], [2, 0.5], [3, 0.6], [4, 0.55]])
B = np.array([[2, 0.4]])                 # one fixed choice
C = np.array([[0.5, 0.1], [5, 0.3]])     # the most expensive curve: max cost 5


def test_hull_cuts_the_fall_and_keeps_the_rise():
    np.testing.assert_allclose(nondecreasing_hull(A), [[1, 0.2], [2, 0.5], [3, 0.6]])


def test_hull_lifts_a_point_under_the_chord():
    # chord (1,.2)-(3,.6) passes .4 at cost 2: the point (2,.25) is under it and is no vertex
    np.testing.assert_allclose(nondecreasing_hull([[3, 0.6], [1, 0.2], [2, 0.25]]), [[1, 0.2], [3, 0.6]])


def test_hull_equal_costs_keep_the_best_and_a_best_cheapest_point_stands_alone():
    np.testing.assert_allclose(nondecreasing_hull([[1, 0.2], [1, 0.4], [2, 0.5]]), [[1, 0.4], [2, 0.5]])
    np.testing.assert_allclose(nondecreasing_hull([[1, 0.9], [2, 0.5]]), [[1, 0.9]])
    # equal qualities stay (AIQ.py drops only a strictly lower point), so the flat top reaches cost 2
    np.testing.assert_allclose(nondecreasing_hull([[1, 0.5], [2, 0.5]]), [[1, 0.5], [2, 0.5]])


def test_aiq_by_hand():
    # max cost 5 (C).  A: .5*(.2+.5) + .5*(.5+.6) + 2*.6 = 2.1 -> 2.1/5 = .42
    # B: flat from 2 to 5 at .4 -> 1.2/5 = .24.  C: 4.5*(.1+.3)/2 = .9 -> .18
    got = aiq({"A": A, "B": B, "C": C})
    assert got == pytest.approx({"A": 0.42, "B": 0.24, "C": 0.18}, abs=1e-12)
    # without C the max cost is A's hull end, 3: A (.35 + .55)/3 = .3, B .4*(3-2)/3
    assert aiq({"A": A, "B": B}) == pytest.approx({"A": 0.3, "B": 0.4 / 3}, abs=1e-12)


def test_aiq_integrates_the_upper_envelope():
    """Independent definition: at each curve cost the envelope is the best chord through it."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = np.column_stack([rng.permutation(np.arange(1.0, 9.0)), rng.random(8)])
        xs = np.sort(p[:, 0])
        env = np.array([max(np.interp(x, [a[0], b[0]], [a[1], b[1]]) for a in p for b in p
                            if a[0] <= x <= b[0]) for x in xs])
        end = int(np.flatnonzero(env >= env.max() - 1e-12)[-1]) + 1  # the hull is cut after its peak,
        x, y = xs[:end], env[:end]                                   # which is then its max cost
        area = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
        assert aiq({"p": p})["p"] == pytest.approx(area / x[-1], abs=1e-12)


def test_quality_at_cost_and_cost_at_quality_on_the_hull():
    assert quality_at_cost(A, 2.5) == pytest.approx(0.55)       # halfway between .5 and .6
    assert quality_at_cost(A, 10.0) == pytest.approx(0.6)       # flat past the end
    assert quality_at_cost(A, 1.0) == pytest.approx(0.2)
    assert quality_at_cost(A, 0.5) is None                      # below its cheapest point
    assert cost_at_quality(A, 0.35) == pytest.approx(1.5)       # 1 + (.35-.2)/(.5-.2)
    assert cost_at_quality(A, 0.6) == pytest.approx(3.0)
    assert cost_at_quality(A, 0.1) == pytest.approx(1.0)        # the cheapest point already does
    assert cost_at_quality(A, 0.7) is None


def test_normalized_gain():
    assert normalized_gain(0.5, 0.4, 0.8) == pytest.approx(0.25)
    assert normalized_gain(0.3, 0.4, 0.8) == pytest.approx(-0.25)
    assert normalized_gain(0.5, 0.4, 0.4) is None and normalized_gain(None, 0.4, 0.8) is None


def test_sweep_curve_follows_the_runtime_rule():
    pq = np.array([[0.9, 0.5], [0.6, 0.5]])
    cost = np.array([[2.0, 1.0], [2.0, 1.0]])
    true = np.array([[1.0, 0.0], [0.0, 1.0]])
    # λ=0: both to model 0 -> (2, .5).  λ=.5 (scale 2): q1 .9-.5 > .5-.25 -> 0; q2 .6-.5 < .25 -> 1 -> (1.5, 1)
    # λ=10: both to the cheaper model 1 -> (1, .5)
    got = sweep_curve(pq, cost, true, cost, scale=2.0, cost_weights=[0.0, 0.5, 10.0])
    np.testing.assert_allclose(got, [[2.0, 0.5], [1.5, 1.0], [1.0, 0.5]])


def test_sweep_curve_ties_go_to_the_cheaper_model():
    got = sweep_curve(np.array([[0.5, 0.5]]), np.array([[2.0, 1.0]]), np.array([[1.0, 0.0]]),
                      np.array([[2.0, 1.0]]), scale=1.0, cost_weights=[0.0])
    np.testing.assert_allclose(got, [[1.0, 0.0]])


WEAK = np.array([0.0, 1.0, 0.0, 0.0])
STRONG = np.array([1.0, 1.0, 0.0, 1.0])   # gains 1, 0, 0, 1; weak mean .25, strong mean .75


def test_strong_share_curve_blocks_ties():
    # order by score: q0 (.9), {q2, q3} (.5, one block), q1 (.1); cumulative gains 1, 2, 2
    c = strong_share_curve(np.array([0.9, 0.1, 0.5, 0.5]), WEAK, STRONG)
    np.testing.assert_allclose(c, [[0, 0.25], [0.25, 0.5], [0.75, 0.75], [1, 0.75]])
    # a constant score is one block: the straight line of random routing
    np.testing.assert_allclose(strong_share_curve(np.zeros(4), WEAK, STRONG), [[0, 0.25], [1, 0.75]])


def test_apgr_and_cpt_by_hand():
    c = strong_share_curve(np.array([0.9, 0.1, 0.5, 0.5]), WEAK, STRONG)
    # AUC = .25*(.25+.5)/2 + .5*(.5+.75)/2 + .25*(.75+.75)/2 = .59375; (AUC - .25) / (.75 - .25) = .6875
    assert apgr(c, 0.25, 0.75) == pytest.approx(0.6875)
    assert cpt(c, 0.25, 0.75, 0.5) == pytest.approx(0.25)    # target .5, reached at the second point
    assert cpt(c, 0.25, 0.75, 0.8) == pytest.approx(0.55)    # target .65: .25 + (.65-.5)/(.75-.5) * .5
    assert cpt(c, 0.25, 0.75, 1.01) is None
    line = strong_share_curve(np.zeros(4), WEAK, STRONG)
    assert apgr(line, 0.25, 0.75) == pytest.approx(0.5)
    assert cpt(line, 0.25, 0.75, 0.5) == pytest.approx(0.5) and cpt(line, 0.25, 0.75, 0.8) == pytest.approx(0.8)
    assert apgr(line, 0.5, 0.5) is None
