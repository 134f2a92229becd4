"""`zeta bench` in its short mode: every case runs and reports its fields (no time is asserted)."""

from __future__ import annotations

from flows.bench import format_table, run_bench
from router_runtime import default_feature_spec


def test_bench_short_mode_reports_every_field(tmp_path):
    r = run_bench(trees=(20,), candidates=(2, 4), query_bytes=(100, 1000), calls=30, registry=tmp_path)
    assert len(r["cases"]) == 4
    for case in r["cases"]:
        for key in ("decide_numpy", "decide_python", "catboost_predict"):
            assert case[key]["p50_us"] > 0 and case[key]["p99_us"] >= case[key]["p50_us"] and case[key]["n"] == 30
        assert case["speedup_p50"] > 0 and case["throughput_per_s"] > 0
    table = format_table(r)
    assert table.count("\n") == 4 + 2 and "speedup" in table


def test_bench_with_a_static_embedding_times_a_spec_that_has_it(tmp_path):
    r = run_bench(trees=(20,), candidates=(2,), query_bytes=(1000,), calls=30, registry=tmp_path,
                  static_dims=8, static_vocab=3000)
    assert r["static_embedding"] == {"dims": 8, "vocab": 3000}
    (case,) = r["cases"]
    assert case["static_dims"] == 8 and case["decide_python"]["n"] == 30
    assert "static_embedding feature of 8 dims over 3,000 tokens" in format_table(r)


def test_timing_spec_has_the_asked_vocab_size():
    from flows.bench import queries_of, timing_spec

    spec = timing_spec(queries_of(1000), static_dims=4, static_vocab=5000)
    (f,) = [f for f in spec.features if f.op == "static_embedding"]
    assert len(f.params["vocab"]) == 5000 and f.params["dims"] == 4
    assert timing_spec(queries_of(1000)) == default_feature_spec()
