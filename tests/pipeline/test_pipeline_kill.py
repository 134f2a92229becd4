"""``kill -9`` of ``zeta pipeline`` (issue 15): the temporary Prefect server it started dies with it
(Prefect stops it only from an atexit hook, which SIGKILL never runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux's")
def test_sigkill_of_zeta_pipeline_takes_its_prefect_server_along(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "pipeline", "--logs", str(logs), "--registry",
                             str(tmp_path / "reg"), "--settle-seconds", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        deadline = time.monotonic() + 120
        while server is None and time.monotonic() < deadline and proc.poll() is None:
            server = next((c for c in _children(proc.pid) if "uvicorn" in _cmdline(c)), None)
            time.sleep(0.1)
        assert server is not None, "zeta pipeline never started its temporary Prefect server"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while _running(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(server), f"the temporary Prefect server (pid {server}) outlived zeta pipeline"
    finally:
        if proc.poll() is None:
            proc.kill()
        if server is not None and _running(server):
            os.kill(server, signal.SIGKILL)
