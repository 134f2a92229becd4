"""Decision latency: the runtime (numpy and pure-Python paths) against what a user would otherwise
write (the same features, then CatBoost's own ``predict`` on the same model), in the same run.

Timing is only *measured* here (``python3 run.py bench`` prints the comparison table, with each
row's ratio to the fastest in parentheses); nothing asserts a time, so the suite cannot flake.  In the
normal test run ``--benchmark-disable`` runs each case once, as a smoke test of the code path.

Default case (the speed issue's): the artifact the main job trains (300 trees, depth 6), 4 candidates,
a ~1 KB query.
"""

from __future__ import annotations

import pytest

from flows.bench import Trained, catboost_decider
from flows.export import cost_scale, export_artifact
from flows.training import TrainParams, build_pool, train_quality_model
from router_runtime import Router, default_feature_spec, load_artifact

QUERY_1KB = (
    "You are given a list of integers and a target value. Write a Python function that returns the indices "
    "of the two numbers that add up to the target, assuming exactly one solution exists. Explain the time "
    "complexity of your approach, then compare it with the brute-force solution. For example, with nums = "
    "[2, 7, 11, 15] and target = 9 the answer is [0, 1] because nums[0] + nums[1] == 9. Consider edge cases "
    "such as negative numbers, duplicates and an empty list, and describe how your function behaves for each "
    "of them. Finally, write three unit tests using pytest that cover the normal case, the duplicate case and "
    "the case where the input is very large (one million elements), and say which data structure makes the "
    "lookup constant time on average and why a sorted two-pointer approach needs O(n log n) instead. Keep "
    "the answer under two hundred lines, use type hints, and avoid any third-party library beyond pytest."
)
CANDIDATES = ["qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "mistral-small-24b-instruct-2501-bf16",
              "llama-3.3-70b-instruct"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample_table, demo_pool):
    pool = build_pool(sample_table, demo_pool)
    model = train_quality_model(sample_table, default_feature_spec(), pool, TrainParams())
    scale = cost_scale(pool, sample_table["model"].unique().to_list(), sample_table["query"].str.len_chars().to_numpy())
    reg = tmp_path_factory.mktemp("bench-registry")
    path = export_artifact(reg, model, pool, cost_weight=0.1, scale=scale, manifest={})
    return load_artifact(path), model


def test_query_is_about_1kb():
    assert 900 <= len(QUERY_1KB.encode()) <= 1100


def _report_percentiles(benchmark, label: str) -> None:
    """pytest-benchmark reports median and mean; the speed targets are p50/p99, so add them
    (extra_info in --benchmark-json, and a printed line with -s).  Nothing is asserted."""
    stats = getattr(benchmark, "stats", None)
    data = sorted(stats.stats.data) if stats is not None and getattr(stats.stats, "data", None) else []
    if data:
        pick = lambda q: data[min(len(data) - 1, int(q * len(data)))] * 1e6  # noqa: E731 (seconds -> µs)
        benchmark.extra_info.update(p50_us=pick(0.50), p99_us=pick(0.99))
        print(f"\n{label}: p50 {pick(0.50):.1f} µs, p99 {pick(0.99):.1f} µs over {len(data)} rounds")


@pytest.mark.benchmark(group="decide-4-candidates-1KB")
@pytest.mark.parametrize("use_numpy", [True, False], ids=["numpy", "pure_python"])
def test_decide(benchmark, trained, use_numpy):
    router = Router(trained[0], use_numpy=use_numpy)
    d = benchmark(router.decide, QUERY_1KB, candidates=CANDIDATES)
    assert d.model in CANDIDATES
    _report_percentiles(benchmark, f"decide {'numpy' if use_numpy else 'pure Python'}")


@pytest.mark.benchmark(group="decide-4-candidates-1KB")
def test_catboost_predict_alternative(benchmark, trained):
    art, model = trained
    decide_with_catboost = catboost_decider(Trained(art, model.catboost_model), CANDIDATES)
    chosen = benchmark(decide_with_catboost, QUERY_1KB)
    _report_percentiles(benchmark, "CatBoost predict alternative")
    assert chosen == Router(art, use_numpy=False).decide(QUERY_1KB, candidates=CANDIDATES).model


@pytest.mark.benchmark(group="features-1KB")
def test_feature_extraction_pure_python(benchmark, trained):
    feats = benchmark(trained[0].feature_spec.extract, QUERY_1KB)
    assert len(feats) == len(trained[0].feature_spec.output_names)
