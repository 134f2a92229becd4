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
(``prefect server start``), which is why ``zeta deploy`` refuses to run without ``PREFECT_API_URL``.

**On a work pool** a worker runs each flow run in a fresh process started in a temporary directory,
so nothing may depend on the registering shell's working directory: a deployment bound to a work pool
is built with ``Flow.from_source(<this project's root>, "flows/<module>.py:<flow>")`` (its pull step
``set_working_directory`` puts the run in the project, where the entrypoint and ``router_runtime``
are found), and every path parameter (logs, registry, pool, curated) is made absolute when the
deployment is built.  The worker's Python must have the pipeline extra installed.

Names: ``zeta deploy`` registers ``zeta-nightly``, ``zeta-shadow-nightly`` and
``zeta-judge-after-shadow``; ``prefect.yaml`` declares the same flows under names ending in
``-yaml``, so ``prefect deploy --all`` never overwrites a deployment ``zeta deploy`` made (a
deployment is identified by flow name and deployment name).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .production import run_pipeline

__all__ = ["DEFAULT_CRON", "SHADOW_CRON", "SHADOW_TIME_BUDGET_S", "PROJECT_ROOT", "ENTRYPOINTS", "pipeline_deployment",
           "shadow_deployment", "judge_deployment", "loop_deployments", "missing_work_pool", "register", "serve",
           "absolute_path"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINTS = {  # flow name -> entrypoint relative to PROJECT_ROOT (what a worker loads)
    "zeta-pipeline": "flows/production.py:run_pipeline",
    "zeta-shadow": "flows/shadow.py:shadow_flow",
    "zeta-judge": "flows/judge/flow.py:judge_logs",
}

DEFAULT_CRON = "0 3 * * *"   # daily at 03:00 UTC, after a day of logs
SHADOW_CRON = "0 1 * * *"    # daily at 01:00 UTC: off-peak, with its time budget done before the pipeline
SHADOW_TIME_BUDGET_S = 3600.0
_RUN_ENDED = ("prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Crashed")
_PATH_PARAMETERS = ("logs", "registry", "pool", "curated")


def absolute_path(path: str) -> str:
    """``path`` made absolute against the current directory (a URL such as s3://... is kept as it is)."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def _deployable(flow, work_pool: str | None):
    """The flow itself for ``serve``; for a work pool, the same flow loaded from the project's source,
    so the deployment carries a pull step into the project directory."""
    if work_pool is None:
        return flow
    return flow.from_source(source=str(PROJECT_ROOT), entrypoint=ENTRYPOINTS[flow.name])


def _parameters(given: dict[str, Any]) -> dict[str, Any]:
    return {k: absolute_path(v) if k in _PATH_PARAMETERS and isinstance(v, str) else v for k, v in given.items()}


def pipeline_deployment(*, logs: str, registry: str, name: str = "zeta-nightly", cron: str = DEFAULT_CRON,
                        timezone: str = "UTC", parameters: dict[str, Any] | None = None, paused: bool = False,
                        work_pool: str | None = None):
    """The production loop as a RunnerDeployment with a cron schedule (bound to ``work_pool`` if given)."""
    from prefect.schedules import Cron

    return _deployable(run_pipeline, work_pool).to_deployment(
        name=name, schedule=Cron(cron, timezone=timezone), paused=paused, work_pool_name=work_pool,
        parameters=_parameters({"logs": logs, "registry": registry, **(parameters or {})}),
        description="Zeta Router production loop: ingest -> train -> evaluate (off-policy) -> promote",
        tags=["zeta-router"],
    )


def shadow_deployment(*, logs: str, pool: str, name: str = "zeta-shadow-nightly", cron: str = SHADOW_CRON,
                      timezone: str = "UTC", time_budget_s: float = SHADOW_TIME_BUDGET_S,
                      parameters: dict[str, Any] | None = None, paused: bool = False, work_pool: str | None = None):
    """Shadow replay as a RunnerDeployment with an off-peak cron schedule and a time budget."""
    from prefect.schedules import Cron

    from .shadow import shadow_flow

    return _deployable(shadow_flow, work_pool).to_deployment(
        name=name, schedule=Cron(cron, timezone=timezone), paused=paused, work_pool_name=work_pool,
        parameters=_parameters({"logs": logs, "pool": pool, "time_budget_s": time_budget_s, **(parameters or {})}),
        description="Zeta Router shadow replay: a seeded sample of logged queries on the pool's other models",
        tags=["zeta-router"],
    )


def judge_deployment(*, logs: str, pool: str, name: str = "zeta-judge-after-shadow", after_flow: str = "zeta-shadow",
                     parameters: dict[str, Any] | None = None, paused: bool = False, work_pool: str | None = None):
    """The judge as a RunnerDeployment that runs when a run of ``after_flow`` has ended (an event
    trigger: Prefect's server turns it into an automation)."""
    from prefect.events import DeploymentEventTrigger

    from .judge.flow import judge_logs

    trigger = DeploymentEventTrigger(
        name=f"after {after_flow}", expect=set(_RUN_ENDED),
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": after_flow})
    return _deployable(judge_logs, work_pool).to_deployment(
        name=name, triggers=[trigger], paused=paused, work_pool_name=work_pool,
        parameters=_parameters({"logs": logs, "pool": pool, **(parameters or {})}),
        description=f"Zeta Router judge: grade unlabeled logged answers after each {after_flow} run",
        tags=["zeta-router"],
    )


def loop_deployments(*, logs: str, registry: str, pool: str | None = None, cron: str = DEFAULT_CRON,
                     shadow_cron: str = SHADOW_CRON, timezone: str = "UTC", name: str = "zeta-nightly",
                     work_pool: str | None = None) -> list:
    """The nightly loop: the pipeline, and with a pool file shadow replay and the judge before it."""
    deps = [pipeline_deployment(logs=logs, registry=registry, name=name, cron=cron, timezone=timezone,
                                parameters={"pool": pool} if pool else None, work_pool=work_pool)]
    if pool:
        deps += [shadow_deployment(logs=logs, pool=pool, cron=shadow_cron, timezone=timezone, work_pool=work_pool),
                 judge_deployment(logs=logs, pool=pool, work_pool=work_pool)]
    return deps


def missing_work_pool(name: str) -> bool:
    """Whether the Prefect API has no work pool ``name`` (registering to it would fail)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            return True
    return False


def register(deployment, work_pool_name: str | None = None):
    """Register the deployment (and its schedule) with the Prefect API; returns its id.  The work pool
    is the one the deployment was built for unless ``work_pool_name`` names another."""
    return deployment.apply(work_pool_name=work_pool_name)


def serve(*deployments) -> None:  # pragma: no cover - blocks until interrupted
    from prefect import serve as prefect_serve

    prefect_serve(*deployments)
