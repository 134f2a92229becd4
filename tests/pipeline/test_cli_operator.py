"""The operator's paper cuts of the `zeta` command: --version, help on every flag with its default,
quiet exit on a closed pipe, registry listing with figures, promote's gate warning, gc."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from flows.cli import build_parser, main
from flows.registry_admin import collect_garbage, protected_versions, version_rows
from router_runtime import current_version, list_versions, load_artifact, write_artifact
from router_runtime.registry import annotate_manifest, promote, version_dir


def _subparsers(ap):
    (action,) = [a for a in ap._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("zeta 0.")


def test_every_flag_of_every_command_has_help_and_shows_its_default():
    for name, p in _subparsers(build_parser()).items():
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            assert a.help, f"zeta {name} {a.option_strings or a.dest} has no help text"
    text = " ".join(_subparsers(build_parser())["serve"].format_help().split())
    assert "(default: 8080)" in text and "(default: 300.0)" in text


def _versions(reg, n):
    """``n`` more versions of the fixture artifact in ``reg``, each with a different cost weight."""
    base = load_artifact(reg)
    doc = json.loads((version_dir(reg, base.version) / "router.json").read_text())
    out = []
    for i in range(n):
        doc.update(version="")
        doc["policy"]["cost_weight"] = 0.5 + i
        out.append(write_artifact(reg, doc, {"parent_version": base.version}).name)
    return out


def test_list_shows_the_gate_result_and_promote_warns_about_a_refused_version(vdir, reg, capsys):
    promote(reg, vdir.name, reason="first")
    (refused,) = _versions(reg, 1)
    annotate_manifest(version_dir(reg, refused), "promotion", {"promoted": False, "reason": "not better: DR -0.01"})
    annotate_manifest(version_dir(reg, refused), "evaluation",
                      {"difference": {"estimator": "dr", "diff": -0.0123, "ci_low": -0.03, "ci_high": 0.004, "n": 812}})
    assert main(["artifacts", "list", "--registry", str(reg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    cur = [ln for ln in lines if ln.startswith("*")]
    assert len(cur) == 1 and vdir.name in cur[0]
    (row,) = [ln for ln in lines if refused in ln]
    assert "refused" in row and "dr -0.0123 [-0.0300, +0.0040] n=812" in row
    rows = version_rows(reg)
    assert [r["gate"] for r in rows if r["version"] == refused] == ["refused"]
    assert main(["artifacts", "promote", refused, "--registry", str(reg)]) == 0
    err = capsys.readouterr().err
    assert "warning: the promotion gate refused" in err and "not better: DR -0.01" in err
    assert current_version(reg) == refused


def test_gc_keeps_the_newest_current_and_its_rollback_target(vdir, reg, capsys):
    promote(reg, vdir.name, reason="first")
    new = _versions(reg, 5)
    promote(reg, new[1], reason="second")  # CURRENT = new[1]; its rollback target is the first version
    assert protected_versions(reg) == {new[1], vdir.name}
    assert collect_garbage(reg, keep=2, dry_run=True) == [new[0], new[2]]
    assert len(list_versions(reg)) == 6  # a dry run removes nothing
    assert main(["artifacts", "gc", "--keep", "2", "--registry", str(reg)]) == 0
    assert "removed 2 version(s)" in capsys.readouterr().out
    assert sorted(list_versions(reg)) == sorted([vdir.name, new[1], new[3], new[4]])
    assert load_artifact(reg).version == new[1]  # CURRENT still loads
    with pytest.raises(Exception, match="keep"):
        collect_garbage(reg, keep=0)


def test_a_closed_pipe_ends_the_command_quietly(vdir, reg, tmp_path):
    promote(reg, vdir.name, reason="first")
    with open(reg / "HISTORY.jsonl", "a") as f:  # enough output to fill a pipe many times over
        for i in range(20000):
            f.write(json.dumps({"ts": "2026-12-01T00:00:00Z", "action": "promote", "version": vdir.name,
                                "previous": None, "reason": f"line {i}"}) + "\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "artifacts", "history", "--registry", str(reg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    proc.stdout.read(100)
    proc.stdout.close()  # as `| head` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_dead_prefect_api_url_is_one_clear_line_not_a_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_API_URL="http://127.0.0.1:9/api",
               PREFECT_HOME=str(tmp_path / "prefect"))
    (tmp_path / "logs").mkdir()
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "pipeline", "--logs", str(tmp_path / "logs"),
                           "--registry", str(tmp_path / "reg")], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert proc.returncode == 2
    assert "cannot reach the Prefect API at http://127.0.0.1:9/api" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 3


def test_serve_options_come_from_the_environment_and_the_command_line_wins(monkeypatch):
    monkeypatch.setenv("ZETA_PORT", "9123")
    monkeypatch.setenv("ZETA_MEMORY_BUDGET_MB", "2048")
    monkeypatch.setenv("ZETA_TOKEN", "s3cret")
    monkeypatch.setenv("ZETA_LOG_LEVEL", "debug")
    a = build_parser().parse_args(["serve", "pool.toml"])
    assert (a.port, a.memory_budget_mb, a.token, a.log_level) == (9123, 2048.0, "s3cret", "debug")
    assert build_parser().parse_args(["serve", "pool.toml", "--port", "7000"]).port == 7000
    text = " ".join(_subparsers(build_parser())["serve"].format_help().split())
    assert "[env ZETA_MEMORY_BUDGET_MB]" in text


@pytest.mark.parametrize("var,value", [("ZETA_PORT", "eighty"), ("ZETA_LOG_LEVEL", "loud")])
def test_a_bad_environment_value_is_a_usage_error_of_serve_only(monkeypatch, capsys, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as e:
        main(["serve", "pool.toml"])
    assert e.value.code == 2 and f"${var}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # other commands do not read it
        main(["--version"])
    assert e.value.code == 0
