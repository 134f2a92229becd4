"""Decision latency: the runtime (compiled, numpy and pure-Python engines) against what a user would
otherwise write (the same features, then CatBoost's own ``predict`` on the same model), in the same run.

Timing is only *measured* here (``python3 run.py bench`` prints the comparison table, with each
row's ratio to the fastest in parentheses); nothing asserts a time, so the suite cannot flake.  In the
normal test run ``--benchmark-disable`` runs each case once, as a smoke test of the code path.

Default case (the speed issue's): the artifact the main job trains (300 trees), 4 candidates, ~1 KB
queries: 64 distinct ones cut from the real sample queries, taken in turn (``flows.bench.queries_of``),
so that no cache sees the same text twice in a row.

Static-embedding case (issue 12): the same, with a ``static_embedding`` feature of 32 dims over a
17,816-token vocabulary (the size measured on DCRouter's train queries) added to the default spec;
the table is seeded random int8 over the sample's tokens (timing does not depend on its values).
"""

from __future__ import annotations

import pytest

from flows.bench import Trained, catboost_decider, engines, queries_of
from flows.export import cost_scale, export_artifact
from flows.training import TrainParams, build_pool, train_quality_model
from router_runtime import Router, default_feature_spec, load_artifact

from static_table import sample_vocab, static_params, with_static

QUERIES_1KB = queries_of(1000)
STATIC_VOCAB, STATIC_DIMS = 17_816, 32
CANDIDATES = ["qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "mistral-small-24b-instruct-2501-bf16",
              "llama-3.3-70b-instruct"]


def _train(tmp_path_factory, sample_table, demo_pool, spec):
    pool = build_pool(sample_table, demo_pool)
    model = train_quality_model(sample_table, spec, pool, TrainParams())
    scale = cost_scale(pool, sample_table["model"].unique().to_list(), sample_table["query"].str.len_chars().to_numpy())
    reg = tmp_path_factory.mktemp("bench-registry")
    path = export_artifact(reg, model, pool, cost_weight=0.1, scale=scale, manifest={})
    return load_artifact(path), model


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample_table, demo_pool):
    return _train(tmp_path_factory, sample_table, demo_pool, default_feature_spec())


@pytest.fixture(scope="module")
def trained_static(tmp_path_factory, sample_table, demo_pool):
    spec = with_static(default_feature_spec(), static_params(sample_vocab(STATIC_VOCAB), dims=STATIC_DIMS, seed=0))
    art, model = _train(tmp_path_factory, sample_table, demo_pool, spec)
    assert sum(f.op == "static_embedding" for f in art.feature_spec.features) == 1
    return art, model


def test_queries_are_distinct_and_about_1kb():
    assert len(set(QUERIES_1KB)) == len(QUERIES_1KB) == 64
    assert all(990 <= len(q.encode()) <= 1000 for q in QUERIES_1KB)


def _cycling(fn):
    """``fn`` over the distinct queries in turn: each call of the result is one timed call of ``fn``."""
    state = {"i": 0}

    def call():
        i = state["i"]
        state["i"] = i + 1
        return fn(QUERIES_1KB[i % len(QUERIES_1KB)])

    return call


def _report_percentiles(benchmark, label: str) -> None:
    """pytest-benchmark reports median and mean; the speed targets are p50/p99, so add them
    (extra_info in --benchmark-json, and a printed line with -s).  Nothing is asserted."""
    stats = getattr(benchmark, "stats", None)
    data = sorted(stats.stats.data) if stats is not None and getattr(stats.stats, "data", None) else []
    if data:
        pick = lambda q: data[min(len(data) - 1, int(q * len(data)))] * 1e6  # noqa: E731 (seconds -> µs)
        benchmark.extra_info.update(p50_us=pick(0.50), p99_us=pick(0.99))
        print(f"\n{label}: p50 {pick(0.50):.1f} µs, p99 {pick(0.99):.1f} µs over {len(data)} rounds")


# Each 1 KB case runs on both specs: the default one and the default one + static_embedding.  A spec's
# fixture, and the suffix of its pytest-benchmark groups (a group compares engines of one spec).
SPECS = {"default": ("trained", "", ""),
         "static_embedding": ("trained_static", "-static-embedding",
                              f" with static_embedding {STATIC_DIMS}x{STATIC_VOCAB:,}")}


def _spec(request, benchmark, spec: str, group: str):
    """The (artifact, trained model) of ``spec``; ``benchmark`` is put in that spec's ``group``."""
    fixture, suffix, label = SPECS[spec]
    benchmark.group = group + suffix
    return request.getfixturevalue(fixture), label


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("engine", engines())
def test_decide(benchmark, request, spec, engine):
    (art, _), label = _spec(request, benchmark, spec, "decide-4-candidates-1KB")
    router = Router(art, engine=engine)
    assert router.engine == engine  # the compiled engine takes every op of the spec (no fallback)
    d = benchmark(_cycling(lambda q: router.decide(q, candidates=CANDIDATES)))
    assert d.model in CANDIDATES
    _report_percentiles(benchmark, f"decide{label} ({engine})")


@pytest.mark.parametrize("spec", SPECS)
def test_catboost_predict_alternative(benchmark, request, spec):
    (art, model), label = _spec(request, benchmark, spec, "decide-4-candidates-1KB")
    decide_with_catboost = catboost_decider(Trained(art, model.catboost_model), CANDIDATES)
    chosen = benchmark(_cycling(decide_with_catboost))
    _report_percentiles(benchmark, f"CatBoost predict alternative{label}")
    assert chosen in CANDIDATES
    assert [decide_with_catboost(q) for q in QUERIES_1KB[:8]] == [
        Router(art, engine="python").decide(q, candidates=CANDIDATES).model for q in QUERIES_1KB[:8]]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("engine", [e for e in engines() if e != "numpy"])  # numpy scores trees, not features
def test_feature_extraction(benchmark, request, spec, engine):
    (art, _), label = _spec(request, benchmark, spec, "features-1KB")
    fspec = art.feature_spec
    if engine == "compiled":
        from router_runtime.compiled import CompiledSpec

        extract = CompiledSpec(fspec).extract
    else:
        extract = fspec.extract
    feats = benchmark(_cycling(extract))
    assert len(feats) == len(fspec.output_names)
    _report_percentiles(benchmark, f"features{label} ({engine})")


@pytest.mark.benchmark(group="decide-huge-queries")
@pytest.mark.parametrize("size", [65_536, 1 << 20, 8 << 20], ids=["64K", "1M", "8M"])
@pytest.mark.parametrize("engine", engines())
def test_decide_huge_query(benchmark, trained, engine, size):
    """The bound for huge inputs: features read the first ``max_chars`` code points only, so beyond that
    the cost is the linear check that the text is valid Unicode.  Context limits are lifted so that every
    candidate stays eligible and the query is really scored."""
    from dataclasses import replace

    art = trained[0]
    pool = [replace(m, context_length=10**9) for m in art.pool]
    router = Router(art, pool=pool, engine=engine)
    text = "\n".join(QUERIES_1KB)
    query = (text * (size // len(text) + 1))[:size]
    d = benchmark(router.decide, query, candidates=CANDIDATES)
    assert d.model in CANDIDATES and not d.excluded
    _report_percentiles(benchmark, f"decide ({engine}) {size:,} chars")
