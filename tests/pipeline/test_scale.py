"""Scale: the vectorized log generator writes valid records, the training sample is stratified and
recorded, and the measurement script runs in a short mode (no timing asserted)."""

from __future__ import annotations

import json

import polars as pl

from conftest import SAMPLE
from flows.importers import import_dcrouter
from flows.ingest import ingest_logs
from flows.synth import simulate_logs_at_scale
from router_runtime import parse_outcome_line



def test_generated_logs_at_scale_are_valid_records(tmp_path):
    table = import_dcrouter(SAMPLE / "dcrouter")
    paths = simulate_logs_at_scale(table, tmp_path, rows=5000, days=3, policy="mix", seed=1)
    assert len(paths) == 3
    recs = [parse_outcome_line(x) for p in paths for x in open(p, "rb")]
    assert len(recs) == 5000 and len({r.decision_id for r in recs}) == 5000
    models = sorted(table["model"].unique().to_list())
    assert {r.model for r in recs} == set(models) and all(r.candidates == tuple(models) for r in recs)
    props = {}
    for r in recs:
        props.setdefault(r.model, set()).add(r.propensity)
    assert all(len(v) == 1 for v in props.values()) and abs(sum(p.pop() for p in props.values()) - 1) < 1e-9
    assert len({r.query for r in recs}) > 1000
    assert {r.ts[:10] for r in recs} == {"2026-01-01", "2026-01-02", "2026-01-03"}
    assert any(not r.success and r.quality is None for r in recs)
    for p in paths:  # in time order within each file
        ts = [json.loads(x)["ts"] for x in open(p, "rb")]
        assert ts == sorted(ts)


def test_stratified_sample_keeps_every_model_and_day_in_proportion():
    from flows.production import stratified_sample

    rows = [{"decision_id": f"id{i}", "model": f"m{i % 3}", "day": f"2026-01-0{1 + i % 4}"} for i in range(12_000)]
    rows += [{"decision_id": f"rare{i}", "model": "m9", "day": "2026-01-01"} for i in range(40)]
    lf = pl.DataFrame(rows).lazy()
    sample, info = stratified_sample(lf, 1_203, seed=3)
    got = sample.collect()
    assert info["strata"] == 13 and info["population_rows"] == 12_040 and "stratified" in info["method"]
    counts = {(m, d): n for m, d, n in got.group_by("model", "day").len().iter_rows()}
    full = {(m, d): n for m, d, n in pl.DataFrame(rows).group_by("model", "day").len().iter_rows()}
    assert counts == {k: round(n * 1_203 / 12_040) for k, n in full.items()}  # proportional allocation
    again, _ = stratified_sample(lf, 1_203, seed=3)
    assert sorted(again.collect()["decision_id"]) == sorted(got["decision_id"])  # seeded: reproducible
    other, _ = stratified_sample(lf, 1_203, seed=4)
    assert sorted(other.collect()["decision_id"]) != sorted(got["decision_id"])
    whole, info = stratified_sample(lf, 20_000, seed=3)
    assert whole.collect().height == 12_040 and info["method"].startswith("none")


def test_simulate_logs_command_at_scale(tmp_path, capsys):
    from flows.cli import main

    out = tmp_path / "logs"
    assert main(["simulate-logs", str(SAMPLE / "dcrouter"), "--format", "dcrouter", "--out", str(out),
                 "--rows", "2000", "--days", "2", "--policy", "mix"]) == 0
    assert "wrote 2000 outcome records (mix logging policy) to 2 daily files" in capsys.readouterr().out
    r = ingest_logs(out, tmp_path / "cur", settle_seconds=0)
    assert (r.ingested, r.quarantined) == (2000, 0) and r.fast_path_lines > 1900


def test_scale_script_short_mode_smoke(tmp_path, capsys):
    """The measurement script end to end on small data; nothing about time is asserted."""
    from flows.scale import main
    from router_runtime import load_artifact

    assert main(["--rows", "3000", "--days", "3", "--table", str(SAMPLE / "dcrouter"), "--format", "dcrouter",
                 "--iterations", "20", "--train-budget", "1000", "--eval-budget", "300", "--work", str(tmp_path),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["stage"] for s in out["stages"]] == ["ingest", "window+sample", "features+train+export",
                                                   "evaluate (off-policy)", "gate+promote"]
    assert out["rows"] == out["ingested"] == 3000 and out["promoted"]
    assert all(s["wall_s"] >= 0 and s["peak_rss_mib"] > 0 for s in out["stages"])
    sample = load_artifact(tmp_path / "registry").manifest["training"]["sample"]
    assert sample["method"].startswith("stratified") and sample["population_rows"] == 2400
    assert abs(sample["rows"] - 1000) <= sample["strata"] and out["train_rows"] == sample["rows"]
