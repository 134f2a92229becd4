"""``zeta bench``: decision latency of the runtime against the alternative a user would write, in one run.

For every case (candidates x query size x trees) it times, on the same artifact and queries:

- ``decide_numpy``: ``Router.decide`` with numpy (feature extraction included);
- ``decide_python``: ``Router.decide`` on the pure-Python path;
- ``catboost_predict``: the same features (the runtime's extractor), then CatBoost's own
  ``predict`` on the same model, then the same utility and argmax.

Each is timed per call with ``time.perf_counter_ns`` after a warm-up; p50/p99 are of those calls,
throughput is calls per second of the numpy path on one thread.  Nothing here asserts a time: the
numbers are measurements of this machine at this moment (print ``os.getloadavg()`` beside them).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from router_runtime import Router, default_feature_spec, load_artifact, load_pool

__all__ = ["run_bench", "DEFAULT_CASE", "format_table", "catboost_decider"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASE = {"candidates": 4, "query_bytes": 1000, "trees": 300}
_SEED_TEXT = (
    "You are given a list of integers and a target value. Write a Python function that returns the indices "
    "of the two numbers that add up to the target, and explain its time complexity. What is 17 * 23? Who "
    "wrote the novel War and Peace, and in which year was it first published? Translate into French: the "
    "router picks the cheapest model that answers well. "
)


def query_of(n_bytes: int) -> str:
    text = _SEED_TEXT * (n_bytes // len(_SEED_TEXT) + 1)
    return text[:n_bytes]


@dataclass
class Trained:
    artifact: Any
    catboost: Any


def _train(trees: int, registry: Path, sample: Path, pool_file: Path) -> Trained:
    from .export import cost_scale, export_artifact
    from .importers import import_routeprofile
    from .training import TrainParams, build_pool, train_quality_model

    table = import_routeprofile(sample)
    pool = build_pool(table, load_pool(pool_file))
    model = train_quality_model(table, default_feature_spec(), pool, TrainParams(iterations=trees))
    scale = cost_scale(pool, table["model"].unique().to_list(), table["query"].str.len_chars().to_numpy())
    path = export_artifact(registry, model, pool, cost_weight=0.1, scale=scale, manifest={"bench": True})
    return Trained(load_artifact(path), model.catboost_model)


def catboost_decider(trained: Trained, candidates: Sequence[str]) -> Callable[[str], str]:
    """What a user would write without the runtime's evaluator: the same features and utility, with
    CatBoost's own ``predict`` on the same model."""
    art, cb = trained.artifact, trained.catboost
    models = [art.model(n) for n in candidates]
    cand = [art.candidate_vector(m) for m in models]
    scale, lam = art.policy.cost_scale, art.policy.cost_weight

    def decide(query: str) -> str:
        feats = art.feature_spec.extract(query)
        rows = np.array([[feats[i] if src == "q" else c[i] for src, i in art.input_plan] for c in cand])
        q = np.clip(cb.predict(rows), 0.0, 1.0)
        util = [qq - lam * m.expected_cost(len(query)) / scale for qq, m in zip(q, models)]
        return candidates[int(np.argmax(util))]

    return decide


def _time(fn: Callable[[], Any], n: int) -> dict[str, float]:
    for _ in range(max(10, n // 20)):
        fn()
    samples = np.empty(n)
    clock = time.perf_counter_ns
    for k in range(n):
        t0 = clock()
        fn()
        samples[k] = clock() - t0
    us = samples / 1000.0
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean()), "n": n}


def run_bench(*, trees: Sequence[int] = (100, 300, 1000), candidates: Sequence[int] = (2, 4, 8),
              query_bytes: Sequence[int] = (100, 1000, 2000, 20000), calls: int = 2000,
              registry: str | Path | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    import tempfile

    sample = ROOT / "data" / "sample" / "routeprofile"
    pool_file = ROOT / "data" / "sample" / "pool.toml"
    registry = Path(registry or tempfile.mkdtemp(prefix="zeta-bench-"))
    trained = {t: _train(t, registry, sample, pool_file) for t in sorted(set(trees))}
    chat_models = [m.name for m in next(iter(trained.values())).artifact.pool if m.can("chat")]
    cases = []
    for t in trees:
        routers = {"decide_numpy": Router(trained[t].artifact, use_numpy=True),
                   "decide_python": Router(trained[t].artifact, use_numpy=False)}
        for c in candidates:
            names = chat_models[:c]
            alt = catboost_decider(trained[t], names)
            for qb in query_bytes:
                q = query_of(qb)
                n = calls if qb <= 2000 else max(200, calls // 10)
                row = {"trees": t, "candidates": c, "query_bytes": qb}
                for label, r in routers.items():
                    row[label] = _time(lambda r=r: r.decide(q, candidates=names), n)
                row["catboost_predict"] = _time(lambda: alt(q), n)
                row["speedup_p50"] = row["catboost_predict"]["p50_us"] / row["decide_numpy"]["p50_us"]
                row["throughput_per_s"] = 1e6 / row["decide_numpy"]["mean_us"]
                cases.append(row)
                if progress:
                    progress(f"trees={t} candidates={c} query={qb}B: numpy p50 {row['decide_numpy']['p50_us']:.1f} us")
    default = next((r for r in cases if all(r[k] == v for k, v in DEFAULT_CASE.items())), None)
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}, "cases": cases}
    if default is not None:
        out.update({k: default[k] for k in ("decide_numpy", "decide_python", "catboost_predict",
                                             "speedup_p50", "throughput_per_s")})
        out["default_case"] = DEFAULT_CASE
    return out


def format_table(result: dict[str, Any]) -> str:
    head = (f"{'trees':>5} {'cands':>5} {'query':>6} | {'numpy p50':>9} {'p99':>7} | {'python p50':>10} {'p99':>7} | "
            f"{'catboost p50':>12} {'p99':>7} | {'speedup':>7} {'decisions/s':>11}")
    lines = [head, "-" * len(head)]
    for r in result["cases"]:
        n, p, c = r["decide_numpy"], r["decide_python"], r["catboost_predict"]
        lines.append(f"{r['trees']:>5} {r['candidates']:>5} {r['query_bytes']:>5}B | {n['p50_us']:>9.1f} "
                     f"{n['p99_us']:>7.1f} | {p['p50_us']:>10.1f} {p['p99_us']:>7.1f} | {c['p50_us']:>12.1f} "
                     f"{c['p99_us']:>7.1f} | {r['speedup_p50']:>6.1f}x {r['throughput_per_s']:>11,.0f}")
    m = result["machine"]
    lines.append(f"(microseconds per decision; speedup = catboost p50 / numpy p50; {m['cpus']} CPUs, "
                 f"load average {m['loadavg'][0]:.2f})")
    return "\n".join(lines)
