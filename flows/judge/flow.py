"""The Prefect flow ``zeta-judge``: grade a seeded sample of unlabeled logged answers with the pool's
judge model and write label lines beside the logs (``zeta judge``).

    read the logs -> choose what to grade -> grade it (the judge model through llama.cpp) -> counts

The judge model is ``judge`` (the flag) or the pool file's ``judge = "name"``; it is served by the
same ``LlamaBackend`` as ``zeta serve``, loaded with that one model of the pool.  Run it as a script
with explicit parameters::

    python -m flows.judge.flow --logs logs --pool pool.toml --sample-rate 0.2 --max 500
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from prefect import flow

from router_runtime.errors import ContractError
from router_runtime.pool import ModelInfo, check_judge, load_pool, load_pool_settings
from router_runtime.serving.backends import Backend

from .._prefect import step
from ..reports import judge_report, publish
from ..logs import LogReadResult, read_outcome_logs
from .grader import Judge
from .grading import grade_selection
from .labels import JudgeWriter
from .rubric import PAIRWISE, SINGLE
from .selection import Selection, select_groups, select_records

__all__ = ["judge_logs", "resolve_judge", "judge_backend", "judge_run"]


def resolve_judge(pool_file: str, judge: str | None = None) -> ModelInfo:
    """The judge model: ``judge`` when given, else the pool file's ``judge`` key; it must be a model of
    the pool that generates text."""
    settings = load_pool_settings(pool_file)
    name = judge if judge is not None else settings.judge
    if name is None:
        raise ContractError("judge", f'no judge model: pass --judge MODEL or set judge = "MODEL" in {pool_file}')
    return check_judge(load_pool(pool_file), name, source=str(pool_file))


def judge_backend(pool_file: str, model: ModelInfo, *, memory_budget_mb: float | None = None,
                  n_threads: int | None = None) -> Backend:
    """The llama.cpp backend of ``zeta serve``, for the judge model alone (the other models of the pool
    need no GGUF here)."""
    from router_runtime.serving.llama import LlamaBackend

    return LlamaBackend([model], base_dir=Path(pool_file).resolve().parent, memory_budget_mb=memory_budget_mb,
                        n_threads=n_threads)


def judge_run(logs: str, judge: Judge, read: LogReadResult, *, pairwise: bool = False, include_self: bool = False,
              sample_rate: float = 1.0, max_items: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Choose, grade and write (the flow's work without Prefect): the run's counts."""
    choose = select_groups if pairwise else select_records
    sel: Selection = choose(read.records, judge=judge.name, include_self=include_self, sample_rate=sample_rate,
                            max_items=max_items, seed=seed)
    writer = JudgeWriter(logs, judge.name)
    try:
        graded = grade_selection(judge, sel, writer, pairwise=pairwise)
    finally:
        writer.close()
    skipped = sel.counts()
    return {"judge": judge.name, "mode": "pairwise" if pairwise else "single",
            "rubric_version": (PAIRWISE if pairwise else SINGLE).version, "records": len(read.records),
            "quarantined": len(read.quarantined), "gradable": sel.gradable,
            "selected": sum(len(g) for g in sel.groups) if pairwise else len(sel.records),
            "groups": len(sel.groups) if pairwise else None, **graded,
            "skipped_self": skipped.get("skipped_self", 0), "skipped": skipped, **writer.paths(),
            "seed": seed, "sample_rate": sample_rate, "max": max_items}


@step
def read_logs(logs: str) -> LogReadResult:
    """Every logged record (bad lines counted, never graded), labels applied by the log reader."""
    return read_outcome_logs(logs)


@step
def grade_logs(logs: str, pool: str, judge: str | None, read: LogReadResult, pairwise: bool, include_self: bool,
               sample_rate: float, max_items: int | None, seed: int, memory_budget_mb: float | None,
               n_threads: int | None) -> dict[str, Any]:
    model = resolve_judge(pool, judge)
    backend = judge_backend(pool, model, memory_budget_mb=memory_budget_mb, n_threads=n_threads)
    try:
        return judge_run(logs, Judge(backend, model, seed=seed), read, pairwise=pairwise, include_self=include_self,
                         sample_rate=sample_rate, max_items=max_items, seed=seed)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()


@flow(name="zeta-judge", log_prints=False)
def judge_logs(logs: str, pool: str, judge: str | None = None, sample_rate: float = 1.0, max_items: int | None = None,
               seed: int = 0, pairwise: bool = False, include_self: bool = False,
               memory_budget_mb: float | None = None, n_threads: int | None = None) -> dict[str, Any]:
    """Grade unlabeled logged answers in ``logs`` with the judge model of ``pool``; the run's counts."""
    resolve_judge(pool, judge)  # a missing or wrong judge fails before the logs are read
    read = read_logs(logs)
    result = grade_logs(logs, pool, judge, read, pairwise, include_self, sample_rate, max_items, seed,
                        memory_budget_mb, n_threads)
    # Publishes the run's markdown and per-model table artifacts, logs its one decision line and ends
    # in a named state (Graded / NothingToGrade / Stopped); callers still get ``result``.
    return publish(judge_report(result), result)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--judge", default=None)
    ap.add_argument("--sample-rate", type=float, default=1.0)
    ap.add_argument("--max", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairwise", action="store_true")
    ap.add_argument("--include-self", action="store_true")
    a = ap.parse_args(argv)
    print(json.dumps(judge_logs(logs=a.logs, pool=a.pool, judge=a.judge, sample_rate=a.sample_rate, max_items=a.max,
                                seed=a.seed, pairwise=a.pairwise, include_self=a.include_self), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
