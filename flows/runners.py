"""Where the pipeline's tasks run: in this process (threads) or on a Dask cluster through prefect-dask.

``task_runner("threads")`` is the default: a thread pool bounded to the cores (Polars and pyarrow
release the GIL), so ingest units run in parallel without holding every unit in memory at once.
``task_runner("dask", address=...)`` sends the tasks to an existing Dask scheduler
(``tcp://host:8786``); without an address, a ``distributed.LocalCluster`` of ``workers`` processes
is started for the flow run and closed after it.  Dask workers must see the same filesystem as the
flow (raw logs, curated store and registry paths): one machine, or a shared mount on a cluster.
"""

from __future__ import annotations

import os
from typing import Any

from router_runtime.errors import ContractError, MissingDependencyError

__all__ = ["task_runner", "task_runner_from_env", "RUNNERS", "default_workers"]

RUNNERS = ("threads", "dask")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def task_runner(kind: str = "threads", *, workers: int | None = None, address: str | None = None,
                memory_limit: str | None = None) -> Any:
    """A Prefect task runner of the given kind (see the module docstring)."""
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers or default_workers())
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise MissingDependencyError(f"the dask task runner needs the dask extra ({exc.name} is missing): "
                                         "pip install 'zeta-router[dask]'") from None
        if address:
            return DaskTaskRunner(address=address)
        # One thread per worker process: the work is Python + native code that threads itself.
        kwargs: dict[str, Any] = {"n_workers": workers or default_workers(), "threads_per_worker": 1,
                                  "processes": True, "dashboard_address": None}
        if memory_limit:
            kwargs["memory_limit"] = memory_limit
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)
    raise ContractError("task_runner", f"must be one of {RUNNERS}, got {kind!r}")


def task_runner_from_env() -> Any:
    """The runner the environment names: ``ZETA_TASK_RUNNER`` (threads | dask), ``ZETA_DASK_ADDRESS`` and
    ``ZETA_WORKERS``; the production flow asks for it when a run starts (``flows._prefect``), so a
    deployment moves to Dask through its work pool's environment, no code."""
    workers = os.environ.get("ZETA_WORKERS")
    return task_runner(os.environ.get("ZETA_TASK_RUNNER", "threads"), workers=int(workers) if workers else None,
                       address=os.environ.get("ZETA_DASK_ADDRESS") or None)
