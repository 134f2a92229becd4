"""`zeta bench` in its short mode: every case runs and reports its fields (no time is asserted)."""

from __future__ import annotations

from flows.bench import format_table, run_bench


def test_bench_short_mode_reports_every_field(tmp_path):
    r = run_bench(trees=(20,), candidates=(2, 4), query_bytes=(100, 1000), calls=30, registry=tmp_path)
    assert len(r["cases"]) == 4
    for case in r["cases"]:
        for key in ("decide_numpy", "decide_python", "catboost_predict"):
            assert case[key]["p50_us"] > 0 and case[key]["p99_us"] >= case[key]["p50_us"] and case[key]["n"] == 30
        assert case["speedup_p50"] > 0 and case["throughput_per_s"] > 0
    table = format_table(r)
    assert table.count("\n") == 4 + 2 and "speedup" in table
