"""``zeta bench``: decision latency of the runtime against the alternative a user would write, in one run.

For every case (candidates x query size x trees) it times, on the same artifact and queries:

- ``decide_compiled``: ``Router.decide`` on the compiled engine (the optional C extension), when built;
- ``decide_numpy``: ``Router.decide`` with numpy (feature extraction in Python included);
- ``decide_python``: ``Router.decide`` on the pure-Python path;
- ``catboost_predict``: the same features (the runtime's extractor), then CatBoost's own
  ``predict`` on the same model (and on the length model, as the runtime does), then the same
  utility and argmax.

The routers serve the artifact's pool with local timings (``timed_pool``), so every decision also
predicts each candidate's output length with the artifact's length model, as ``zeta serve`` does.

Queries: 64 distinct texts of the case's size, cut from the real queries of ``data/sample`` and used
in turn, so that no cache (ours, the CPU's) sees the same text twice in a row.  Each call is timed
with ``time.perf_counter_ns`` after a warm-up; p50/p99 are of those calls.  ``speedup_p50`` and
``throughput_per_s`` (calls per second on one thread) are of the fastest engine this installation
has (``engine``); the ``_numpy`` variants are always given too.  Nothing here asserts a time: the
numbers are measurements of this machine at this moment (``os.getloadavg()`` is printed beside them).

``static_dims`` > 0 adds a ``static_embedding`` feature of that many dims over ``static_vocab`` tokens
(17,816: the vocabulary of DCRouter's train queries) to the default spec of every case: the cost of the
op (issue 12).  Its table is seeded random int8 over the sample's tokens (then synthetic ones): the
latency does not depend on the values, and the real table needs the embedding model
(``flows/static_embedding.py``), which a timing run should not.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from router_runtime import FeatureSpec, Router, available_engines, default_feature_spec, load_artifact, load_pool
from router_runtime.text import ascii_lower

from .progress import bar

__all__ = ["run_bench", "DEFAULT_CASE", "format_table", "catboost_decider", "queries_of", "timing_spec"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASE = {"candidates": 4, "query_bytes": 1000, "trees": 300}
N_QUERIES = 64
STATIC_VOCAB = 17_816


def queries_of(n_bytes: int, k: int = N_QUERIES) -> list[str]:
    """``k`` distinct texts of about ``n_bytes`` UTF-8 bytes, each the real sample queries from a
    different starting point run together (cut on a character boundary)."""
    from .importers import import_routeprofile

    pool = import_routeprofile(ROOT / "data" / "sample" / "routeprofile")["query"].unique(maintain_order=True).to_list()
    out = []
    for i in range(k):
        parts, size, j = [], 0, (i * 7919) % len(pool)
        while size < n_bytes:
            parts.append(pool[j % len(pool)])
            size += len(parts[-1].encode()) + 1
            j += 1
        out.append("\n".join(parts).encode()[:n_bytes].decode("utf-8", errors="ignore"))
    return out


@dataclass
class Trained:
    artifact: Any
    catboost: Any
    length_catboost: Any = None  # the length model's CatBoost, when the artifact has one


def timing_spec(queries: Sequence[str], static_dims: int = 0, static_vocab: int = STATIC_VOCAB, seed: int = 0) -> FeatureSpec:
    """The default spec, plus (``static_dims`` > 0) a ``static_embedding`` feature whose vocab is the
    tokens of ``queries`` (most frequent first), then synthetic ones up to ``static_vocab``, and whose
    table is seeded random int8: for timing only."""
    spec = default_feature_spec()
    if not static_dims:
        return spec
    counts = Counter(t for q in queries for t in re.findall("[a-z0-9_]+", ascii_lower(q)))
    vocab = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:static_vocab]
    seen, i = set(vocab), 0
    while len(vocab) < static_vocab:
        if f"zz{i}" not in seen:
            vocab.append(f"zz{i}")
        i += 1
    rng = np.random.default_rng(seed)
    raw = rng.integers(-128, 128, size=(len(vocab), static_dims), dtype=np.int8).tobytes()
    d = spec.to_json()
    d["features"].append({"name": "static_emb", "op": "static_embedding", "params": {
        "dims": static_dims, "vocab": vocab, "table": base64.b64encode(raw).decode("ascii"),
        "scale": [float(x) for x in rng.uniform(1e-3, 1e-2, size=static_dims)],
        "sha256": hashlib.sha256(raw).hexdigest()}})
    return FeatureSpec.from_json(d)


def _train(trees: int, registry: Path, sample: Path, pool_file: Path, static_dims: int = 0,
           static_vocab: int = STATIC_VOCAB) -> Trained:
    from .export import cost_scale, export_artifact, typical_chars
    from .importers import import_routeprofile
    from .training import TrainParams, build_pool, train_quality_model

    table = import_routeprofile(sample)
    pool = build_pool(table, load_pool(pool_file))
    spec = timing_spec(table["query"].unique().to_list(), static_dims, static_vocab)
    model = train_quality_model(table, spec, pool, TrainParams(iterations=trees))
    scale = cost_scale(pool, table["model"].unique().to_list(), table["query"].str.len_chars().to_numpy())
    path = export_artifact(registry, model, pool, cost_weight=0.1, scale=scale, manifest={"bench": True},
                           chars=typical_chars(table["query"].str.len_chars().to_numpy()))
    return Trained(load_artifact(path), model.catboost_model,
                   model.length.catboost_model if model.length is not None else None)


def timed_pool(artifact: Any) -> list:
    """The artifact's pool with this machine's local timings (ms per prompt and output token), as
    ``zeta calibrate`` writes them: the serving case, where a decision also predicts each model's
    output length (the length model) for its expected latency."""
    return [m.with_serving(ms_per_prompt_token=0.5, ms_per_token=20.0) if m.can("chat") else m for m in artifact.pool]


def catboost_decider(trained: Trained, candidates: Sequence[str]) -> Callable[[str], str]:
    """What a user would write without the runtime's evaluator: the same features and utility, with
    CatBoost's own ``predict`` on the same model."""
    art, cb = trained.artifact, trained.catboost
    models = [art.model(n) for n in candidates]
    cand = [art.candidate_vector(m) for m in models]
    scale, lam = art.policy.cost_scale, art.policy.cost_weight

    lcb, lm = trained.length_catboost, art.length
    if lm is not None:
        qindex = {n: i for i, n in enumerate(art.feature_spec.output_names)}
        lcand = [lm.candidate_vector(m) for m in models]
        lslot = {n: k for k, n in enumerate(lm.candidate_inputs)}

    def decide(query: str) -> str:
        feats = art.feature_spec.extract(query)
        rows = np.array([[feats[i] if src == "q" else c[i] for src, i in art.input_plan] for c in cand])
        if lm is not None and lcb is not None:  # the same work as the runtime: every output length too
            lrows = np.array([[feats[qindex[n]] if n in qindex else c[lslot[n]] for n in lm.ensemble.inputs]
                              for c in lcand])
            np.expm1(lcb.predict(lrows))
        q = np.clip(cb.predict(rows), 0.0, 1.0)
        util = [qq - lam * m.expected_cost(len(query)) / scale for qq, m in zip(q, models)]
        return candidates[int(np.argmax(util))]

    return decide


def _time(fn: Callable[[str], Any], queries: Sequence[str], n: int) -> dict[str, float]:
    k = len(queries)
    for i in range(max(10, n // 20)):
        fn(queries[i % k])
    samples = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        q = queries[i % k]
        t0 = clock()
        fn(q)
        samples[i] = clock() - t0
    us = samples / 1000.0
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean()), "n": n}


def engines() -> list[str]:
    """The engines to time: every one this installation has (numpy and Python always)."""
    return [e for e, why_not in available_engines().items() if why_not is None]


def run_bench(*, trees: Sequence[int] = (100, 300, 1000), candidates: Sequence[int] = (2, 4, 8),
              query_bytes: Sequence[int] = (100, 1000, 2000, 20000), calls: int = 2000,
              registry: str | Path | None = None, progress: Callable[[str], None] | None = None,
              static_dims: int = 0, static_vocab: int = STATIC_VOCAB) -> dict[str, Any]:
    import tempfile

    sample = ROOT / "data" / "sample" / "routeprofile"
    pool_file = ROOT / "data" / "sample" / "pool.toml"
    registry = Path(registry or tempfile.mkdtemp(prefix="zeta-bench-"))
    trained = {t: _train(t, registry, sample, pool_file, static_dims, static_vocab) for t in sorted(set(trees))}
    chat_models = [m.name for m in next(iter(trained.values())).artifact.pool if m.can("chat")]
    texts = {qb: queries_of(qb) for qb in query_bytes}
    have = engines()
    best = have[0]
    cases = []
    steps = bar("bench (cases)", len(trees) * len(candidates) * len(query_bytes))
    for t in trees:
        art = trained[t].artifact
        routers = {f"decide_{e}": Router(art, pool=timed_pool(art), engine=e) for e in have}
        for c in candidates:
            names = chat_models[:c]
            alt = catboost_decider(trained[t], names)
            for qb in query_bytes:
                n = calls if qb <= 2000 else max(200, calls // 10)
                row: dict[str, Any] = {"trees": t, "candidates": c, "query_bytes": qb, "static_dims": static_dims}
                for label, r in routers.items():
                    row[label] = _time(lambda q, r=r: r.decide(q, candidates=names), texts[qb], n)
                row["catboost_predict"] = _time(alt, texts[qb], n)
                row["engine"] = best
                row["speedup_p50"] = row["catboost_predict"]["p50_us"] / row[f"decide_{best}"]["p50_us"]
                row["throughput_per_s"] = 1e6 / row[f"decide_{best}"]["mean_us"]
                row["speedup_p50_numpy"] = row["catboost_predict"]["p50_us"] / row["decide_numpy"]["p50_us"]
                row["throughput_per_s_numpy"] = 1e6 / row["decide_numpy"]["mean_us"]
                cases.append(row)
                steps.advance(note=f"trees={t} candidates={c} query={qb}B")
                if progress:
                    progress(f"trees={t} candidates={c} query={qb}B: {best} p50 {row[f'decide_{best}']['p50_us']:.1f} us")
    steps.close()
    default = next((r for r in cases if all(r[k] == v for k, v in DEFAULT_CASE.items())), None)
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}, "engines": have,
                           "cases": cases, "static_embedding": {"dims": static_dims, "vocab": static_vocab}
                           if static_dims else None}
    if default is not None:
        out.update({k: default[k] for k in SUMMARY_KEYS if k in default})
        out["default_case"] = DEFAULT_CASE
    return out


SUMMARY_KEYS = ("decide_compiled", "decide_numpy", "decide_python", "catboost_predict", "engine", "speedup_p50",
                "throughput_per_s", "speedup_p50_numpy", "throughput_per_s_numpy")


def format_table(result: dict[str, Any]) -> str:
    labels = [e for e in ("compiled", "numpy", "python") if e in result.get("engines", ("numpy", "python"))]
    head = f"{'trees':>5} {'cands':>5} {'query':>6} | " + " | ".join(
        f"{e + ' p50':>12} {'p99':>7}" for e in labels + ["catboost"]) + f" | {'speedup':>7} {'decisions/s':>11}"
    lines = [head, "-" * len(head)]
    for r in result["cases"]:
        cells = [r[f"decide_{e}"] for e in labels] + [r["catboost_predict"]]
        lines.append(f"{r['trees']:>5} {r['candidates']:>5} {r['query_bytes']:>5}B | "
                     + " | ".join(f"{c['p50_us']:>12.1f} {c['p99_us']:>7.1f}" for c in cells)
                     + f" | {r['speedup_p50']:>6.1f}x {r['throughput_per_s']:>11,.0f}")
    m = result["machine"]
    best = result["cases"][0]["engine"] if result["cases"] else labels[0]
    lines.append(f"(microseconds per decision over {N_QUERIES} distinct queries; speedup = catboost p50 / {best} p50, "
                 f"decisions/s on one thread with {best}; {m['cpus']} CPUs, load average {m['loadavg'][0]:.2f})")
    if result.get("static_embedding"):
        se = result["static_embedding"]
        lines.append(f"(every case's spec: the default one plus a static_embedding feature of {se['dims']} dims "
                     f"over {se['vocab']:,} tokens)")
    return "\n".join(lines)
