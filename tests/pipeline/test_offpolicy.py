"""Off-policy evaluation: hand-computed cases, properties, unbiasedness/coverage by simulation, the
real LLMRouter test set, and input validation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import flows.evaluate.bootstrap as bootstrap
from flows.evaluate.offpolicy import deterministic_probs, ope_estimates, paired_difference
from ope_study import bias_coverage_study, format_study
from router_runtime.errors import ContractError

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# Case A: 4 rows, 2 actions, stochastic target.
A_ACT = np.array([0, 1, 0, 1])
A_REW = np.array([1.0, 0.5, 0.0, 1.0])
A_PROP = np.array([0.5, 0.25, 0.8, 0.5])
A_PI = np.array([[1.0, 0.0], [0.5, 0.5], [0.25, 0.75], [0.0, 1.0]])
A_Q = np.array([[0.5, 0.5], [0.2, 0.6], [0.1, 0.9], [0.4, 0.8]])

# Case B: 3 rows, 3 actions, deterministic target picking [2, 1, 1].
B_ACT = np.array([2, 0, 1])
B_REW = np.array([0.3, 0.9, 0.6])
B_PROP = np.array([0.2, 0.5, 1.0])
B_PI = deterministic_probs(np.array([2, 1, 1]), 3)
B_Q = np.array([[0.0, 0.1, 0.2], [0.3, 0.4, 0.5], [0.6, 0.7, 0.8]])


def test_hand_case_a():
    e = ope_estimates(A_ACT, A_REW, A_PROP, A_PI, A_Q, n_bootstrap=0)
    # π(a_i|x_i) = [1, .5, .25, 1];  w = [1/.5, .5/.25, .25/.8, 1/.5] = [2, 2, .3125, 2]
    # w·r = [2, 1, 0, 2], Σ = 5  -> IPS = 5/4 = 1.25
    assert e.ips == pytest.approx(1.25, abs=1e-12)
    # Σw = 6.3125 -> SNIPS = 5 / 6.3125 = 80/101
    assert e.snips == pytest.approx(80 / 101, abs=1e-12)
    # direct Σ_a π q̂ = [.5, .5·.2+.5·.6=.4, .25·.1+.75·.9=.7, .8]
    # correction w(r − q̂(a_i)) = [2(1−.5)=1, 2(.5−.6)=−.2, .3125(0−.1)=−.03125, 2(1−.8)=.4]
    # terms = [1.5, .2, .66875, 1.2], Σ = 3.56875 -> DR = 0.8921875
    assert e.dr == pytest.approx(0.8921875, abs=1e-12)
    # ESS = 6.3125² / (4 + 4 + .09765625 + 4) = 39.84765625 / 12.09765625 = 10201/3097
    assert e.ess == pytest.approx(10201 / 3097, abs=1e-12)
    assert e.match_rate == 1.0 and e.n == 4
    assert all(math.isnan(x) for x in (e.ci_low, e.ci_high, *e.ips_ci, *e.snips_ci))


def test_hand_case_b_deterministic_target():
    e = ope_estimates(B_ACT, B_REW, B_PROP, B_PI, B_Q, n_bootstrap=0)
    # π(a_i|x_i) = [1, 0, 1];  w = [1/.2, 0, 1/1] = [5, 0, 1];  w·r = [1.5, 0, .6] -> IPS = 2.1/3 = .7
    assert e.ips == pytest.approx(0.7, abs=1e-12)
    # Σw = 6 -> SNIPS = 2.1/6 = .35
    assert e.snips == pytest.approx(0.35, abs=1e-12)
    # direct = q̂ at the target action = [.2, .4, .7]; correction = [5(.3−.2)=.5, 0, 1(.6−.7)=−.1]
    # terms = [.7, .4, .6] -> DR = 1.7/3
    assert e.dr == pytest.approx(1.7 / 3, abs=1e-12)
    # ESS = 6² / (25 + 0 + 1) = 18/13;  the target matches rows 0 and 2 -> 2/3
    assert e.ess == pytest.approx(18 / 13, abs=1e-12)
    assert e.match_rate == pytest.approx(2 / 3, abs=1e-12)


def test_hand_paired_difference():
    # Candidate = case B's target [2, 1, 1]: DR = 1.7/3 (above).  Champion = always action 0:
    # π(a_i) = [0, 1, 0], w = [0, 2, 0]; direct = q̂[:, 0] = [0, .3, .6]; correction = [0, 2(.9−.3)=1.2, 0]
    # terms = [0, 1.5, .6] -> DR = 2.1/3.  diff = (1.7 − 2.1)/3 = −0.4/3
    champ = deterministic_probs(np.zeros(3, dtype=int), 3)
    d = paired_difference(B_ACT, B_REW, B_PROP, B_PI, champ, B_Q, n_bootstrap=200, seed=3)
    assert d["candidate"] == pytest.approx(1.7 / 3, abs=1e-12)
    assert d["champion"] == pytest.approx(2.1 / 3, abs=1e-12)
    assert d["diff"] == pytest.approx(-0.4 / 3, abs=1e-12)
    assert d["estimator"] == "dr" and d["ci_low"] <= d["diff"] <= d["ci_high"]
    # Per-row diff terms are [.7, −1.1, 0]: a replicate is > 0 only if it draws row 0 more than row 1.
    assert 0.0 < d["p_diff_le_0"] < 1.0


def test_bootstrap_is_seeded_and_chunking_does_not_change_it(monkeypatch):
    rng = np.random.default_rng(5)
    n, k = 300, 3
    args = (rng.integers(0, k, n), rng.random(n), np.full(n, 1 / k),
            deterministic_probs(rng.integers(0, k, n), k), rng.random((n, k)))
    a = ope_estimates(*args, n_bootstrap=64, seed=11)
    assert a == ope_estimates(*args, n_bootstrap=64, seed=11)
    assert a != ope_estimates(*args, n_bootstrap=64, seed=12)
    monkeypatch.setattr(bootstrap, "_BOOT_CHUNK", 7 * n + 5)   # 7 replicates per chunk, last chunk partial
    assert a == ope_estimates(*args, n_bootstrap=64, seed=11)
    assert a.ci_low <= a.dr <= a.ci_high and a.ips_ci[0] <= a.ips <= a.ips_ci[1]
    assert a.snips_ci[0] <= a.snips <= a.snips_ci[1]


def test_to_json_is_strict_json():
    e = ope_estimates(np.array([0, 0]), np.array([1.0, 0.0]), np.array([0.5, 0.5]),
                      deterministic_probs(np.array([1, 1]), 2), n_bootstrap=10)
    j = e.to_json()
    assert j["snips"] is None and j["ips"] == 0.0 and j["snips_ci"] == [None, None]
    json.dumps(j, allow_nan=False)


# ---------------------------------------------------------------------------------------- properties

def test_target_equal_to_logging_gives_unit_weights():
    rng = np.random.default_rng(0)
    n, k = 500, 4
    r = rng.random(n)
    e = ope_estimates(rng.integers(0, k, n), r, np.full(n, 1 / k), np.full((n, k), 1 / k), n_bootstrap=0)
    assert e.ess == pytest.approx(n, abs=1e-9)           # every weight is exactly 1
    assert e.ips == pytest.approx(r.mean(), abs=1e-12)
    assert e.snips == pytest.approx(r.mean(), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), stochastic=st.booleans(), softmax=st.booleans())
def test_exact_reward_model_gives_dr_zero_error(seed, stochastic, softmax):
    rng = np.random.default_rng(seed)
    n, k = 200, 3
    full = rng.random((n, k))                            # full information: every action's reward
    pi = rng.dirichlet(np.ones(k), n) if stochastic else deterministic_probs(rng.integers(0, k, n), k)
    log_p = rng.dirichlet(np.ones(k), n) if softmax else np.full((n, k), 1 / k)
    a = (np.cumsum(log_p, axis=1) < rng.random(n)[:, None]).sum(axis=1).clip(max=k - 1)
    rows = np.arange(n)
    e = ope_estimates(a, full[rows, a], log_p[rows, a], pi, full, n_bootstrap=0)
    assert e.dr == pytest.approx((pi * full).sum(axis=1).mean(), abs=1e-12)


def test_exact_reward_model_in_the_study():
    rng = np.random.default_rng(1)
    full = (rng.random((300, 4)) < 0.5).astype(float)
    tgt = rng.integers(0, 4, 300)
    for logging in ("uniform", "softmax"):
        s = bias_coverage_study(full, None, tgt, full, seeds=20, logging=logging, n_bootstrap=20)
        assert s["dr"]["rmse"] < 1e-12 and s["dr"]["coverage"] == 1.0


def test_zero_reward_model_is_ips():
    rng = np.random.default_rng(2)
    n, k = 400, 3
    args = (rng.integers(0, k, n), rng.random(n), rng.uniform(0.1, 1.0, n), rng.dirichlet(np.ones(k), n))
    zero = ope_estimates(*args, np.zeros((n, k)), n_bootstrap=50, seed=4)
    assert zero.dr == pytest.approx(zero.ips, abs=1e-12)
    assert (zero.ci_low, zero.ci_high) == pytest.approx(zero.ips_ci, abs=1e-12)
    none = ope_estimates(*args, None, n_bootstrap=50, seed=4)   # None is documented as q̂ ≡ 0
    assert none.dr == none.ips == pytest.approx(zero.ips, abs=1e-12)
    assert (none.ci_low, none.ci_high) == none.ips_ci


def test_no_matching_rows():
    e = ope_estimates(np.array([0, 0, 1]), np.array([1.0, 0.5, 0.2]), np.array([0.5, 0.5, 0.5]),
                      deterministic_probs(np.array([2, 2, 2]), 3), n_bootstrap=20)
    assert e.ips == 0.0 and math.isnan(e.snips) and e.ess == 0.0 and e.match_rate == 0.0
    assert all(math.isnan(x) for x in e.snips_ci)


def test_paired_difference_properties():
    rng = np.random.default_rng(3)
    n, k = 1000, 4
    a, r, p = rng.integers(0, k, n), rng.random(n), np.full(n, 1 / k)
    q = rng.random((n, k))
    cand, champ = deterministic_probs(rng.integers(0, k, n), k), deterministic_probs(np.zeros(n, int), k)
    same = paired_difference(a, r, p, cand, cand, q, n_bootstrap=100)
    assert same["diff"] == 0.0 and (same["ci_low"], same["ci_high"]) == (0.0, 0.0) and same["p_diff_le_0"] == 1.0
    d = paired_difference(a, r, p, cand, champ, q, n_bootstrap=300, seed=9)
    c1 = ope_estimates(a, r, p, cand, q, n_bootstrap=0).dr
    c2 = ope_estimates(a, r, p, champ, q, n_bootstrap=0).dr
    assert d["diff"] == pytest.approx(c1 - c2, abs=1e-12)
    assert d["candidate"] == pytest.approx(c1, abs=1e-12) and d["champion"] == pytest.approx(c2, abs=1e-12)
    assert paired_difference(a, r, p, cand, champ, None, n_bootstrap=0)["estimator"] == "ips"


# ----------------------------------------------------------------------------- unbiasedness and coverage

def test_unbiased_and_covered_on_synthetic_full_information():
    rng = np.random.default_rng(20240601)
    n, k = 2000, 4
    means = rng.uniform(0.1, 0.9, (n, k))
    full = (rng.random((n, k)) < means).astype(float)            # Bernoulli rewards
    tgt = rng.integers(0, k, n)
    # iid contexts: the truth is the population mean, so the row bootstrap's coverage should be nominal.
    for qhat in (None, means):                                   # no reward model; a good, fixed one
        s = bias_coverage_study(full, None, tgt, qhat, seeds=200, rows=n, n_bootstrap=200, seed=1)
        for est in ("ips", "dr"):
            assert abs(s[est]["bias"]) <= 3 * s[est]["se"], (est, s[est])
        assert 0.88 <= s["dr"]["coverage"] <= 0.99, s["dr"]
    assert s["dr"]["std"] < s["ips"]["std"]                      # a good reward model reduces variance


# --------------------------------------------------------------------------------------- real data

def _dcrouter_test_matrix() -> tuple[list[str], np.ndarray]:
    path = SHARED_DATA / "llmrouter_dcrouter" / "test.json"
    if not path.exists():
        pytest.skip(f"real data not available at {path}")
    rows = json.loads(path.read_text(encoding="utf-8"))
    models = sorted(rows[0]["scores"])
    assert all(sorted(r["scores"]) == models for r in rows)
    return models, np.array([[float(r["scores"][m]) for m in models] for r in rows])


def _max_weight(qhat_row: np.ndarray, temperature: float) -> float:
    z = np.exp(qhat_row / temperature)
    return float(z.sum() / z.min())


def test_real_data_bias_and_coverage():
    models, quality = _dcrouter_test_matrix()
    n, k = quality.shape
    rng = np.random.default_rng(7)
    # Target: per query the argmax of a noisy copy of the truth (a decent but imperfect router).
    target = np.argmax(quality + rng.normal(0.0, 0.5, quality.shape), axis=1)
    best = int(np.argmax(quality.mean(axis=0)))
    prior = np.tile(quality.mean(axis=0), (n, 1))    # q̂: each model's mean accuracy (no per-query signal)
    print(f"\nLLMRouter dcrouter test.json: {n} queries x {k} models; best single model "
          f"{models[best]} = {quality[:, best].mean():.4f}; oracle = {quality.max(axis=1).mean():.4f}")
    print("target = argmax(quality + N(0, 0.5²)); q̂ = per-model mean accuracy (constant per model)\n")
    ess = {}
    for logging, temp, rows in (("uniform", None, None), ("uniform", None, n), ("softmax", 0.25, None),
                                ("softmax", 0.25, n), ("softmax", 0.1, None), ("softmax", 0.1, n)):
        # 100 seeds, not 50: at 50 the coverage estimate's own SE (~0.03) is too close to the 0.85 bar.
        s = bias_coverage_study(quality, None, target, prior, seeds=100, rows=rows, logging=logging,
                                temperature=temp or 1.0, n_bootstrap=200)
        skew = "" if temp is None else f" pi0 ∝ exp(q̂/{temp}), max weight {_max_weight(prior[0], temp):.0f}"
        print(format_study(s, f"[{logging} logging{skew}]"), "\n")
        ess[logging, temp, rows] = s["mean_ess"]
        for est in ("ips", "dr"):
            assert abs(s[est]["bias"]) <= 3 * s[est]["se"], (logging, temp, rows, est, s[est])
            # Heavily skewed logging (max weight ~170, ESS ~23 of 500) is printed, not held to 0.85: there
            # the percentile bootstrap undercovers (about 0.80-0.85 over 400 seeds); see the module notes.
            if temp != 0.1:
                assert s[est]["coverage"] >= 0.85, (logging, temp, rows, est, s[est])
    assert ess["softmax", 0.1, None] < 0.5 * ess["uniform", None, None]

    # The promotion-gate view on one simulated uniform log: candidate (the noisy router) vs champion
    # (the best single model), paired bootstrap.
    log_rng = np.random.default_rng(99)
    a = log_rng.integers(0, k, n)
    d = paired_difference(a, quality[np.arange(n), a], np.full(n, 1 / k), deterministic_probs(target, k),
                          deterministic_probs(np.full(n, best), k), prior, n_bootstrap=500, seed=1)
    true_diff = quality[np.arange(n), target].mean() - quality[:, best].mean()
    print(f"paired DR diff (candidate − best single) on one uniform log: {d['diff']:+.4f} "
          f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}], P*(diff<=0) = {d['p_diff_le_0']:.3f}; true {true_diff:+.4f}")
    assert d["ci_low"] <= true_diff <= d["ci_high"]


# ---------------------------------------------------------------------------------------- validation

def _good():
    return dict(actions=A_ACT, rewards=A_REW, propensities=A_PROP, target_probs=A_PI, reward_model=A_Q)


@pytest.mark.parametrize("field,value", [
    ("actions", np.array([0.0, 1.0, 0.0, 1.0])),           # float dtype
    ("actions", np.array([True, False, True, False])),
    ("actions", np.array([0, 2, 0, 1])),                   # out of range for K = 2
    ("actions", np.array([0, -1, 0, 1])),
    ("actions", np.array([0, 1, 0])),                      # wrong length
    ("rewards", np.array([1.0, np.nan, 0.0, 1.0])),
    ("rewards", np.array([1.0, np.inf, 0.0, 1.0])),
    ("rewards", np.array(["a", "b", "c", "d"])),
    ("rewards", np.array([[1.0, 0.5, 0.0, 1.0]])),         # wrong shape
    ("propensities", np.array([0.5, 0.0, 0.8, 0.5])),
    ("propensities", np.array([0.5, 1.5, 0.8, 0.5])),
    ("propensities", np.array([0.5, np.nan, 0.8, 0.5])),
    ("propensities", np.array([0.5, 0.25, 0.8])),
    ("target_probs", np.array([[1.0, 0.0], [0.5, 0.4], [0.25, 0.75], [0.0, 1.0]])),   # row sums to .9
    ("target_probs", np.array([[1.0, 0.0], [1.5, -0.5], [0.25, 0.75], [0.0, 1.0]])),  # negative
    ("target_probs", np.array([[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]])),               # wrong n
    ("target_probs", np.array([1.0, 0.0, 0.5, 0.5])),                                 # not 2-D
    ("reward_model", np.zeros((4, 3))),
    ("reward_model", np.array([[0.5, 0.5], [0.2, np.nan], [0.1, 0.9], [0.4, 0.8]])),
])
def test_bad_input_names_the_field(field, value):
    kw = _good() | {field: value}
    with pytest.raises(ContractError) as exc:
        ope_estimates(**kw, n_bootstrap=5)
    assert exc.value.field == field and str(exc.value).startswith(field + ":")


def test_bad_options_name_the_field():
    for kw, field in (({"n_bootstrap": -1}, "n_bootstrap"), ({"n_bootstrap": 2.5}, "n_bootstrap"),
                      ({"level": 1.0}, "level"), ({"level": 0}, "level")):
        with pytest.raises(ContractError) as exc:
            ope_estimates(**_good(), **kw)
        assert exc.value.field == field
    bad_champ = np.array([[1.0, 0.0, 0.0]] * 4)          # K differs from the candidate's
    with pytest.raises(ContractError) as exc:
        paired_difference(A_ACT, A_REW, A_PROP, A_PI, bad_champ)
    assert exc.value.field == "champion_probs"
    with pytest.raises(ContractError) as exc:
        deterministic_probs(np.array([0, 3]), 3)
    assert exc.value.field == "chosen"
    q = np.zeros((5, 2))
    for kw, field in (({"logging": "greedy"}, "logging"), ({"logging": "softmax"}, "reward_model"),
                      ({"seeds": 0}, "seeds"), ({"rows": 0}, "rows"),
                      ({"logging": np.array([[1.0, 0.0]] * 5)}, "logging")):    # never logs target action 1
        with pytest.raises(ContractError) as exc:
            bias_coverage_study(q, None, np.array([1, 1, 1, 1, 1]), None, **kw)
        assert exc.value.field == field
    with pytest.raises(ContractError) as exc:
        bias_coverage_study(q, np.zeros((5, 3)), np.zeros(5, int), None)
    assert exc.value.field == "cost"


# -- session affinity (issue 11): sticky rows are not the router's own choices ---------------------------
def test_off_policy_estimates_drop_sticky_rows_and_count_them():
    import polars as pl
    from artifact_docs import make_doc
    from flows.production import evaluate_on_logs
    from router_runtime.artifact import parse_router

    art = parse_router(dict(make_doc(), version="v-ope"))
    rows = [("q1", "a", 0.9, 0.5, False), ("q2", "b", 0.1, 0.5, False), ("q3", "a", 0.8, 0.5, None),
            ("q4", "b", 0.0, 1.0, True), ("q5", "b", 0.2, 1.0, True)]
    recent = pl.DataFrame({"query": [r[0] for r in rows], "model": [r[1] for r in rows],
                           "quality": [r[2] for r in rows], "propensity": [r[3] for r in rows],
                           "sticky": [r[4] for r in rows], "cost": [0.0] * len(rows),
                           "candidates": [["a", "b"]] * len(rows), "shadow_of": [None] * len(rows)},
                          schema_overrides={"shadow_of": pl.String})
    out = evaluate_on_logs(art, None, recent, n_bootstrap=20)
    assert out["n"] == 3 and out["sticky_rows_dropped"] == 2
    kept = evaluate_on_logs(art, None, recent.filter(~pl.col("sticky").fill_null(False)), n_bootstrap=20)
    assert out["candidate"] == kept["candidate"] and kept["sticky_rows_dropped"] == 0
