"""The nightly pipeline on a real Prefect server and a real process worker, as an operator runs it:
``prefect server start``, ``prefect work-pool create``, ``zeta deploy --register-only --work-pool``
(from the project root, with relative paths), ``prefect worker start`` (in another directory),
``prefect deployment run``; the run completes, named for its outcome, and its artifacts are on the
server.  (Before Flow.from_source, the relative entrypoint made such a run crash with
FileNotFoundError: the worker starts each run in a temporary directory.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from conftest import ROOT, SAMPLE

pytestmark = pytest.mark.slow

PREFECT = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
POOL = "zeta-test-workers"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT to the process group (a worker ignores a first SIGTERM while it drains), then kill."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait_until(ready, timeout_s: float, what: str, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = ready()
        if got:
            return got
        time.sleep(1)
    pytest.fail(f"{what} within {timeout_s:.0f} s; log:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """``prefect server start`` on a free loopback port with its own PREFECT_HOME; the environment
    that points clients at it."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "INFO"}
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def healthy():
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait_until(healthy, 120, "the Prefect server did not answer /api/health", log)
        yield env
    finally:
        _stop(proc)


def _run(args, env, cwd, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_zeta_deploy_on_a_work_pool_runs_to_completion_on_a_worker(prefect_server, tmp_path):
    from flows.importers import import_dcrouter
    from flows.logs import simulate_logs
    from router_runtime import current_version

    env = prefect_server
    ops = tmp_path / "ops"
    ops.mkdir()
    simulate_logs(import_dcrouter(SAMPLE / "dcrouter").filter(pl.col("split") == "train"), ops / "logs", seed=0)
    zeta = [sys.executable, "-m", "flows.cli"]
    # The operator types the commands in the project root, with paths relative to it.
    rel = {k: os.path.relpath(ops / k, ROOT) for k in ("logs", "reg")}
    deploy = [*zeta, "deploy", "--logs", rel["logs"], "--registry", rel["reg"], "--register-only", "--work-pool", POOL]
    # This project's code, not whatever zeta-router the interpreter has installed.
    zeta_env = {**env, "PYTHONPATH": str(ROOT)}

    # The README's order: the work pool must exist before a deployment can be registered to it.
    refused = _run(deploy, zeta_env, ROOT)
    assert refused.returncode == 2 and f"prefect work-pool create {POOL} --type process" in refused.stderr
    created = _run([PREFECT, "work-pool", "create", POOL, "--type", "process"], env, ops)
    assert created.returncode == 0, created.stdout + created.stderr
    registered = _run(deploy, zeta_env, ROOT)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert f"registered deployment zeta-pipeline/zeta-nightly (0 3 * * * UTC; work pool {POOL})" in registered.stdout
    shown = _run([PREFECT, "deployment", "inspect", "zeta-pipeline/zeta-nightly", "--output", "json"], env, ops)
    assert json.loads(shown.stdout)["parameters"] == {"logs": str(ops / "logs"), "registry": str(ops / "reg")}

    # The worker runs elsewhere, with no PYTHONPATH: the deployment's pull step puts each run in the project.
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    log = worker_dir / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", POOL, "--type", "process"], env=env,
                                  cwd=worker_dir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        run = _run([PREFECT, "deployment", "run", "zeta-pipeline/zeta-nightly", "--param", "iterations=40",
                    "--param", "settle_seconds=0"], env, ops)
        assert run.returncode == 0, run.stdout + run.stderr
        [flow_run_id] = [w for w in run.stdout.split() if w.count("-") == 4 and len(w) == 36]

        def finished():
            got = _run([PREFECT, "flow-run", "inspect", flow_run_id, "--output", "json"], env, ops, timeout=60)
            if got.returncode != 0:
                return None
            state = json.loads(got.stdout)["state"]
            return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        state = _wait_until(finished, 240, "the deployment's run did not end", log)
    finally:
        _stop(worker)
    assert state["type"] == "COMPLETED" and state["name"] == "Promoted", (state, log.read_text()[-3000:])
    assert "no champion yet" in state["message"]
    # The paths were made absolute against the operator's directory, not the worker's.
    assert current_version(ops / "reg") is not None and not (worker_dir / "reg").exists()
    arts = _run([PREFECT, "artifact", "inspect", "zeta-pipeline-report", "--output", "json"], env, ops)
    assert arts.returncode == 0 and "Off-policy estimates" in arts.stdout and flow_run_id in arts.stdout
