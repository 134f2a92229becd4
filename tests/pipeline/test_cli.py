"""The `zeta` command: import-benchmark, route, and the main job run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE
from flows.cli import main
from flows.tables import read_table, validate_benchmark_table


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_import_benchmark_writes_every_format(tmp_path, capsys, ext):
    out = tmp_path / f"rp.{ext}"
    assert main(["import-benchmark", str(SAMPLE / "routeprofile"), "--format", "routeprofile", "--out", str(out)]) == 0
    table = validate_benchmark_table(read_table(out))
    assert len(table) == 600 * 8 and table["query_id"].n_unique() == 600
    printed = capsys.readouterr().out
    assert "4800 rows (600 queries x 8 models)" in printed and "cost model:" in printed


def test_import_benchmark_dcrouter_states_its_cost_estimate(tmp_path, capsys):
    out = tmp_path / "dc.parquet"
    assert main(["import-benchmark", str(SAMPLE / "dcrouter"), "--format", "dcrouter", "--out", str(out)]) == 0
    assert len(read_table(out)) == 1500 * 9
    assert "estimate" in capsys.readouterr().out.lower()


def test_route_json_and_text(trained_registry, capsys):
    assert main(["route", "Write a haiku about routers", "--artifact", str(trained_registry), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] and d["artifact_version"] and len(d["scores"]) == 8 and d["propensity"] == 1.0
    assert main(["route", "What is 17 * 23?", "--artifact", str(trained_registry), "--cost-weight", "5"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("model:") and "reason:" in text and "utility" in text


def test_route_without_artifact_uses_rules(tmp_path, capsys):
    rc = main(["route", "hello", "--artifact", str(tmp_path / "none"), "--pool", str(SAMPLE / "pool.toml"),
               "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["artifact_version"] is None and d["reason"].startswith("rule-based")


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    rc = main(["import-benchmark", str(tmp_path / "missing"), "--format", "routeprofile", "--out",
               str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("zeta: error:") and "missing" in err


@pytest.mark.slow
def test_main_job_end_to_end_as_a_subprocess(tmp_path):
    """The README's first command without the venv set-up: Prefect's embedded server, the sample data,
    an artifact in a registry, decisions and the held-out comparison printed."""
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect-home"))
    reg = tmp_path / "artifacts"
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--registry", str(reg)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "CURRENT" in out and "parity max |diff|" in out
    for label in ("code", "math", "trivia", "embedding"):
        assert f"\n{label}" in out
    assert "[embed] -> nomic-embed-text-v1.5" in out
    assert sum(line.startswith("[") and " -> " in line for line in out.splitlines()) == 5
    assert "held-out (" in out and "best single model (" in out and "oracle" in out
    # held-out decisions within one task: different models with their predicted qualities, or why there are none
    within = out.split("== within one task (held-out queries) ==\n")[1].splitlines()
    assert within[0].startswith("task ") and "different models" in within[0] or "routes by task" in within[0]
    assert (reg / "CURRENT").read_text().strip() in out


def test_simulate_logs_command(tmp_path, capsys, trained_registry):
    from flows.logs import read_outcome_logs

    out = tmp_path / "logs"
    assert main(["simulate-logs", str(SAMPLE / "dcrouter"), "--format", "dcrouter", "--out", str(out),
                 "--rows", "300", "--seed", "3"]) == 0
    assert "wrote 300 outcome records (uniform" in capsys.readouterr().out
    read = read_outcome_logs(out)
    assert len(read.records) == 300 and not read.quarantined
    assert {r.propensity for r in read.records} == {1 / 9}
    table = tmp_path / "rp.parquet"
    main(["import-benchmark", str(SAMPLE / "routeprofile"), "--format", "routeprofile", "--out", str(table)])
    assert main(["simulate-logs", str(table), "--policy", "artifact", "--artifact", str(trained_registry),
                 "--exploration-rate", "0.2", "--out", str(tmp_path / "alogs")]) == 0
    recs = read_outcome_logs(tmp_path / "alogs").records
    assert len(recs) == 600 and any(r.explored for r in recs) and all(0 < r.propensity <= 1 for r in recs)
    assert {r.artifact_version for r in recs} == {Path(trained_registry, "CURRENT").read_text().strip()}


def test_artifacts_commands(tmp_path, capsys, trained_registry):
    import shutil

    reg = tmp_path / "reg"
    shutil.copytree(trained_registry, reg)
    v1 = (reg / "CURRENT").read_text().strip()
    doc = json.loads((reg / "versions" / v1 / "router.json").read_text())
    doc["version"] = ""
    doc["policy"]["cost_weight"] = 0.33  # a different document, so a different version
    from router_runtime import write_artifact

    v2 = write_artifact(reg, doc, {}).name
    assert main(["artifacts", "promote", v2, "--registry", str(reg), "--reason", "try it"]) == 0
    assert main(["artifacts", "list", "--registry", str(reg)]) == 0
    assert f"* {v2}" in capsys.readouterr().out
    assert main(["artifacts", "rollback", "--registry", str(reg)]) == 0
    assert f"-> {v1} (rollback)" in capsys.readouterr().out
    assert main(["artifacts", "history", "--registry", str(reg)]) == 0
    hist = capsys.readouterr().out.splitlines()
    assert len(hist) == 2 and "try it" in hist[0] and "rollback" in hist[1]
    assert main(["artifacts", "show", "--registry", str(reg)]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == v1
