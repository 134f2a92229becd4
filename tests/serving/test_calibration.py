"""zeta calibrate's rounds: repeated until the last two agree, the spread reported, a wide one warned."""

from __future__ import annotations

import pytest

from router_runtime.errors import ContractError
from router_runtime.serving.calibration import SPREAD_WARNING, measure_until_stable


def _rounds(*values):
    it = iter(values)
    calls = []

    def measure():
        v = next(it)
        calls.append(v)
        return {"load_ms": 100.0, "ms_per_token": v}

    return measure, calls


def test_rounds_stop_when_the_last_two_agree_within_the_tolerance():
    measure, calls = _rounds(10.0, 14.0, 13.0, 99.0)
    cal = measure_until_stable(measure, max_rounds=5, tolerance=0.10)
    assert calls == [10.0, 14.0, 13.0]  # 14 -> 13 is within 10 % of 14: stop, 99 never measured
    assert cal.stable is True and len(cal.rounds) == 3
    assert cal.values == {"load_ms": 100.0, "ms_per_token": 13.0}  # median of the rounds' medians
    assert cal.spread["ms_per_token"] == pytest.approx(1.4) and cal.spread["load_ms"] == 1.0
    assert cal.warning is None


def test_at_most_max_rounds_and_a_spread_above_3x_is_a_warning():
    measure, calls = _rounds(10.0, 40.0, 20.0, 80.0, 5.0)
    cal = measure_until_stable(measure, max_rounds=4, tolerance=0.10)
    assert len(calls) == 4 and cal.stable is False
    assert cal.spread["ms_per_token"] == pytest.approx(8.0) and SPREAD_WARNING < 8.0
    assert cal.values["ms_per_token"] == pytest.approx(30.0)
    assert "more than 3x" in cal.warning and "ms_per_token 8.0x" in cal.warning
    assert "not stable after 4 rounds" in cal.warning


def test_one_round_is_neither_stable_nor_unstable():
    measure, calls = _rounds(10.0)
    cal = measure_until_stable(measure, max_rounds=1)
    assert calls == [10.0] and cal.stable is None and cal.warning is None


@pytest.mark.parametrize("kw", [{"max_rounds": 0}, {"max_rounds": 1.5}, {"tolerance": 0.0}, {"tolerance": 1.0},
                                {"tolerance": True}])
def test_bad_round_settings_are_refused(kw):
    with pytest.raises(ContractError):
        measure_until_stable(lambda: {"x": 1.0}, **kw)
