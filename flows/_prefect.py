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

from typing import Any, NoReturn

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner

from .runners import task_runner_from_env

__all__ = ["step", "runner_at_run_time"]

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
