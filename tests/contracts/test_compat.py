"""Compatibility: an artifact written in each supported format version, committed as it was written,
still loads and decides the same.  A new format version adds a fixture and a test here; old loaders
are kept (skops' rule)."""

from __future__ import annotations

import pytest

from conftest import ROOT
from router_runtime import Router, load_artifact
from router_runtime.artifact import SUPPORTED_FORMAT_VERSIONS

FIXTURES = ROOT / "tests" / "fixtures"


def test_every_supported_format_has_a_fixture():
    assert {int(p.name.rsplit("_", 1)[1]) for p in FIXTURES.glob("artifact_format_*")} == set(SUPPORTED_FORMAT_VERSIONS)


@pytest.mark.parametrize("use_numpy", [False, True])
def test_format_1_fixture_loads_and_decides_as_it_did(use_numpy):
    art = load_artifact(FIXTURES / "artifact_format_1")
    assert art.version == "fixture-format-1" and art.ensemble.n_trees == 2
    r = Router(art, use_numpy=use_numpy)
    code = r.decide("def f(x): import os")
    assert code.model == "big"
    assert code.score("big").quality == pytest.approx(1.0, abs=1e-12)
    assert code.score("small").quality == pytest.approx(0.7, abs=1e-12)
    trivia = r.decide("What is the capital of France?")
    assert trivia.model == "small"
    assert trivia.score("small").quality == pytest.approx(0.6, abs=1e-12)
    assert trivia.score("big").quality == pytest.approx(0.2, abs=1e-12)
    assert trivia.score("big").utility == pytest.approx(0.2 - 0.1 * 30 * 1e-5 / 0.001, abs=1e-12)
