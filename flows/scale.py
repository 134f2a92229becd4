"""Measure the pipeline at scale: generate N outcome records, then ingest → window (+ sample) → train →
evaluate → promote, printing wall time, peak RSS and rows/s per stage.

    python -m flows.scale --rows 1000000 [--json] [--work DIR] [--flow] [--task-runner dask]

The stages run in a child process (so the peak RSS is the pipeline's, not the generator's), one after
the other, calling the same functions as the Prefect flow ``zeta-pipeline`` (ingest units mapped over
the same bounded thread pool); each stage's peak RSS is the process's high-water mark (VmHWM, reset
between stages through /proc/self/clear_refs; ``ru_maxrss`` where that is unavailable).  ``--flow``
runs the Prefect flow itself in the child instead and reports its total only (Prefect's start-up
included).  Nothing here asserts a time: the test suite runs it in a short mode as a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["main", "run_stages"]

ROOT = Path(__file__).resolve().parent.parent


def _hwm_kb() -> int:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Stages:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def run(self, name: str, fn, rows_of=None):
        _reset_hwm()
        t0, c0 = time.perf_counter(), _cpu_s()
        out = fn()
        wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
        n = rows_of(out) if rows_of else None
        # cpu_s (user + system, every thread) does not depend on what else runs on the machine.
        self.rows.append({"stage": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                          "peak_rss_mib": round(_hwm_kb() / 1024, 1), "rows": n,
                          "rows_per_s": round(n / wall) if n and wall > 0 else None})
        return out


def run_stages(logs: str, work: str, *, workers: int | None = None, iterations: int = 300, seed: int = 0,
               train_budget: int | None = None, eval_budget: int | None = None) -> dict[str, Any]:
    """The flow's stages without Prefect, timed one by one (see the module docstring)."""
    from router_runtime.artifact import current_version
    from router_runtime.registry import promote

    from . import production as prod
    from .export import DEFAULT_COST_WEIGHT, record_decision
    from .ingest import commit_ingest, ingest_unit, plan_ingest, staging_dir
    from .runners import default_workers
    from .training import TrainParams

    curated, registry = str(Path(work) / "curated"), str(Path(work) / "registry")
    st = _Stages()

    def ingest():
        plan = plan_ingest(logs, curated, settle_seconds=0)
        stage = staging_dir(plan)
        with ThreadPoolExecutor(workers or default_workers()) as ex:
            results = list(ex.map(lambda u: ingest_unit(u, stage), plan.units))
        return commit_ingest(plan, results)

    ing = st.run("ingest", ingest, lambda r: r.lines)
    tb, eb = train_budget or prod.TRAIN_BUDGET, eval_budget or prod.EVAL_BUDGET
    train, recent, tinfo, einfo = st.run("window+sample", lambda: prod.load_window.fn(curated, 0.2, tb, eb, seed),
                                         lambda r: r[2]["population_rows"] + r[3]["population_rows"])
    champion = current_version(registry) if Path(registry).exists() else None
    params = TrainParams(iterations=iterations, seed=seed)
    path = st.run("features+train+export", lambda: prod.train_candidate.fn(
        train, registry, None, params, DEFAULT_COST_WEIGHT, champion, tinfo), lambda _: len(train))
    evaluation = st.run("evaluate (off-policy)", lambda: prod.evaluate.fn(
        path, champion, registry, recent, train, seed, einfo), lambda _: len(recent))

    def gate_and_promote():
        promoted, reason = prod.offpolicy_gate(evaluation, champion, margin=0.0, min_ess=30.0)
        record_decision(registry, path, {"promoted": promoted, "reason": reason}, evaluation, ingest=ing.to_json())
        if promoted:
            promote(registry, Path(path).name, reason=reason)
        return promoted, reason

    promoted, reason = st.run("gate+promote", gate_and_promote)
    total = sum(r["wall_s"] for r in st.rows)
    cpu = sum(r["cpu_s"] for r in st.rows)
    return {"rows": ing.lines, "ingested": ing.ingested, "quarantined": ing.quarantined,
            "fast_path_lines": ing.fast_path_lines, "train_rows": len(train), "eval_rows": len(recent),
            "training_sample": tinfo, "promoted": promoted, "reason": reason, "version": Path(path).name,
            "stages": st.rows, "total_wall_s": round(total, 2), "total_cpu_s": round(cpu, 2),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in st.rows),
            "rows_per_s": round(ing.lines / total) if total else None}


def _run_flow(logs: str, work: str, kind: str, workers: int | None, iterations: int) -> dict[str, Any]:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from .production import run_pipeline
    from .runners import task_runner

    t0 = time.perf_counter()
    s = run_pipeline.with_options(task_runner=task_runner(kind, workers=workers))(
        logs=logs, registry=str(Path(work) / "registry"), curated=str(Path(work) / "curated"),
        settle_seconds=0, iterations=iterations)
    wall = time.perf_counter() - t0
    return {"rows": s["ingested"] + s["feedback"] + s["quarantined"] + s["duplicates"], "promoted": s["promoted"],
            "reason": s["reason"], "version": s["candidate_version"], "total_wall_s": round(wall, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "total_cpu_s": round(_cpu_s(), 2), "task_runner": kind}


def _table(args):
    from .importers import import_dcrouter, import_routeprofile
    from .tables import read_table, validate_benchmark_table

    if args.format == "table":
        return validate_benchmark_table(read_table(args.table), source=args.table)
    return (import_dcrouter if args.format == "dcrouter" else import_routeprofile)(args.table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--policy", default="mix", choices=["uniform", "mix"])
    ap.add_argument("--table", default=None, help="full-information table (default: the LLMRouter data in "
                    "../shared/data, else the committed sample)")
    ap.add_argument("--format", default="dcrouter", choices=["table", "dcrouter", "routeprofile"])
    ap.add_argument("--work", default=None, help="working directory (default: a temporary one, removed)")
    ap.add_argument("--logs", default=None, help="use these logs instead of generating (--rows is then ignored)")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--train-budget", type=int, default=None)
    ap.add_argument("--eval-budget", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--flow", action="store_true", help="run the Prefect flow (total only) instead of the stages")
    ap.add_argument("--task-runner", default="threads", choices=["threads", "dask"], help="with --flow")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # logs dir: run the stages here
    a = ap.parse_args(argv)
    if a.child:
        out = (_run_flow(a.child, a.work, a.task_runner, a.workers, a.iterations) if a.flow else
               run_stages(a.child, a.work, workers=a.workers, iterations=a.iterations,
                          train_budget=a.train_budget, eval_budget=a.eval_budget))
        print(json.dumps(out, default=str))
        return 0

    import shutil

    from .synth import simulate_logs_at_scale

    tmp = None if a.work else tempfile.mkdtemp(prefix="zeta-scale-")
    work = Path(a.work or tmp)
    try:
        if a.table is None:
            shared = ROOT.parent / "shared" / "data" / "llmrouter_dcrouter"
            a.table, a.format = str(shared if shared.exists() else ROOT / "data" / "sample" / "dcrouter"), "dcrouter"
        logs = Path(a.logs) if a.logs else work / "logs"
        for sub in ("curated", "registry") if a.logs else ("logs", "curated", "registry"):
            shutil.rmtree(work / sub, ignore_errors=True)
        t0 = time.perf_counter()
        paths = (sorted(logs.glob("*.jsonl")) if a.logs else
                 simulate_logs_at_scale(_table(a), logs, rows=a.rows, days=a.days, policy=a.policy))
        gen = {"wall_s": None if a.logs else round(time.perf_counter() - t0, 2), "files": len(paths),
               "bytes": sum(p.stat().st_size for p in paths)}
        cmd = [sys.executable, "-m", "flows.scale", "--child", str(logs), "--work", str(work),
               "--iterations", str(a.iterations), "--task-runner", a.task_runner]
        for flag, v in (("--workers", a.workers), ("--train-budget", a.train_budget), ("--eval-budget", a.eval_budget)):
            if v is not None:
                cmd += [flag, str(v)]
        if a.flow:
            cmd.append("--flow")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return proc.returncode
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        out["generate"] = gen
        out["load_average"] = os.getloadavg()
        out["cpus"] = os.cpu_count()
        if a.json:
            print(json.dumps(out, indent=1, default=str))
        else:
            print(f"{out['rows']} rows ({gen['bytes'] / 1e9:.2f} GB of JSONL in {gen['files']} files, generated in "
                  f"{gen['wall_s']} s); load average {out['load_average'][0]:.2f} on {out['cpus']} cores")
            for r in out.get("stages", []):
                rate = f"{r['rows_per_s']:>10,} rows/s" if r["rows_per_s"] else ""
                print(f"  {r['stage']:24s} {r['wall_s']:8.2f} s wall {r['cpu_s']:8.2f} s CPU  "
                      f"peak RSS {r['peak_rss_mib']:8.1f} MiB  {rate}")
            print(f"  {'total':24s} {out['total_wall_s']:8.2f} s wall {out['total_cpu_s']:8.2f} s CPU  "
                  f"peak RSS {out['peak_rss_mib']:8.1f} MiB  promoted {out['promoted']}: {out['reason']}")
        return 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    from .cli import run_script

    sys.exit(run_script(main, "python -m flows.scale"))
