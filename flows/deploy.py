"""Scheduled deployments of the production loop (``run_pipeline``).

Two ways, both standard Prefect 3:

- ``zeta deploy --logs DIR --registry DIR --cron "0 3 * * *"`` serves the deployment from this process
  (``prefect.serve``): it registers the deployment with its schedule on the Prefect server named by
  ``PREFECT_API_URL`` and runs each scheduled run here.  ``--register-only`` registers and exits, for
  running it from a work pool (``--work-pool NAME``, then ``prefect worker start --pool NAME``).
- ``prefect deploy`` with the project's ``prefect.yaml`` (a process work pool, same flow and schedule).

Prefect's temporary embedded server runs no scheduler: schedules fire only against a real server
(``prefect server start``).
"""

from __future__ import annotations

from typing import Any

from .production import run_pipeline

__all__ = ["DEFAULT_CRON", "pipeline_deployment", "register", "serve"]

DEFAULT_CRON = "0 3 * * *"  # daily at 03:00 UTC, after a day of logs


def pipeline_deployment(*, logs: str, registry: str, name: str = "zeta-nightly", cron: str = DEFAULT_CRON,
                        timezone: str = "UTC", parameters: dict[str, Any] | None = None, paused: bool = False):
    """The production loop as a RunnerDeployment with a cron schedule."""
    from prefect.schedules import Cron

    return run_pipeline.to_deployment(
        name=name, schedule=Cron(cron, timezone=timezone), paused=paused,
        parameters={"logs": logs, "registry": registry, **(parameters or {})},
        description="Zeta Router production loop: ingest -> train -> evaluate (off-policy) -> promote",
        tags=["zeta-router"],
    )


def register(deployment, work_pool_name: str | None = None):
    """Register the deployment (and its schedule) with the Prefect API; returns its id."""
    return deployment.apply(work_pool_name=work_pool_name)


def serve(deployment) -> None:  # pragma: no cover - blocks until interrupted
    from prefect import serve as prefect_serve

    prefect_serve(deployment)
