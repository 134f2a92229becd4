"""The ``python -m flows....`` scripts the README names follow zeta's rule for expected errors: one line
``<prog>: error: ...`` on stderr and exit 2, never a traceback (flows.cli.run_script)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import run_script
from router_runtime.errors import ContractError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["flows.evaluate.cold_start", "flows.evaluate.length"])
def test_a_missing_source_is_one_line_and_exit_2(module, tmp_path):
    missing = tmp_path / "no-such-data"
    out = subprocess.run([sys.executable, "-m", module, "--source", str(missing), "--format", "dcrouter"],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.strip() == f"python -m {module}: error: no such file: {missing}"


def test_run_script_passes_the_exit_code_through():
    assert run_script(lambda: None, "p") == 0
    assert run_script(lambda: 3, "p") == 3


def test_run_script_prints_a_contract_error_as_one_line(capsys):
    def bad():
        raise ContractError("format", "unknown format 'x'")
    assert run_script(bad, "python -m flows.train") == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m flows.train: error: ") and "unknown format 'x'" in err
    assert err.count("\n") == 1


def test_run_script_keeps_the_traceback_of_a_defect():
    def defect():
        raise KeyError("a bug, not an input error")
    with pytest.raises(KeyError):
        run_script(defect, "p")
