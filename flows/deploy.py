"""Scheduled deployments of the production loop (``run_pipeline``) and of the two jobs that label its
traffic before it runs: shadow replay (``flows.shadow``) and the judge (``flows.judge``).

The night, in UTC: ``zeta-shadow`` at 01:00 (off-peak, ``time_budget_s`` one hour, so it is done
well before the pipeline), ``zeta-judge`` as soon as a shadow run has ended, however it ended (an
event trigger on the shadow flow's run: it grades the day's answers and the fresh shadow answers),
and ``zeta-nightly`` (the pipeline) at 03:00, which ingests their records and label lines.

Two ways, both standard Prefect 3:

- ``zeta deploy --logs DIR --registry DIR --cron "0 3 * * *" [--pool POOL]`` serves the deployments
  from this process (``prefect.serve``): it registers them with their schedules on the Prefect server
  named by ``PREFECT_API_URL`` and runs each scheduled run here; with ``--pool`` (shadow replay and the
  judge run the pool's models) all three, else the pipeline alone.  ``--register-only`` registers and
  exits, for running them from a work pool (``--work-pool NAME``, then ``prefect worker start --pool NAME``).
- ``prefect deploy --all`` with the project's ``prefect.yaml`` (a process work pool, same flows and
  schedules).

Prefect's temporary embedded server runs no scheduler: schedules fire only against a real server
(``prefect server start``).
"""

from __future__ import annotations

from typing import Any

from .production import run_pipeline

__all__ = ["DEFAULT_CRON", "SHADOW_CRON", "SHADOW_TIME_BUDGET_S", "pipeline_deployment", "shadow_deployment",
           "judge_deployment", "loop_deployments", "register", "serve"]

DEFAULT_CRON = "0 3 * * *"   # daily at 03:00 UTC, after a day of logs
SHADOW_CRON = "0 1 * * *"    # daily at 01:00 UTC: off-peak, with its time budget done before the pipeline
SHADOW_TIME_BUDGET_S = 3600.0
_RUN_ENDED = ("prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Crashed")


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


def shadow_deployment(*, logs: str, pool: str, name: str = "zeta-shadow-nightly", cron: str = SHADOW_CRON,
                      timezone: str = "UTC", time_budget_s: float = SHADOW_TIME_BUDGET_S,
                      parameters: dict[str, Any] | None = None, paused: bool = False):
    """Shadow replay as a RunnerDeployment with an off-peak cron schedule and a time budget."""
    from prefect.schedules import Cron

    from .shadow import shadow_flow

    return shadow_flow.to_deployment(
        name=name, schedule=Cron(cron, timezone=timezone), paused=paused,
        parameters={"logs": logs, "pool": pool, "time_budget_s": time_budget_s, **(parameters or {})},
        description="Zeta Router shadow replay: a seeded sample of logged queries on the pool's other models",
        tags=["zeta-router"],
    )


def judge_deployment(*, logs: str, pool: str, name: str = "zeta-judge-after-shadow", after_flow: str = "zeta-shadow",
                     parameters: dict[str, Any] | None = None, paused: bool = False):
    """The judge as a RunnerDeployment that runs when a run of ``after_flow`` has ended (an event
    trigger: Prefect's server turns it into an automation)."""
    from prefect.events import DeploymentEventTrigger

    from .judge.flow import judge_logs

    trigger = DeploymentEventTrigger(
        name=f"after {after_flow}", expect=set(_RUN_ENDED),
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": after_flow})
    return judge_logs.to_deployment(
        name=name, triggers=[trigger], paused=paused, parameters={"logs": logs, "pool": pool, **(parameters or {})},
        description=f"Zeta Router judge: grade unlabeled logged answers after each {after_flow} run",
        tags=["zeta-router"],
    )


def loop_deployments(*, logs: str, registry: str, pool: str | None = None, cron: str = DEFAULT_CRON,
                     shadow_cron: str = SHADOW_CRON, timezone: str = "UTC", name: str = "zeta-nightly") -> list:
    """The nightly loop: the pipeline, and with a pool file shadow replay and the judge before it."""
    deps = [pipeline_deployment(logs=logs, registry=registry, name=name, cron=cron, timezone=timezone,
                                parameters={"pool": pool} if pool else None)]
    if pool:
        deps += [shadow_deployment(logs=logs, pool=pool, cron=shadow_cron, timezone=timezone),
                 judge_deployment(logs=logs, pool=pool)]
    return deps


def register(deployment, work_pool_name: str | None = None):
    """Register the deployment (and its schedule) with the Prefect API; returns its id."""
    return deployment.apply(work_pool_name=work_pool_name)


def serve(*deployments) -> None:  # pragma: no cover - blocks until interrupted
    from prefect import serve as prefect_serve

    prefect_serve(*deployments)
