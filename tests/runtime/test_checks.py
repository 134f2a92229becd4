"""The field checks written once (router_runtime._checks): bool is never a number, an integer beyond
float range is not finite, and every refusal is a ContractError naming the field."""

from __future__ import annotations

import json

import pytest

from artifact_docs import rewrite_router
from router_runtime import ArtifactError, ContractError, load_artifact
from router_runtime._checks import boolean, finite, integer, is_finite, is_integer, is_number, mapping, string


@pytest.mark.parametrize(("value", "number", "finite_", "integer_"), [
    (1, True, True, True), (1.5, True, True, False), (True, False, False, False),
    (float("nan"), True, False, False), (float("-inf"), True, False, False), (10 ** 400, True, False, True),
    ("1", False, False, False), (None, False, False, False),
])
def test_the_predicates(value, number, finite_, integer_):
    assert (is_number(value), is_finite(value), is_integer(value)) == (number, finite_, integer_)


@pytest.mark.parametrize(("check", "value", "words"), [
    (lambda v: finite(v, "policy.cost_weight"), True, "must be a finite number, got True"),
    (lambda v: finite(v, "policy.cost_weight", low=0.0), -1.0, "must be >= 0.0"),
    (lambda v: integer(v, "max_hops", low=0), -1, "must be an integer >= 0"),
    (lambda v: boolean(v, "explored"), 1, "must be true or false"),
    (lambda v: string(v, "model"), "", "must be a non-empty string"),
    (lambda v: mapping(v, "policy"), [], "must be an object, got list"),
])
def test_refusals_name_the_field(check, value, words):
    with pytest.raises(ContractError) as ei:
        check(value)
    assert words in str(ei.value) and ei.value.field in str(ei.value)


def test_an_integer_beyond_float_range_in_an_artifact_is_refused_naming_the_field(vdir):
    # Refused as the artifact is parsed (any integer beyond int64: tests/runtime/test_artifact_hostile.py),
    # before finite() sees it.
    doc = json.loads((vdir / "router.json").read_text())
    text = json.dumps(doc).replace('"cost_weight": 0.1', '"cost_weight": 1' + "0" * 400)
    assert text != json.dumps(doc)
    rewrite_router(vdir, text)
    with pytest.raises(ArtifactError, match="integer of 401 digits at policy.cost_weight is out of range"):
        load_artifact(vdir)
