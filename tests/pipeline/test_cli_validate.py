"""`zeta validate POOL [--artifact A]`: one line per finding or --json, exit 0 / 1 / 2."""

from __future__ import annotations

import json
import re

import pytest

from conftest import SAMPLE
from flows.cli import main


def test_the_sample_pool_with_its_artifact_is_fine(capsys, trained_registry):
    assert main(["validate", str(SAMPLE / "pool.toml"), "--artifact", str(trained_registry)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"0 error\(s\), \d+ warning\(s\)", lines[-1])
    assert all(line.split()[0] in ("ok", "warning", "error") for line in lines[:-1])
    assert any(line.startswith("warning nomic-embed-text-v1.5: unknown to the artifact") for line in lines)


def test_errors_exit_1_and_json_carries_every_finding(tmp_path, capsys, monkeypatch):
    p = tmp_path / "pool.toml"
    p.write_text('[[models]]\nname = "a"\ngguf = "a.gguf"\n')
    monkeypatch.setenv("ZETA_MEMORY_BUDGET_MB", "1000")
    assert main(["validate", str(p), "--json"]) == 1
    s = json.loads(capsys.readouterr().out)
    assert s["ok"] is False and s["errors"] == 1
    assert {"level": "error", "subject": "a.gguf", "message": f"no such file: {tmp_path / 'a.gguf'}"} in s["findings"]
    p.write_text('[[models]]\nname = "a"\ncontext_lenght = 4096\n')
    assert main(["validate", str(p)]) == 1
    out = capsys.readouterr().out
    assert "error   models[0].context_lenght: unknown key; did you mean 'context_length'?" in out


def test_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["validate"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["validate", "p.toml", "--memory-budget-mb", "lots"])
    assert e.value.code == 2
