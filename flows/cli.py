"""The ``zeta`` command.

Only the standard library is imported here; each subcommand imports what it needs when it runs, so
``zeta route`` works with the runtime alone and a missing pipeline extra gives an actionable message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

__all__ = ["main"]

DEMO_QUERIES = [
    ("code", "code", "Write a Python function that returns the n-th Fibonacci number using memoization, "
                     "with a docstring and a unit test."),
    ("math", "chat", "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
                     "in May. How many clips did Natalia sell altogether in April and May?"),
    ("trivia", "chat", "Which country hosted the 1998 FIFA World Cup?"),
    ("multiple choice", "chat", "Which gas do plants absorb from the atmosphere for photosynthesis? "
                                "(A) oxygen (B) nitrogen (C) carbon dioxide (D) helium"),
    ("embedding", "embed", "Represent this sentence for retrieval: routing requests between local LLMs"),
]


def _need_pipeline() -> None:
    try:
        import catboost  # noqa: F401
        import polars  # noqa: F401
        import prefect  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"zeta: this command needs the pipeline extra ({exc.name} is missing): "
                         "pip install 'zeta-router[pipeline]'")


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar on stderr (default: when stderr is a terminal and not --json; "
                        "ZETA_NO_PROGRESS=1 turns it off)")


def _progress(a: argparse.Namespace) -> None:
    """Switch the progress bars (flows/progress.py) on for this command when it should show them."""
    from . import progress

    if progress.wanted(getattr(a, "progress", None), json_output=bool(getattr(a, "json", False))):
        progress.enable()


def _print_decision(d, *, as_json: bool, label: str | None = None) -> None:
    if as_json:
        print(json.dumps(d.to_dict(), ensure_ascii=False))
        return
    head = f"[{label}] " if label else ""
    print(f"{head}-> {d.model}  ({d.reason})")


def cmd_route(a: argparse.Namespace) -> int:
    from router_runtime import Router, load_pool

    pool = load_pool(a.pool) if a.pool else None
    router = Router.load(a.artifact, pool=pool)
    d = router.decide(a.query, kind=a.kind, cost_weight=a.cost_weight,
                      candidates=a.candidates.split(",") if a.candidates else None,
                      max_latency_ms=a.max_latency_ms)
    if a.json:
        print(json.dumps(d.to_dict(), ensure_ascii=False, indent=1))
    else:
        print(f"model:    {d.model}")
        print(f"reason:   {d.reason}")
        print(f"artifact: {d.artifact_version or '(none: rule-based)'}")
        for s in sorted(d.scores, key=lambda s: -s.utility):
            q = "   -  " if s.quality is None else f"{s.quality:.3f}"
            print(f"  {s.model:40s} quality {q}  cost {s.cost:.3g}  utility {s.utility:+.3f}")
        for m, why in d.excluded.items():
            print(f"  {m:40s} excluded: {why}")
    return 0 if d.model is not None else 3


def cmd_import(a: argparse.Namespace) -> int:
    _need_pipeline()
    from .importers import COST_MODELS, import_benchmark
    from .tables import benchmark_summary, write_table

    table = import_benchmark(a.source, a.format)
    write_table(table, a.out)
    s = benchmark_summary(table)
    print(f"wrote {len(table)} rows ({s['n_queries']} queries x {s['n_models']} models) to {a.out}")
    print(f"cost model: {COST_MODELS[a.format]}")
    return 0


def _train(a: argparse.Namespace, source: str, source_format: str, pool: str | None) -> dict[str, Any]:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The embedded server gets 20 s to start by default; on a loaded 2-core machine (load average 11,
    # measured) it needed more and the whole command failed.  Waiting longer costs nothing when it is fast.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from .train import train_router

    return train_router(source=source, source_format=source_format, registry=a.registry, pool=pool,
                        seed=a.seed, test_fraction=a.test_fraction, iterations=a.iterations,
                        promote=not getattr(a, "no_promote", False),
                        static_embedding=getattr(a, "static_embedding", 0))


def cmd_train(a: argparse.Namespace) -> int:
    _need_pipeline()
    _progress(a)
    summary = _train(a, a.source, a.format, a.pool)
    if a.json:
        print(json.dumps(summary, indent=1, default=str))
    if summary["version"] is None:  # refused (too few labels, equal labels, a training failure): say why
        print(f"zeta train: no artifact written: {summary['reason']}", file=sys.stderr)
        return 1
    if not a.json:
        print(f"artifact {summary['version']} written to {summary['path']}; "
              + ("marked CURRENT" if summary["promoted"] else "CURRENT unchanged")
              + f" ({summary['reason']})")
        line = holdout_line(summary["metrics"].get("holdout"))
        if line:
            print(line)
    return 0


def holdout_line(h: dict[str, Any] | None) -> str | None:
    if not h:
        return None
    r, b, o = h["router"], h["best_single"], h["oracle"]
    return (f"held-out ({h['n_test_queries']} queries): router quality {r['quality']:.3f} at cost "
            f"{r['cost']:.3g} | best single model ({b['model']}) {b['quality']:.3f} at {b['cost']:.3g} | "
            f"oracle {o['quality']:.3f} at {o['cost']:.3g}")


def cmd_demo(a: argparse.Namespace) -> int:
    """The main job: train on the committed sample, mark the artifact current, route examples."""
    _need_pipeline()
    from router_runtime import Router

    root = Path(__file__).resolve().parent.parent
    source = a.source or str(root / "data" / "sample" / "routeprofile")
    pool = a.pool or str(root / "data" / "sample" / "pool.toml")  # --pool defaults to the demo pool
    print(f"== training on {source} (Prefect flow zeta-train-router, embedded server) ==", flush=True)
    summary = _train(a, source, a.format, pool)
    if summary["version"] is None:
        print(f"zeta demo: no artifact written: {summary['reason']}", file=sys.stderr)
        return 1
    state = "CURRENT" if summary["promoted"] else f"not promoted: {summary['reason']}"
    print(f"\n== artifact {summary['version']} -> {summary['path']} ({state}) ==")
    print(f"rows {summary['rows']}, CatBoost parity max |diff| {summary.get('parity_max_abs_diff', float('nan')):.2e}")
    router = Router.load(a.registry)
    print(f"\n== decisions (cost weight {router.artifact.policy.cost_weight:g}) ==")
    for label, kind, q in DEMO_QUERIES:
        short = q if len(q) <= 70 else q[:67] + "..."
        print(f"{label:16s} {short!r}")
        _print_decision(router.decide(q, kind=kind), as_json=False, label=kind)
    _print_within_task(router, source, a)
    line = holdout_line(summary["metrics"].get("holdout"))
    if line:
        print("\n" + line)
    return 0


def _print_within_task(router: Any, source: str, a: argparse.Namespace) -> None:
    """Held-out decisions of one task that differ from query to query, or why there are none."""
    from .evaluate.per_task import held_out_decisions, within_task_examples
    from .sources import load_source
    from .train import split_table

    table, _ = load_source(source, a.format)
    _, test, _ = split_table.fn(table, a.test_fraction, a.seed)  # the training flow's own split
    print("\n== within one task (held-out queries) ==")
    if "task" not in test.columns or test.is_empty():
        print("the held-out queries carry no task: no within-task decisions to show")
        return
    ex = within_task_examples(held_out_decisions(router, test))
    if ex["task"] is None:
        print(ex["reason"])
        return
    spread = ", ".join(f"{m} x{n}" for m, n in ex["choices"].items())
    print(f"task {ex['task']}: the router chose {len(ex['choices'])} different models for its {ex['n_queries']} "
          f"held-out queries ({spread}); highest utility wins (quality - {router.artifact.policy.cost_weight:g} x "
          "relative cost)")
    for d in ex["examples"]:
        q = d["query"].replace("\n", " ")
        short = q if len(q) <= 70 else q[:67] + "..."
        util = d.get("utility", {})
        others = sorted((m for m in d["predicted"] if m != d["model"]), key=lambda m: (-util.get(m, 0.0), m))[:2]
        true = "" if d["true_quality"] is None else f" | true quality {d['true_quality']:.2f}"
        print(f"{short!r}\n  -> {d['model']}: {_score(d, d['model'])}"
              + "".join(f" | then {m}: {_score(d, m)}" for m in others) + true)


def _score(d: dict[str, Any], model: str) -> str:
    """One held-out decision's predicted quality and utility of ``model``."""
    u = d.get("utility", {})
    return f"predicted quality {d['predicted'][model]:.3f}, utility {u[model]:+.3f}" if model in u else "-"


def cmd_evaluate_benchmark(a: argparse.Namespace) -> int:
    """Router vs baselines on the test part of a benchmark table (Prefect flow zeta-evaluate-benchmark)."""
    _need_pipeline()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from .evaluate.benchmark import evaluate_benchmark, summary_markdown

    r = evaluate_benchmark(source=a.table, source_format=a.format, split_column=a.split_column,
                           test_fraction=a.test_fraction, seed=a.seed, bandit=a.bandit, json_out=a.json,
                           report_dir=a.report, iterations=a.iterations, static_embedding=a.static_embedding)
    print(summary_markdown(r))
    for kind, path in r["outputs"].items():
        print(f"{kind}: {path}")
    return 0


def cmd_artifacts(a: argparse.Namespace) -> int:
    from router_runtime import current_version, load_artifact
    from router_runtime.registry import history, promote, rollback, version_dir

    from .registry_admin import collect_garbage, format_rows, gate_refusal, version_rows

    if a.action == "list":
        rows = version_rows(a.registry)
        if a.json:
            print(json.dumps(rows, indent=1))
        elif rows:
            print(format_rows(rows))
        return 0
    if a.action == "gc":
        removed = collect_garbage(a.registry, keep=a.keep, dry_run=a.dry_run)
        verb = "would remove" if a.dry_run else "removed"
        print(f"{verb} {len(removed)} version(s), kept the {a.keep} newest, CURRENT and its rollback target"
              + "".join(f"\n  {v}" for v in removed))
        return 0
    if a.action == "promote":
        if not a.version:
            raise SystemExit("zeta: artifacts promote needs a VERSION")
        refused = gate_refusal(a.registry, a.version)
        if refused:
            print(f"zeta: warning: the promotion gate refused {a.version}: {refused}", file=sys.stderr)
        prev = promote(a.registry, a.version, reason=a.reason or "manual promotion")
        print(f"CURRENT: {prev} -> {a.version}")
        return 0
    if a.action == "rollback":
        prev = current_version(a.registry)
        target = rollback(a.registry, reason=a.reason or "manual rollback")
        print(f"CURRENT: {prev} -> {target} (rollback)")
        return 0
    if a.action == "history":
        for e in history(a.registry):
            print(f"{e.get('ts')}  {e.get('action', '?'):8s} {e.get('previous')} -> {e['version']}  {e.get('reason', '')}")
        return 0
    art = load_artifact(version_dir(a.registry, a.version) if a.version else a.registry)
    print(json.dumps({"version": art.version, "models": [m.name for m in art.pool],
                      "features": len(art.feature_spec.output_names), "trees": art.ensemble.n_trees,
                      "policy": art.policy.__dict__, "manifest": art.manifest}, indent=1, default=str))
    return 0


def _load_any_table(source: str, fmt: str):
    from .sources import load_table

    return load_table(source, fmt)[0]


def cmd_simulate(a: argparse.Namespace) -> int:
    _need_pipeline()
    _progress(a)
    from .logs import simulate_logs

    table = _load_any_table(a.table, a.format)
    # Large runs (or --days, or the mix policy) use the vectorized generator: one file per day.
    if a.policy != "artifact" and a.rows is not None and (a.rows > 100_000 or a.days or a.policy == "mix"):
        from .synth import simulate_logs_at_scale

        paths = simulate_logs_at_scale(table, a.out, rows=a.rows, seed=a.seed, days=a.days or 30, policy=a.policy)
        print(f"wrote {a.rows} outcome records ({a.policy} logging policy) to {len(paths)} daily files in {a.out}")
        return 0
    if a.policy == "mix":
        raise SystemExit("zeta: --policy mix needs --rows")
    path = simulate_logs(table, a.out, seed=a.seed, rows=a.rows, policy=a.policy,
                         artifact=a.artifact if a.policy == "artifact" else None,
                         exploration_rate=a.exploration_rate)
    n = sum(1 for _ in open(path, "rb"))
    print(f"wrote {n} outcome records ({a.policy} logging policy) to {path}")
    return 0


def cmd_pipeline(a: argparse.Namespace) -> int:
    _need_pipeline()
    _progress(a)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from ._prefect import tie_embedded_server_to_this_process
    from .production import run_pipeline
    from .runners import task_runner

    if not os.environ.get("PREFECT_API_URL"):
        tie_embedded_server_to_this_process()  # a kill -9 of this command takes the server with it

    flow = run_pipeline  # its default runner: threads, or what ZETA_TASK_RUNNER / ZETA_DASK_ADDRESS say
    if a.task_runner or a.workers or a.dask_address:
        kind = a.task_runner or ("dask" if a.dask_address else os.environ.get("ZETA_TASK_RUNNER", "threads"))
        flow = run_pipeline.with_options(task_runner=task_runner(kind, workers=a.workers, address=a.dask_address))
    s = flow(logs=a.logs, registry=a.registry, curated=a.curated, pool=a.pool, margin=a.margin,
             min_ess=a.min_ess, holdout_fraction=a.holdout_fraction, iterations=a.iterations,
             settle_seconds=a.settle_seconds, seed=a.seed, train_budget=a.train_budget, eval_budget=a.eval_budget,
             min_labeled_per_model=a.min_labeled_per_model)
    if a.json:
        print(json.dumps(s, indent=1, default=str))
    else:
        print(f"ingested {s['ingested']}, labels {s['feedback']}, quarantined {s['quarantined']}, "
              f"duplicates {s['duplicates']}")
        t = s["labels"]["train"]
        print(f"training window: {t['labeled']} labeled {t['by_source']}, {t['unlabeled']} unlabeled, "
              f"{t['shadow']} shadow")
        print(f"candidate {s['candidate_version']} vs champion {s['champion_version']}: "
              f"{'PROMOTED' if s['promoted'] else 'kept champion'} ({s['reason']})")
        if s.get("ope"):
            o = s["ope"]
            print(f"candidate value (off-policy): IPS {o['ips']:.4f}  SNIPS {o['snips']:.4f}  "
                  f"DR {o['dr']:.4f} [{o['ci_low']:.4f}, {o['ci_high']:.4f}]")
    return 0


def cmd_shadow(a: argparse.Namespace) -> int:
    """Replay a seeded sample of logged queries on the pool's other eligible models (flow zeta-shadow)."""
    _need_pipeline()
    _progress(a)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from .shadow import shadow_flow, summary_lines

    given = {"rate": a.rate, "max_tokens": a.max_tokens}  # absent: the flow's defaults (one place)
    s = shadow_flow(logs=a.logs, pool=a.pool, max_runs=a.max_runs, time_budget_s=a.time_budget_s, seed=a.seed,
                    memory_budget_mb=a.memory_budget_mb, threads=a.threads,
                    **{k: v for k, v in given.items() if v is not None})
    print(json.dumps(s, indent=1) if a.json else "\n".join(summary_lines(s)))
    return 0


_START_A_SERVER = ("  prefect server start                               # in another shell, or as a service\n"
                   "  export PREFECT_API_URL=http://127.0.0.1:4200/api   # or: prefect config set PREFECT_API_URL=...\n")


def cmd_deploy(a: argparse.Namespace) -> int:
    _need_pipeline()
    from prefect.settings import get_current_settings

    from .deploy import loop_deployments, missing_work_pool, register, serve

    url = get_current_settings().api.url
    if not url:
        # Without a server Prefect would start its temporary one, which runs no scheduler: the
        # schedules would be registered and never fire.
        print("zeta deploy: refused: PREFECT_API_URL is not set, and Prefect's temporary server runs no "
              "scheduler, so these schedules would never fire.  Start a Prefect server and point at it:\n"
              + _START_A_SERVER + "then run this command again.", file=sys.stderr)
        return 2
    if a.work_pool and not a.register_only:
        print("zeta deploy: --work-pool registers the deployments for that pool's workers: add --register-only "
              "(without it this process serves them itself)", file=sys.stderr)
        return 2
    if a.work_pool and missing_work_pool(a.work_pool):
        print(f"zeta deploy: refused: no work pool {a.work_pool!r} on {url}; create it first:\n"
              f"  prefect work-pool create {a.work_pool} --type process\n"
              f"then run this command again, and start a worker: prefect worker start --pool {a.work_pool}",
              file=sys.stderr)
        return 2
    deps = loop_deployments(logs=a.logs, registry=a.registry, pool=a.pool, cron=a.cron, shadow_cron=a.shadow_cron,
                            timezone=a.timezone, name=a.name, work_pool=a.work_pool)
    if a.register_only:
        for dep in deps:
            when = ", ".join(f"{s.schedule.cron} {a.timezone}" for s in dep.schedules) or "after " + ", ".join(
                t.name for t in dep.triggers)
            where = f"work pool {a.work_pool}" if a.work_pool else "no work pool"
            print(f"registered deployment {dep.flow_name}/{dep.name} ({when}; {where}): {register(dep)}")
        if a.work_pool:
            print(f"start a worker: prefect worker start --pool {a.work_pool}\n"
                  f"run one now:    prefect deployment run '{deps[0].flow_name}/{deps[0].name}'")
        else:
            print("zeta deploy: note: without --work-pool these deployments run only while a process serves "
                  "them (zeta deploy without --register-only)", file=sys.stderr)
        return 0
    serve(*deps)
    return 0


def cmd_judge(a: argparse.Namespace) -> int:
    """Grade unlabeled logged answers with the pool's judge model, or measure the judge's agreement."""
    _need_pipeline()
    if (a.logs is None) == (a.validate is None):
        raise SystemExit("zeta judge: give --logs DIR (grade logged answers) or --validate TABLE (measure the "
                         "judge's agreement with known qualities)")
    _progress(a)
    if a.validate is not None:
        return _judge_validate(a)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from .judge.flow import judge_logs

    s = judge_logs(logs=a.logs, pool=a.pool, judge=a.judge, sample_rate=a.sample_rate, max_items=a.max, seed=a.seed,
                   pairwise=a.pairwise, include_self=a.include_self, n_threads=a.threads)
    if a.json:
        print(json.dumps(s, indent=1))
    else:
        print(f"judge {s['judge']} ({s['mode']}, rubric {s['rubric_version']}): graded {s['graded']}, "
              f"failures {s['failures']}, skipped self {s['skipped_self']}; {s['records']} records read, "
              f"{s['gradable']} gradable, {s['selected']} selected, {s['judge_calls']} judge calls")
        for name, m in s["by_model"].items():
            q = "-" if m["mean_quality"] is None else f"{m['mean_quality']:.3f}"
            print(f"  {name:32s} graded {m['graded']:5d}  failures {m['failures']:4d}  mean quality {q}")
        print(f"skipped: {json.dumps(s['skipped'])}")
        print(f"labels: {s['labels_file'] or '(none)'}  failures: {s['failures_file'] or '(none)'}")
    if s["stopped"]:
        print(f"zeta judge: stopped early: {s['stopped']}", file=sys.stderr)
        return 1
    return 0


def _judge_validate(a: argparse.Namespace) -> int:
    from .judge.flow import judge_backend, resolve_judge
    from .judge.grader import Judge
    from .judge.validation import VALIDATION_MAX_ROWS, validate_judge, write_validation
    from .sources import load_table

    model = resolve_judge(a.pool, a.judge)
    table, _ = load_table(a.validate, a.format)
    backend = judge_backend(a.pool, model, n_threads=a.threads)
    try:
        r = validate_judge(table, Judge(backend, model, seed=a.seed), max_items=VALIDATION_MAX_ROWS if a.max is None else a.max,
                           seed=a.seed, source=str(a.validate))
    finally:
        backend.close()
    path = write_validation(a.registry, r)
    if a.json:
        print(json.dumps({**r, "report": path}, indent=1))
    else:
        g = r["agreement"]

        def f(x):
            return "-" if x is None else f"{x:.3f}"

        print(f"judge {r['judge']} (rubric {r['rubric_version']}) on {g['n']} answers with known quality: "
              f"accuracy@{g['threshold']:g} {f(g['accuracy'])}  Spearman {f(g['spearman'])}  AUC {f(g['auc'])} "
              f"(positives {g['positives']}, negatives {g['negatives']}); failures {r['failures']} of "
              f"{r['sampled']} sampled")
        print(f"report: {path}")
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    """The OpenAI-compatible server in front of the pool's llama.cpp models."""
    from router_runtime.server import build_service, serve

    token = a.token or None
    if a.memory_budget_mb is None:
        print("zeta serve: warning: no memory budget (--memory-budget-mb, $ZETA_MEMORY_BUDGET_MB): every model "
              "stays loaded once used; set one to unload idle models", file=sys.stderr, flush=True)
    service = build_service(a.pool, artifact=a.artifact, log_dir=a.log_dir, memory_budget_mb=a.memory_budget_mb,
                            max_hops=a.max_hops, cooldown_s=a.cooldown_s, timeout_s=a.timeout_s,
                            n_threads=a.threads, reload_interval_ms=a.reload_interval_ms or None,
                            otel=a.otel, otel_endpoint=a.otel_endpoint)
    r = service.router
    print(f"zeta serve: {len(service.pool)} models ({', '.join(m.name for m in service.pool)}); "
          f"router: {'artifact ' + r.artifact_version if r.artifact is not None else 'rules (' + str(r.problem) + ')'}; "
          f"outcome log: {a.log_dir or 'off'}; auth: {'bearer token' if token else 'none'}; "
          f"aliases: {', '.join(sorted(service.aliases)) or 'auto:cw=<number> only'}; "
          f"tracing: {'OTLP' if service.tracer is not None else 'off'}", flush=True)
    print(f"zeta serve: dashboard at http://{a.host}:{a.port}/ui", flush=True)
    serve(service, host=a.host, port=a.port, token=token, max_body_bytes=a.max_body_bytes, log_level=a.log_level,
          body_timeout_s=a.body_timeout_s, header_timeout_s=a.header_timeout_s, keep_alive_s=a.keep_alive_s,
          limit_concurrency=a.limit_concurrency)
    return 0


def cmd_validate(a: argparse.Namespace) -> int:
    """Check a pool file (and the artifact that would serve it) before serving: 0 fine, 1 errors."""
    from router_runtime import check_pool
    from router_runtime.pool_check import findings_summary

    budget = a.memory_budget_mb
    if budget is None and os.environ.get("ZETA_MEMORY_BUDGET_MB"):  # what zeta serve would run with
        try:
            budget = float(os.environ["ZETA_MEMORY_BUDGET_MB"])
        except ValueError:
            raise SystemExit(f"zeta validate: $ZETA_MEMORY_BUDGET_MB: not a number: "
                             f"{os.environ['ZETA_MEMORY_BUDGET_MB']!r}") from None
    findings = check_pool(a.pool, artifact=a.artifact, memory_budget_mb=budget)
    s = findings_summary(findings)
    if a.json:
        print(json.dumps(s, indent=1))
    else:
        for f in findings:
            print(f.line())
        print(f"{s['errors']} error(s), {s['warnings']} warning(s)")
    return 0 if s["ok"] else 1


def cmd_calibrate(a: argparse.Namespace) -> int:
    """Time each model of the pool on this machine and write its cost model back into the pool file."""
    from router_runtime import load_pool
    from router_runtime.calibration import calibrate_pool

    from .progress import bar

    reports = {}
    _progress(a)
    names = a.models.split(",") if a.models else [m.name for m in load_pool(a.pool) if m.gguf is not None]
    steps = bar("calibrating (models)", len(names))

    def report(name, cal):
        reports[name] = cal
        steps.advance(note=name)
        if cal.warning:
            print(f"warning: {name}: {cal.warning}", file=sys.stderr)

    results = calibrate_pool(a.pool, models=a.models.split(",") if a.models else None,
                             prompt_tokens=a.prompt_tokens, gen_tokens=a.gen_tokens, repeats=a.repeats,
                             write=not a.dry_run, n_threads=a.threads, max_rounds=a.max_rounds,
                             tolerance=a.tolerance, on_model=report)
    steps.close()
    if a.json:
        print(json.dumps({n: {**r, "rounds": len(reports[n].rounds), "stable": reports[n].stable,
                              "spread": reports[n].spread, "warning": reports[n].warning}
                          for n, r in results.items()}, indent=1))
    else:
        for name, r in results.items():
            cal = reports[name]
            gen = f"{r['ms_per_token']:.3f} ms/generated token" if "ms_per_token" in r else "embed only"
            spread = ", ".join(f"{f} {x:.2f}x" for f, x in cal.spread.items())
            state = {True: "stable", False: "NOT stable", None: "one round"}[cal.stable]
            print(f"{name:32s} load {r['load_ms']:.1f} ms  {r['ms_per_prompt_token']:.4f} ms/prompt token  {gen}")
            print(f"{'':32s} {len(cal.rounds)} rounds, {state}; spread (largest / smallest round): {spread}")
        if not results:
            print("no model of the pool has a gguf path: nothing to calibrate")
        elif not a.dry_run:
            print(f"written to {a.pool}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    _need_pipeline()
    from .bench import SUMMARY_KEYS, format_table, run_bench

    grid = {} if not a.quick else {"trees": (300,), "candidates": (4,), "query_bytes": (1000,), "calls": 500}
    _progress(a)
    result = run_bench(**grid, static_dims=a.static_dims)
    if a.json:
        keys = SUMMARY_KEYS + ("default_case", "engines", "machine")
        print(json.dumps({k: result[k] for k in keys if k in result} | {"cases": result["cases"]}, indent=1))
    else:
        print(format_table(result))
    return 0


class _Help(argparse.HelpFormatter):
    """--help shows each flag's default (when it has one worth showing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Parser(argparse.ArgumentParser):
    # Subcommand parsers are built with the parent's class: every --help shows defaults.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zeta-router")
    except PackageNotFoundError:  # a source checkout that was never installed
        import router_runtime

        return router_runtime.__version__


# Flags that mean the same in every command they appear in: their help is written once, here, and
# given to any such flag that has no text of its own (tests/pipeline/test_cli.py: every flag has help).
_COMMON_HELP = {
    "--json": "print the result as JSON",
    "--seed": "random seed (splits, samples, CatBoost); the same seed reproduces the same result",
    "--registry": "artifact registry root (versions/, CURRENT, HISTORY.jsonl, reports/)",
    "--format": "input format: a benchmark table, a raw data set (routeprofile, dcrouter) or outcome logs",
    "--test-fraction": "share of queries held out for evaluation (split by query_id)",
    "--iterations": "CatBoost trees",
    "--static-embedding": ("DIMS: add a static-embedding feature of DIMS dimensions, its table fitted from "
                           "all-MiniLM-L6-v2 (needs the embed extra; default 0: none)"),
    "--pool": "pool TOML: models, capabilities, sizes, context lengths, cost models",
    "--logs": "directory (or glob) of outcome JSONL logs",
    "--min-ess": "smallest effective sample size the off-policy gate accepts",
    "--holdout-fraction": "share of the most recent curated rows kept for the off-policy evaluation",
    "--max-latency-ms": "exclude models whose expected latency is above this",
    "--exploration-rate": "for --policy artifact: the logging policy's exploration rate",
    "--name": "deployment name",
    "--cron": "schedule (cron expression)",
    "--timezone": "time zone of the cron schedule",
    "--port": "TCP port to listen on",
    "--max-body-bytes": "largest request body accepted (413 above)",
    "--log-level": "server log level",
    "--prompt-tokens": "prompt length of each timing run",
    "--gen-tokens": "tokens generated in each timing run",
    "--repeats": "timing runs per model",
    "--threads": "llama.cpp threads per model (default: llama.cpp's choice)",
    "query": "the query text",
    "source": "a benchmark table file, a raw data set directory (with --format) or a log directory",
    "pool": "pool TOML file",
}


def _fill_common_help(ap: argparse.ArgumentParser) -> None:
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fill_common_help(sub)
        elif not action.help:
            key = action.option_strings[0] if action.option_strings else action.dest
            action.help = _COMMON_HELP.get(key)


def _env_defaults(p: argparse.ArgumentParser, prefix: str = "ZETA_") -> None:
    """Every flag of ``p`` can also be set by an environment variable (``--memory-budget-mb`` by
    ``ZETA_MEMORY_BUDGET_MB``); a flag on the command line wins.  For services started by a supervisor
    or a container, where the environment is the configuration.  A bad value is a usage error of that
    command only (``main`` reports it), not of every command."""
    errors: list[str] = []
    for action in p._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        var = prefix + action.dest.upper()
        action.help = f"{action.help or ''} [env {var}]".strip()
        raw = os.environ.get(var)
        if raw is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if raw.strip().lower() not in ("1", "true", "yes", "0", "false", "no", ""):
                errors.append(f"${var}: expected 1/true/yes or 0/false/no, got {raw!r}")
                continue
            value: Any = raw.strip().lower() in ("1", "true", "yes")
        else:
            try:
                value = action.type(raw) if action.type else raw
            except (TypeError, ValueError):
                errors.append(f"${var}: invalid value {raw!r} for {action.option_strings[0]}")
                continue
            if action.choices is not None and value not in action.choices:
                errors.append(f"${var}: {raw!r} is not one of {', '.join(map(str, action.choices))}")
                continue
        p.set_defaults(**{action.dest: value})
    p.set_defaults(env_errors=errors)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="zeta", description="Zeta Router: a learned router for local LLMs.")
    ap.add_argument("--version", action="version", version=f"zeta {_version()}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("route", help="route one query and print the decision")
    p.add_argument("query")
    p.add_argument("--artifact", default="artifacts", help="registry root, version dir or router.json")
    p.add_argument("--pool", help="pool TOML (used for rule-based routing when there is no artifact)")
    p.add_argument("--kind", default="chat", help="chat | code | embed | reason | ...")
    p.add_argument("--cost-weight", type=float, default=None, help="λ; default: the artifact's policy")
    p.add_argument("--max-latency-ms", type=float, default=None)
    p.add_argument("--candidates", help="comma-separated model names (default: the whole pool)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_route)

    p = sub.add_parser("import-benchmark", help="convert a benchmark data set into the benchmark table")
    p.add_argument("source")
    p.add_argument("--format", required=True, choices=["routeprofile", "dcrouter"])
    p.add_argument("--out", required=True, help="FILE.csv | FILE.jsonl | FILE.parquet")
    p.set_defaults(fn=cmd_import)

    def training_args(p, default_format):
        p.add_argument("--format", default=default_format, choices=["table", "routeprofile", "dcrouter", "logs"])
        p.add_argument("--registry", default="artifacts")
        p.add_argument("--pool", default=None, help="pool TOML with capabilities, sizes, context lengths")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--test-fraction", type=float, default=0.3)
        p.add_argument("--iterations", type=int, default=300)

    p = sub.add_parser("train", help="run the training flow on a table, a raw benchmark or outcome logs")
    p.add_argument("source")
    training_args(p, "table")
    p.add_argument("--static-embedding", type=int, default=0, metavar="DIMS")
    p.add_argument("--no-promote", action="store_true", help="write the version but leave CURRENT alone")
    p.add_argument("--json", action="store_true")
    _add_progress(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("demo", help="the main job: train on the sample, route example queries")
    p.add_argument("--source", default=None, help="default: data/sample/routeprofile")
    training_args(p, "routeprofile")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("evaluate-benchmark", help="train on a benchmark table's train part, compare the router "
                                                  "with every baseline on its test part")
    p.add_argument("table", help="benchmark table (.csv/.jsonl/.parquet), or a raw data set directory with --format")
    p.add_argument("--format", default="table", choices=["table", "routeprofile", "dcrouter"])
    p.add_argument("--split-column", default=None, help="a column holding train/test (default: split by query_id)")
    p.add_argument("--test-fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bandit", action="store_true",
                   help="also train a router on a simulated uniform log of the train part only")
    p.add_argument("--iterations", type=int, default=None, help="CatBoost trees (default: the training default)")
    p.add_argument("--static-embedding", type=int, default=0, metavar="DIMS")
    p.add_argument("--json", default=None, metavar="OUT", help="write the report JSON here")
    p.add_argument("--report", default=None, metavar="DIR", help="write report.json, summary.md and curves.png here")
    p.set_defaults(fn=cmd_evaluate_benchmark)

    p = sub.add_parser("artifacts", help="list, show, promote, roll back, garbage-collect, or show the pointer "
                                         "history")
    p.add_argument("action", choices=["list", "show", "promote", "rollback", "history", "gc"],
                   help="list: versions with created_at, gate result and figure (* = CURRENT); gc: remove old "
                        "versions")
    p.add_argument("version", nargs="?", help="for show and promote")
    p.add_argument("--registry", default="artifacts", help="registry root")
    p.add_argument("--reason", help="recorded in the registry history")
    p.add_argument("--keep", type=int, default=10, help="gc: how many newest versions to keep (CURRENT and "
                                                        "its rollback target are always kept)")
    p.add_argument("--dry-run", action="store_true", help="gc: print what would be removed")
    p.add_argument("--json", action="store_true", help="list: as JSON")
    p.set_defaults(fn=cmd_artifacts)

    p = sub.add_parser("bench", help="decision latency: runtime (numpy, pure Python) vs CatBoost predict")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="one small case (a smoke run)")
    p.add_argument("--static-dims", type=int, default=0, metavar="DIMS",
                   help="add a static_embedding feature of DIMS dimensions (a seeded random int8 table of "
                        "17,816 tokens, the size of DCRouter's: latency does not depend on its values)")
    _add_progress(p)
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("simulate-logs", help="turn a full-information table into outcome logs of a logging policy")
    p.add_argument("table", help="benchmark table (.csv/.jsonl/.parquet) or a raw data set with --format")
    p.add_argument("--format", default="table", choices=["table", "routeprofile", "dcrouter"])
    p.add_argument("--policy", default="uniform", choices=["uniform", "mix", "artifact"],
                   help="mix: traffic skewed to cheap models (exact propensities; vectorized, needs --rows)")
    p.add_argument("--artifact", default="artifacts", help="for --policy artifact")
    p.add_argument("--exploration-rate", type=float, default=0.2)
    p.add_argument("--out", required=True, help="directory for the JSONL log")
    p.add_argument("--rows", type=int, default=None, help="default: every query once; above 100000 the "
                   "vectorized generator writes one file per day")
    p.add_argument("--days", type=int, default=None, help="spread --rows over this many days (default 30)")
    p.add_argument("--seed", type=int, default=0)
    _add_progress(p)
    p.set_defaults(fn=cmd_simulate)

    p = sub.add_parser("pipeline", help="one production cycle: ingest -> train -> evaluate -> promote")
    p.add_argument("--logs", required=True, help="directory (or glob) of outcome JSONL logs")
    p.add_argument("--registry", default="artifacts")
    p.add_argument("--curated", default=None, help="default: <logs>-curated beside the logs")
    p.add_argument("--pool", default=None)
    p.add_argument("--margin", type=float, default=0.0, help="required improvement (lower CI bound) to promote")
    p.add_argument("--min-ess", type=float, default=30.0)
    p.add_argument("--min-labeled-per-model", type=int, default=20,
                   help="train no quality model while any model has fewer labeled outcomes than this "
                        "(MIN_LABELED_PER_MODEL; a success without a label is not one)")
    p.add_argument("--holdout-fraction", type=float, default=0.2)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--settle-seconds", type=float, default=60.0,
                   help="a last line without newline waits this long for its writer before quarantine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-budget", type=int, default=200_000,
                   help="above this many training rows, train on a stratified sample (by model and day)")
    p.add_argument("--eval-budget", type=int, default=20_000,
                   help="above this many recent rows, evaluate off-policy on a stratified sample")
    p.add_argument("--task-runner", default=None, choices=["threads", "dask"],
                   help="where ingest units run: a thread pool here (default, or $ZETA_TASK_RUNNER), or Dask")
    p.add_argument("--workers", type=int, default=None, help="threads, or local Dask worker processes")
    p.add_argument("--dask-address", default=None, help="an existing Dask scheduler (tcp://host:8786; implies "
                   "--task-runner dask); without it, dask starts a LocalCluster for the run")
    p.add_argument("--json", action="store_true")
    _add_progress(p)
    p.set_defaults(fn=cmd_pipeline)

    p = sub.add_parser("shadow", help="replay a seeded sample of logged queries on the pool's other models "
                                      "(shadow records for the judge and for full-information rows)")
    p.add_argument("--logs", required=True, help="the outcome log directory (shadow records go to <logs>/shadow/)")
    p.add_argument("--pool", required=True, help="pool TOML with a gguf path per model")
    p.add_argument("--rate", type=float, default=None, help="share of logged decisions replayed "
                   "(default flows.shadow.DEFAULT_RATE, 0.1)")
    p.add_argument("--max", type=int, default=None, dest="max_runs", help="at most this many shadow runs")
    p.add_argument("--time-budget-s", type=float, default=None, help="start no shadow run after this many seconds")
    p.add_argument("--seed", type=int, default=0, help="the sample (and the models' sampling seed)")
    p.add_argument("--memory-budget-mb", type=float, default=None, help="unload idle models above this")
    p.add_argument("--max-tokens", type=int, default=None, help="tokens per shadow answer "
                   "(default flows.shadow.DEFAULT_MAX_TOKENS, 256)")
    p.add_argument("--threads", type=int, default=None, help="llama.cpp threads per model")
    p.add_argument("--json", action="store_true")
    _add_progress(p)
    p.set_defaults(fn=cmd_shadow)

    p = sub.add_parser("deploy", help="schedule the production loop as a Prefect deployment")
    p.add_argument("--logs", required=True, help="outcome log directory (paths are made absolute: runs start "
                                                 "elsewhere)")
    p.add_argument("--registry", default="artifacts", help="registry root")
    p.add_argument("--name", default="zeta-nightly")
    p.add_argument("--cron", default="0 3 * * *", help="the pipeline's schedule")
    p.add_argument("--pool", default=None, help="pool TOML: also deploy shadow replay (--shadow-cron) and the "
                                                "judge (after each shadow run) before the pipeline")
    p.add_argument("--shadow-cron", default="0 1 * * *", help="shadow replay's off-peak schedule (with --pool)")
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--register-only", action="store_true", help="register with the server and exit")
    p.add_argument("--work-pool", default=None, help="with --register-only: the work pool whose workers run them "
                   "(create it first: prefect work-pool create NAME --type process)")
    p.set_defaults(fn=cmd_deploy)

    p = sub.add_parser("judge", help="grade unlabeled logged answers with the pool's judge model (label lines), "
                                     "or --validate its agreement with known qualities")
    p.add_argument("--logs", default=None, help="outcome log directory: labels go to <logs>/labels/")
    p.add_argument("--validate", default=None, metavar="TABLE",
                   help="a benchmark table with a response column (or a raw data set with --format)")
    p.add_argument("--pool", required=True, help="pool TOML; its judge = \"MODEL\" names the judge")
    p.add_argument("--judge", default=None, help="the judge model (overrides the pool's judge)")
    p.add_argument("--sample-rate", type=float, default=1.0, help="share of the gradable answers to grade")
    p.add_argument("--max", type=int, default=None, help="at most this many answers (pairwise: queries); "
                   "--validate: rows (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pairwise", action="store_true", help="compare two models' answers to one query, blind, "
                   "in both orders")
    p.add_argument("--include-self", action="store_true", help="also grade the judge model's own answers")
    p.add_argument("--format", default="table", choices=["table", "routeprofile", "dcrouter"],
                   help="--validate: the table's format")
    p.add_argument("--registry", default="artifacts", help="--validate: the report goes to "
                   "<registry>/reports/judge-validation-<judge>.json")
    p.add_argument("--threads", type=int, default=None, help="llama.cpp threads of the judge model")
    p.add_argument("--json", action="store_true")
    _add_progress(p)
    p.set_defaults(fn=cmd_judge)

    p = sub.add_parser("serve", help="OpenAI-compatible server routing among the pool's llama.cpp models")
    p.add_argument("pool", help="pool TOML with a gguf path per model")
    p.add_argument("--artifact", default="artifacts", help="registry root, version dir or router.json "
                                                          "(missing: route by rules and say so)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN'")
    p.add_argument("--log-dir", default="logs", help="outcome log directory (JSONL, rotated)")
    p.add_argument("--memory-budget-mb", type=float, default=None, help="unload idle models above this")
    p.add_argument("--max-hops", type=int, default=2, help="fallbacks per request after a failure")
    p.add_argument("--cooldown-s", type=float, default=30.0, help="how long a failing model rests")
    p.add_argument("--timeout-s", type=float, default=300.0, help="limit of each attempt")
    p.add_argument("--max-body-bytes", type=int, default=4 << 20)
    p.add_argument("--header-timeout-s", type=float, default=10.0,
                   help="close a connection whose request headers are not complete within this")
    p.add_argument("--body-timeout-s", type=float, default=30.0, help="answer 408 to a body not received within this")
    p.add_argument("--keep-alive-s", type=int, default=5, help="close an idle keep-alive connection after this")
    p.add_argument("--limit-concurrency", type=int, default=None,
                   help="connections beyond this get 503 at once (default: what `ulimit -n` allows, at most 256)")
    p.add_argument("--threads", type=int, default=None, help="llama.cpp threads per model")
    p.add_argument("--reload-interval-ms", type=float, default=1000.0,
                   help="pick up newly promoted artifacts: stat the registry's CURRENT at most this often (0: off)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--otel", action="store_true",
                   help="OpenTelemetry: one span per request over OTLP/HTTP (the otel extra; also on when "
                        "OTEL_EXPORTER_OTLP_ENDPOINT is set)")
    p.add_argument("--otel-endpoint", default=None,
                   help="OTLP/HTTP endpoint of the traces (default: $OTEL_EXPORTER_OTLP_ENDPOINT, else "
                        "http://localhost:4318); implies --otel")
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("validate", help="check a pool file (keys, model files, context and memory budget, "
                                        "aliases) and, with --artifact, what that artifact can say about it")
    p.add_argument("pool", help="pool TOML file")
    p.add_argument("--artifact", default=None, help="registry root, version dir or router.json: also check that "
                   "it loads and verifies, which pool models it knows, capabilities and latency coverage")
    p.add_argument("--memory-budget-mb", type=float, default=None,
                   help="the budget zeta serve would run with (default: $ZETA_MEMORY_BUDGET_MB, else none)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("calibrate", help="measure each model's cost model on this machine, write it to POOL")
    p.add_argument("pool")
    p.add_argument("--models", default=None, help="comma-separated names (default: every model with a gguf)")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--gen-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per round (their median is the round's)")
    p.add_argument("--max-rounds", type=int, default=5,
                   help="repeat rounds until the last two agree within --tolerance, at most this many")
    p.add_argument("--tolerance", type=float, default=0.10, help="relative agreement of two rounds that counts as stable")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--dry-run", action="store_true", help="print, do not write the pool file")
    p.add_argument("--json", action="store_true")
    _add_progress(p)
    p.set_defaults(fn=cmd_calibrate)
    _fill_common_help(ap)
    _env_defaults(_subcommand(ap, "serve"))
    return ap


def _subcommand(ap: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (action,) = [a for a in ap._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices[name]


def _unreachable_api(exc: BaseException) -> bool:
    """A connection to the Prefect API failed (httpx's errors, wrapped or not, or the OS's)."""
    while exc is not None:
        if type(exc).__module__.split(".")[0] in ("httpx", "httpcore") or isinstance(exc, ConnectionError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_expected_error(exc: BaseException) -> bool:
    """An error the user can act on from its message alone (our contract errors, a missing file): the
    command prints it as one line and exits 2.  Anything else is a defect and keeps its traceback."""
    from router_runtime.errors import ZetaError

    return isinstance(exc, (ZetaError, FileNotFoundError))


def run_script(fn: Callable[[], int | None], prog: str) -> int:
    """The entry point of a ``python -m flows....`` script: ``fn``'s exit code, or, for an expected
    error, one line ``prog: error: ...`` on stderr and 2, as ``zeta`` does."""
    try:
        return fn() or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if is_expected_error(exc):
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        raise


def main(argv: list[str] | None = None) -> int:
    # Prefect's anonymous usage analytics are off unless the operator turns them on.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    ap = build_parser()
    args = ap.parse_args(argv)
    if getattr(args, "env_errors", None):
        _subcommand(ap, args.command).error("; ".join(args.env_errors))
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`zeta ... | head`): stop quietly, and keep Python's exit-time flush of
        # stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # a CLI prints a clear line, not a traceback, for expected errors
        if is_expected_error(exc):
            print(f"zeta: error: {exc}", file=sys.stderr)
            return 2
        if _unreachable_api(exc):
            url = os.environ.get("PREFECT_API_URL", "(embedded server)")
            embedded = "" if args.command == "deploy" else " or unset PREFECT_API_URL to use the embedded server"
            print(f"zeta: error: cannot reach the Prefect API at {url}: {exc}. Start it with `prefect server "
                  f"start`{embedded}.", file=sys.stderr)
            return 2
        raise
    finally:
        progress = sys.modules.get(__package__ + ".progress")
        if progress is not None:  # bars belong to this command, not to the next main() of this process
            progress.disable()


if __name__ == "__main__":
    sys.exit(main())
