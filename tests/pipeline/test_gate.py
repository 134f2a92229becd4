"""The one promotion gate (flows.evaluate.gate) and the one bootstrap (flows.evaluate.bootstrap)."""

from __future__ import annotations

import numpy as np
import pytest

from flows.evaluate.bootstrap import bootstrap_sums, percentile_interval
from flows.evaluate.gate import FIRST_CANDIDATE, Evidence, gate


def test_no_champion_promotes_without_evidence():
    assert gate(None, None, margin=0.5) == (True, FIRST_CANDIDATE)


def test_a_champion_needs_evidence():
    with pytest.raises(ValueError, match="needs evidence"):
        gate("v1", None, margin=0.0)


@pytest.mark.parametrize("lo, margin, promoted", [(0.011, 0.01, True), (0.01, 0.01, False), (-0.2, 0.0, False)])
def test_the_lower_bound_must_exceed_the_margin(lo, margin, promoted):
    ev = Evidence(0.05, lo, 0.1, measure="utility", where=" on 10 held-out queries")
    ok, why = gate("v1", ev, margin=margin)
    assert ok is promoted
    assert why.startswith("better than champion v1 on 10 held-out queries: utility +0.0500"
                          if promoted else "not better than champion v1 with confidence: utility +0.0500")


def test_too_little_effective_sample_keeps_the_champion_whatever_the_interval():
    ev = Evidence(0.5, 0.4, 0.6, measure="DR improvement", ess=12.0)
    assert gate("v1", ev, margin=0.0, min_ess=30) == (
        False, "too little evidence: ESS 12.0 < 30 logged rows matching the candidate")
    assert gate("v1", ev, margin=0.0, min_ess=10)[0] is True
    assert gate("v1", ev, margin=0.0)[0] is True  # full-information evidence has no ESS floor


def test_bootstrap_chunks_do_not_change_the_replicates(monkeypatch):
    import flows.evaluate.bootstrap as bootstrap

    values = np.random.default_rng(3).normal(size=(50, 2))
    whole = bootstrap_sums(values, 40, seed=7)
    monkeypatch.setattr(bootstrap, "_BOOT_CHUNK", 50 * 3)  # 3 replicates per chunk
    assert np.allclose(bootstrap_sums(values, 40, seed=7), whole, rtol=0, atol=1e-12)
    # Each replicate is a resample of the rows: the same as drawing n indices one replicate at a time.
    rng = np.random.default_rng(7)
    by_hand = np.stack([values[rng.integers(0, 50, 50)].sum(axis=0) for _ in range(40)])
    assert np.allclose(whole, by_hand, rtol=0, atol=1e-12)


def test_percentile_interval_ignores_undefined_replicates():
    x = np.array([np.nan, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert percentile_interval(x, 0.5) == (2.0, 4.0)
    assert all(np.isnan(percentile_interval(np.array([np.nan]), 0.9)))
