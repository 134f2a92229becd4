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
from typing import Any

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
    from .pipeline import train_router

    return train_router(source=source, source_format=source_format, registry=a.registry, pool=pool,
                        seed=a.seed, test_fraction=a.test_fraction, iterations=a.iterations,
                        promote=not getattr(a, "no_promote", False))


def cmd_train(a: argparse.Namespace) -> int:
    _need_pipeline()
    summary = _train(a, a.source, a.format, a.pool)
    if a.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        print(f"artifact {summary['version']} written to {summary['path']}"
              + (" and marked CURRENT" if summary["promoted"] else ""))
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
    print(f"\n== artifact {summary['version']} -> {summary['path']} (CURRENT) ==")
    print(f"rows {summary['rows']}, CatBoost parity max |diff| {summary['parity_max_abs_diff']:.2e}")
    router = Router.load(a.registry)
    print(f"\n== decisions (cost weight {router.artifact.policy.cost_weight:g}) ==")
    for label, kind, q in DEMO_QUERIES:
        short = q if len(q) <= 70 else q[:67] + "..."
        print(f"{label:16s} {short!r}")
        _print_decision(router.decide(q, kind=kind), as_json=False, label=kind)
    line = holdout_line(summary["metrics"].get("holdout"))
    if line:
        print("\n" + line)
    return 0


def cmd_artifacts(a: argparse.Namespace) -> int:
    from router_runtime import current_version, list_versions, load_artifact

    if a.action == "list":
        cur = current_version(a.registry)
        for v in list_versions(a.registry):
            print(("* " if v == cur else "  ") + v)
        return 0
    art = load_artifact(Path(a.registry) / "versions" / a.version if a.version else a.registry)
    print(json.dumps({"version": art.version, "models": [m.name for m in art.pool],
                      "features": len(art.feature_spec.output_names), "trees": art.ensemble.n_trees,
                      "policy": art.policy.__dict__, "manifest": art.manifest}, indent=1, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="zeta", description="Zeta Router: a learned router for local LLMs.")
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
    p.add_argument("--no-promote", action="store_true", help="write the version but leave CURRENT alone")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("demo", help="the main job: train on the sample, route example queries")
    p.add_argument("--source", default=None, help="default: data/sample/routeprofile")
    training_args(p, "routeprofile")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("artifacts", help="list the registry or show one version")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("version", nargs="?")
    p.add_argument("--registry", default="artifacts")
    p.set_defaults(fn=cmd_artifacts)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a CLI prints a clear line, not a traceback, for expected errors
        from router_runtime.errors import ZetaError

        if isinstance(exc, (ZetaError, FileNotFoundError)):
            print(f"zeta: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
