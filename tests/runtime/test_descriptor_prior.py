"""The descriptor prior in the runtime: an optional artifact key that scores the pool models the
quality model has no outcomes for, bit-identical on every engine, named in the reason, and skipped
(not fatal) when a newer trainer wrote inputs this runtime does not know."""

from __future__ import annotations

import copy
import json
import math

import pytest

from artifact_docs import make_doc
from router_runtime import ModelInfo, Router, available_engines
from router_runtime.artifact import parse_router
from router_runtime.candidates import candidate_value, declared_descriptors, prior_input_names, quant_bits
from router_runtime.errors import ContractError
from router_runtime.pool import parse_model

ENGINES = [e for e, why in available_engines().items() if why is None]


def prior_doc(prior_inputs=None) -> dict:
    """make_doc's artifact (models a, b known) plus a prior: +0.3 above 10 B parameters, -0.3 below,
    and +0.05 more for a benchmark score above 0.5 (a query feature in the first tree too)."""
    doc = dict(make_doc(), version="v-prior")
    spec_first = doc["quality_model"]["inputs"][0]
    inputs = prior_inputs or [spec_first, "model_size_b", "model_benchmark_score", "model_family__llama"]
    doc["descriptor_prior"] = {
        "kind": "oblivious_trees", "target": "quality", "inputs": inputs,
        "tree_depth": [2, 1], "split_input": [1, 0, 2], "split_border": [10.0, 5.0, 0.5],
        "leaf_values": [-0.3, 0.3, -0.3, 0.3, 0.0, 0.05], "scale": 1.0, "bias": 0.0}
    return doc


def serving_pool(art) -> list[ModelInfo]:
    cold = [parse_model({"name": "tiny", "size_b": 0.1, "family": "llama", "cost": {"intercept": 0.0, "per_char": 1e-6}}),
            parse_model({"name": "big", "size_b": 70.0, "benchmark_score": 0.6, "quantization": "Q4_K_M",
                         "cost": {"intercept": 0.0, "per_char": 1e-6}})]
    return [*art.pool, *cold]


def test_a_small_and_a_large_new_model_get_size_ordered_quality_on_every_engine():
    art = parse_router(json.loads(json.dumps(prior_doc())), path=None)
    assert art.prior is not None and art.prior_problem is None
    results = {}
    for engine in ENGINES:
        r = Router(art, pool=serving_pool(art), engine=engine)
        d = r.decide("What is the capital of France?", candidates=["tiny", "big"], cost_weight=0.0)
        results[engine] = (d.model, tuple((s.model, s.quality, s.utility) for s in d.scores), d.reason)
    assert len(set(results.values())) == 1, results  # bit-identical decisions and reasons
    model, scores, reason = results[ENGINES[0]]
    q = {m: qual for m, qual, _ in scores}
    # Both get the quality model's identity-hidden score (0.2 here) plus their prior offset.
    assert q["big"] == pytest.approx(0.2 + 0.3 + 0.05) and q["tiny"] == pytest.approx(0.0)  # 0.2 - 0.3, clipped
    assert model == "big"


def test_the_reason_says_quality_came_from_descriptors_and_which():
    art = parse_router(json.loads(json.dumps(prior_doc())), path=None)
    r = Router(art, pool=serving_pool(art), engine="python")
    d = r.decide("What is the capital of France?", candidates=["tiny", "big"], cost_weight=0.0)
    assert d.reason.startswith("highest predicted quality, big's from its descriptors (size_b 70, benchmark_score 0.6)")
    assert "descriptor prior" in d.reason and "tiny (size_b 0.1, family llama)" in d.reason
    # quantization is declared but the prior does not read it: not named as a source.
    assert "quantization" not in d.reason
    # A known model chosen beside a cold one: the head is the plain rule, the cold one is still named.
    d2 = r.decide("What is the capital of France?", candidates=["b", "tiny"], cost_weight=0.0)
    assert d2.model == "b" and d2.reason.startswith("highest predicted quality - 0 x relative cost")
    assert "scored from descriptors" in d2.reason and "tiny (size_b 0.1, family llama)" in d2.reason


def test_known_models_are_not_touched_by_the_prior():
    with_prior = parse_router(json.loads(json.dumps(prior_doc())), path=None)
    without = parse_router(json.loads(json.dumps(dict(make_doc(), version="v-old"))), path=None)
    for art in (with_prior, without):
        r = Router(art, engine="python")
        d = r.decide("hello", cost_weight=0.0)
        assert {s.model: s.quality for s in d.scores} == {"a": 0.8, "b": 0.2}


def test_without_a_prior_new_models_tie_and_the_reason_says_how_they_were_scored():
    art = parse_router(json.loads(json.dumps(dict(make_doc(), version="v-old"))), path=None)
    r = Router(art, pool=serving_pool(art), engine="python")
    d = r.decide("hello", candidates=["tiny", "big"], cost_weight=0.1)
    assert d.scores[0].quality == d.scores[1].quality
    assert "came down to cost" in d.reason and "identity hidden" in d.reason


def test_a_prior_with_inputs_this_runtime_does_not_know_is_skipped_not_fatal():
    doc = prior_doc()
    doc["descriptor_prior"]["inputs"][3] = "model_release_year"
    art = parse_router(json.loads(json.dumps(doc)), path=None)
    assert art.prior is None and "model_release_year" in art.prior_problem
    d = Router(art, pool=serving_pool(art), engine="python").decide("hello", candidates=["tiny", "big"])
    assert d.model in {"tiny", "big"} and d.artifact_version == art.version


def test_a_malformed_prior_is_refused():
    doc = prior_doc()
    doc["descriptor_prior"]["target"] = "log1p_completion_tokens"
    with pytest.raises(ContractError, match="descriptor_prior.target"):
        parse_router(doc)
    doc = prior_doc()
    doc["descriptor_prior"]["leaf_values"] = [0.0]
    with pytest.raises(ContractError, match="descriptor_prior"):
        parse_router(doc)


def test_descriptor_inputs_and_pool_checks():
    m = parse_model({"name": "x", "size_b": 3, "family": "qwen", "benchmark_score": 0.25, "quantization": "Q8_0",
                     "context_length": 4096})
    names = prior_input_names([m])
    assert "model_family__qwen" in names and not any(n.startswith("model__") for n in names)
    assert [candidate_value(n, m) for n in ("model_family__qwen", "model_benchmark_score", "model_quant_bits")] \
        == [1.0, 0.25, 8.0]
    assert declared_descriptors(m) == ["size_b 3", "family qwen", "benchmark_score 0.25", "quantization Q8_0",
                                       "context_length 4096"]
    assert (quant_bits("Q4_K_M"), quant_bits("bf16"), quant_bits("F32"), quant_bits("IQ2_XS")) == (4.0, 16.0, 32.0, 2.0)
    assert math.isnan(quant_bits("awq")) and math.isnan(quant_bits(None))
    with pytest.raises(ContractError, match="benchmark_score"):
        parse_model({"name": "x", "benchmark_score": 1.5})
    with pytest.raises(ContractError, match="family"):
        parse_model({"name": "x", "family": 3})


def test_name_words():
    from router_runtime.candidates import name_tokens
    assert name_tokens("Llama-3.1-Nemotron-51B-Instruct") == {"llama", "nemotron", "instruct"}
    assert name_tokens("llama3-chatqa-1.5-8b") == {"llama", "chatqa"}
    assert name_tokens("gemma-2-9b-it") == {"gemma", "instruct"}  # Google's "-it" is instruct
    assert name_tokens("m1") == set() and name_tokens("") == set() and name_tokens("qwen\u00e9-7b") == {"qwen"}
    m = parse_model({"name": "acme-chatqa-8b"})
    assert "model_name_token__chatqa" in prior_input_names([m])
    assert candidate_value("model_name_token__chatqa", m) == 1.0
    assert candidate_value("model_name_token__coder", m) == 0.0


def test_with_pool_keeps_the_prior():
    art = parse_router(json.loads(json.dumps(prior_doc())), path=None)
    base = Router(art, pool=serving_pool(art), engine="python")
    sib = base.with_pool(copy.deepcopy(serving_pool(art)))
    a = base.decide("hello", candidates=["tiny", "big"], cost_weight=0.0)
    b = sib.decide("hello", candidates=["tiny", "big"], cost_weight=0.0)
    assert [s.quality for s in a.scores] == [s.quality for s in b.scores]
