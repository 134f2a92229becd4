"""flows.prior and flows.evaluate.cold_start: a descriptor prior chosen and trained (real CatBoost for
the tree candidates) on tiny tables where one descriptor explains quality, exported, and scored by
the runtime on every engine; and no prior where no descriptor explains it."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from flows.evaluate.cold_start import leave_one_model_out, spearman
from flows.export import router_document
from flows.importers import benchmark_descriptors, family_of
from flows.prior import CANDIDATES, train_descriptor_prior
from flows.training import TrainParams, build_pool, train_quality_model
from router_runtime import ModelInfo, Router, available_engines, default_feature_spec
from router_runtime.artifact import parse_router

from conftest import SAMPLE

SIZES = {"m1": 1.0, "m2": 2.0, "m4": 4.0, "m8": 8.0, "m16": 16.0, "m32": 32.0}


@pytest.fixture(scope="module")
def sized_table(sample_table):
    """Real queries; each model answers correctly with probability 0.15 + 0.13 x log2(size)."""
    queries = sample_table.unique("query_id", keep="first", maintain_order=True).head(60)
    rng = np.random.default_rng(7)
    rows = []
    for qid, q in queries.select("query_id", "query").iter_rows():
        for m, size in SIZES.items():
            p = 0.15 + 0.13 * math.log2(size)
            rows.append({"query_id": qid, "query": q, "model": m, "quality": float(rng.random() < p),
                         "cost": 0.001 * size})
    return pl.DataFrame(rows)


def _table(sample_table, p_of: dict[str, float], seed: int) -> pl.DataFrame:
    queries = sample_table.unique("query_id", keep="first", maintain_order=True).head(60)
    rng = np.random.default_rng(seed)
    return pl.DataFrame([{"query_id": qid, "query": q, "model": m, "quality": float(rng.random() < p), "cost": 0.001}
                         for qid, q in queries.select("query_id", "query").iter_rows() for m, p in p_of.items()])


def _decide_on_every_engine(art, cold, queries):
    seen = {}
    for engine in (e for e, why in available_engines().items() if why is None):
        r = Router(art, pool=[*art.pool, *cold], engine=engine)
        seen[engine] = [tuple((s.model, s.quality) for s in r.decide(q, candidates=[m.name for m in cold]).scores)
                        for q in queries]
    assert len({json.dumps(v) for v in seen.values()}) == 1, seen  # bit-identical across engines
    return seen["python"]


@pytest.fixture(scope="module")
def sized_pool(sized_table):
    return build_pool(sized_table, [ModelInfo(m, size_b=s, extra={"family": "toy"}) for m, s in SIZES.items()])


def test_a_small_and_a_large_new_model_get_size_ordered_quality_on_every_engine(sized_table, sized_pool):
    model = train_quality_model(sized_table, default_feature_spec(), sized_pool,
                                TrainParams(iterations=60, depth=4, thread_count=1))
    assert model.prior is not None and model.prior.ensemble is not None, model.prior
    assert model.prior.parity_max_abs_diff <= 1e-9
    assert not any(n.startswith("model__") for n in model.prior.ensemble["inputs"])
    doc = dict(router_document(model, sized_pool, cost_weight=0.0, scale=1.0), version="v-sized")
    art = parse_router(json.loads(json.dumps(doc)))
    assert art.prior is not None
    assert model.prior.chosen in CANDIDATES and model.prior.chosen in model.prior.note
    cold = [ModelInfo("tiny", size_b=0.1), ModelInfo("huge", size_b=70.0)]
    queries = sized_table["query"].unique(maintain_order=True).head(5).to_list()
    for scores in _decide_on_every_engine(art, cold, queries):
        q = dict(scores)
        assert q["huge"] > q["tiny"]


def test_the_selection_picks_the_descriptor_that_explains_quality(sample_table):
    """Quality rises with the benchmark score; size runs against it: the benchmark-score line wins the
    leave-one-model-out selection, and the exported prior reads that descriptor only."""
    bench = {"a": 0.20, "b": 0.30, "c": 0.40, "d": 0.50, "e": 0.60, "f": 0.70}
    sizes = {"a": 70.0, "b": 30.0, "c": 14.0, "d": 8.0, "e": 3.0, "f": 1.0}
    table = _table(sample_table, {m: 0.1 + b for m, b in bench.items()}, seed=3)
    pool = build_pool(table, [ModelInfo(m, size_b=sizes[m], extra={"benchmark_score": bench[m]}) for m in bench])
    model = train_quality_model(table, default_feature_spec(), pool, TrainParams(iterations=60, depth=4, thread_count=1))
    prior = model.prior
    assert prior.chosen == "line:model_benchmark_score", prior.note
    assert set(prior.selection) == set(CANDIDATES)
    assert prior.selection["line:model_benchmark_score"] == max(prior.selection.values()) > 0.5
    assert prior.selection["line:model_size_b"] <= 0.0  # monotone in size: cannot follow quality down
    assert prior.ensemble["inputs"] == ["model_benchmark_score"] and prior.parity_max_abs_diff <= 1e-9
    doc = dict(router_document(model, pool, cost_weight=0.0, scale=1.0), version="v-bench")
    art = parse_router(json.loads(json.dumps(doc)))
    cold = [ModelInfo("weak", size_b=100.0, extra={"benchmark_score": 0.25}),
            ModelInfo("strong", size_b=1.0, extra={"benchmark_score": 0.65})]
    for scores in _decide_on_every_engine(art, cold, table["query"].unique(maintain_order=True).head(5).to_list()):
        q = dict(scores)
        assert q["strong"] > q["weak"]


def test_no_prior_when_no_candidate_ranks_left_out_models_better_than_a_constant(sample_table):
    """Quality falls with size, the only descriptor: a prior non-decreasing in size cannot rank the
    models, so there is none (the models without outcomes are the average model) and the note says why."""
    sizes = {"a": 1.0, "b": 3.0, "c": 8.0, "d": 14.0, "e": 30.0, "f": 70.0}
    table = _table(sample_table, {m: 0.85 - 0.12 * i for i, m in enumerate(sizes)}, seed=5)
    pool = build_pool(table, [ModelInfo(m, size_b=s) for m, s in sizes.items()])
    prior = train_descriptor_prior(table, pool)
    assert prior.ensemble is None and prior.chosen is None, prior.note
    assert max(prior.selection.values()) <= 0.0 and "better than a constant" in prior.note


def test_a_shared_name_word_carries_a_trained_models_quality_to_a_newcomer(sample_table):
    """Size says nothing here (the two ChatQA fine-tunes are the worst, one of them the largest); the
    word "chatqa" in their names does: the ridge candidate wins the selection, the exported prior
    reads the name words, and a new ChatQA model scores below a new instruct model of the same size
    on every engine (the DCRouter pattern, where size alone ranks the models backwards)."""
    p = {"acme-chatqa-8b": 0.15, "acme-chatqa-70b": 0.20, "nova-7b-instruct": 0.55, "zen-9b-instruct": 0.60,
         "orca-8b-instruct": 0.50, "mega-49b-instruct": 0.70}
    sizes = {"acme-chatqa-8b": 8.0, "acme-chatqa-70b": 70.0, "nova-7b-instruct": 7.0, "zen-9b-instruct": 9.0,
             "orca-8b-instruct": 8.0, "mega-49b-instruct": 49.0}
    table = _table(sample_table, p, seed=11)
    pool = build_pool(table, [ModelInfo(m, size_b=sizes[m]) for m in p])
    model = train_quality_model(table, default_feature_spec(), pool, TrainParams(iterations=60, depth=4, thread_count=1))
    prior = model.prior
    assert prior.chosen == "ridge", prior.note
    assert prior.selection["ridge"] == max(prior.selection.values()) > 0.0, prior.selection
    assert "model_name_token__chatqa" in prior.ensemble["inputs"] and prior.parity_max_abs_diff <= 1e-9
    doc = dict(router_document(model, pool, cost_weight=0.0, scale=1.0), version="v-words")
    art = parse_router(json.loads(json.dumps(doc)))
    cold = [ModelInfo("acme-chatqa-2-13b", size_b=13.0), ModelInfo("zeno-13b-it", size_b=13.0)]
    for scores in _decide_on_every_engine(art, cold, table["query"].unique(maintain_order=True).head(5).to_list()):
        q = dict(scores)
        assert q["zeno-13b-it"] > q["acme-chatqa-2-13b"]
    d = Router(art, pool=[*art.pool, *cold]).decide("hello", candidates=["acme-chatqa-2-13b"])
    assert "(name words acme/chatqa)" in d.reason, d.reason


def test_no_prior_when_no_descriptor_tells_the_models_apart(sized_table):
    pool = build_pool(sized_table)  # nothing declared: every descriptor is NaN for every model
    prior = train_descriptor_prior(sized_table, pool)
    assert prior.ensemble is None and "no descriptor differs" in prior.note


def test_spearman_on_hand_computed_cases():
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3.0))  # average ranks for ties
    assert spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_leave_one_model_out_ranks_held_out_models_by_size(sized_table, sized_pool):
    desc = [ModelInfo(m, size_b=s, extra={"family": "toy"}) for m, s in SIZES.items()]
    out = leave_one_model_out(sized_table, desc, seed=0, test_fraction=0.5)
    assert out["models"] == len(SIZES) and set(out["predicted_mean"]) == set(SIZES)
    assert out["spearman_size"] > 0.5  # the table was made so
    assert out["spearman_prior"] > 0.5
    assert "spearman_benchmark_score" not in out  # no model declares one
    assert all(c["prior"] in CANDIDATES and set(c["selection"]) == set(CANDIDATES) for c in out["chosen"].values())


def test_the_importers_describe_their_models():
    rp = {m.name: m for m in benchmark_descriptors(SAMPLE / "routeprofile", "routeprofile")}
    assert rp["llama-3.3-70b-instruct"].size_b == pytest.approx(70.554)
    assert rp["llama-3.3-70b-instruct"].extra == {"family": "llama", "benchmark_score": 0.4485}
    dc = {m.name: m for m in benchmark_descriptors(SAMPLE / "dcrouter", "dcrouter")}
    assert dc["qwen2.5-7b-instruct"].size_b == 7.0 and "benchmark_score" not in dc["qwen2.5-7b-instruct"].extra
    assert "family" not in dc["qwen2.5-7b-instruct"].extra  # default_llm.json states none
    assert (family_of("Qwen2ForCausalLM"), family_of("MixtralForCausalLM"), family_of("7")) == ("qwen", "mixtral", None)
