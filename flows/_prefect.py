"""What the pipeline's flows share with Prefect: one task preset, and the task runner chosen when a
flow run starts (never when a module is imported).

``step`` is every task's preset: data passes between tasks in memory, so no result persistence and
no input hashing (hashing a Polars frame costs more than most steps).

``runner_at_run_time()`` is the production flow's default task runner: Prefect asks a flow's runner
for a ``duplicate()`` when a run starts, and this one answers with the runner that
``ZETA_TASK_RUNNER`` / ``ZETA_DASK_ADDRESS`` / ``ZETA_WORKERS`` name at that moment
(``flows.runners.task_runner_from_env``).  So a deployment moves to Dask through its work pool's
environment, and importing ``flows.production`` reads no environment and builds nothing.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner

from .runners import task_runner_from_env

__all__ = ["step", "runner_at_run_time", "tie_embedded_server_to_this_process"]

step = task(cache_policy=NO_CACHE, persist_result=False)


class _RunnerFromEnv(TaskRunner):
    """A placeholder whose ``duplicate()`` (what Prefect enters for each flow run) is the real runner."""

    @property
    def name(self) -> str:
        return "zeta-env"

    def duplicate(self) -> Any:
        return task_runner_from_env()

    def submit(self, task: Any, parameters: Any, wait_for: Any = None, dependencies: Any = None) -> NoReturn:
        raise RuntimeError("the environment's task runner is chosen when a flow run starts: "
                           "submit through the running flow's runner")


def runner_at_run_time() -> TaskRunner:
    return _RunnerFromEnv()


def tie_embedded_server_to_this_process() -> bool:
    """Make Prefect's temporary server (started when no PREFECT_API_URL is set) die with this process.

    Prefect starts it as a ``python -m uvicorn`` subprocess and stops it only from an ``atexit``
    hook, which a ``kill -9`` never runs: the server would outlive ``zeta pipeline``.  On Linux the
    child asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), through the
    ``subprocess`` name of Prefect's server module only (every other subprocess is left alone).
    Returns whether the tie is in place (False elsewhere, or on a Prefect without that module).
    """
    import ctypes
    import signal
    import subprocess
    import sys
    import types

    if not sys.platform.startswith("linux"):
        return False
    try:
        from prefect.server.api import server as prefect_server
        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        return False
    if getattr(prefect_server.subprocess, "_zeta_tied", False):
        return True
    parent = os.getpid()

    def die_with_parent() -> None:  # runs in the child between fork and exec
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the prctl: nobody would signal us
            os._exit(1)

    class _Popen(subprocess.Popen):
        def __init__(self, *a: Any, **k: Any) -> None:
            k.setdefault("preexec_fn", die_with_parent)
            super().__init__(*a, **k)

    tied = types.ModuleType("subprocess")
    tied.__dict__.update(subprocess.__dict__)
    tied.Popen = _Popen
    tied._zeta_tied = True
    prefect_server.subprocess = tied
    return True
