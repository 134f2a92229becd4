"""Simulated-judge study for issue 10: how close does a router trained on judge-labelled bandit logs
(plus shadow replay) get to the full-information router?

Run from /work/scratch10 with the project on the path (a snapshot of /work/main at a known commit):

    PYTHONPATH=/work/scratch10/zeta_snapshot /work/main/.venv/bin/python study.py grid   [--datasets ..] [--seeds ..]
    PYTHONPATH=... python study.py tune    # inner validation inside the train parts (chooses the recipe)
    PYTHONPATH=... python study.py report  # Markdown tables from results/*.jsonl

Everything is seeded: split seed s (as ``zeta evaluate-benchmark --seed s``), and every random draw of
the simulation comes from ``np.random.default_rng([s, dataset_index, stream])``.  Results are appended
to results/<experiment>.jsonl (one JSON object per (dataset, seed, agreement, shadow rate, variant)),
so an interrupted run keeps what it finished and a rerun skips what is already there.

Simulation, per train part (exactly the project's split and quality model):
- logging policy: uniform over the K models (propensity 1/K), one logged answer per train query;
- judge: grades on L levels.  dcrouter (0/1 truth): L = 2, the judge returns the true label with
  probability a, the other one otherwise (a flip).  routeprofile (quality in [0, 1], 93 % of it 0 or
  1): L = 5 levels {0, .25, .5, .75, 1} (a 1..5 rubric mapped to [0, 1], as ``zeta judge`` does);
  with probability a the judge returns the true quality rounded to the nearest level, otherwise one of
  the other L-1 levels uniformly.  So a is exactly the judge's exact-agreement rate in both sets, the
  rule is the flip when L = 2, and E[judge | q] = c1 * level(q) + c0 is affine in the truth with
  c1 = a - (1-a)/(L-1), c0 = (1-a) * sum(levels)/(L-1): the label can be de-biased with an
  estimated a.
- agreement estimate: the judge grades n_val = 200 (query, model) answers of known quality (what
  ``zeta judge --validate`` does on a benchmark table); a_hat = share of exact agreement;
- shadow: a share r of the train queries (a seeded random subset, nested: 5 % inside 10 %) is
  replayed on every other model, and all those answers are judged too;
- the same uniform draws are used for every a (a judge that is right at a = 0.75 is right at 0.85),
  so differences between a values are not sampling noise of the judge.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from flows.baselines import fit_knn, fixed_choices, task_predictions
from flows.benchmark_eval import fit_router, split_benchmark
from flows.evaluation import QualityMatrix, predicted_matrix, quality_matrix
from flows.importers import import_benchmark
from flows.metrics import aiq, nondecreasing_hull, sweep_curve
from flows.training import TrainParams, split_query_ids

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATA = Path(os.environ.get("ZETA_DATA", "/work/shared/data"))
DATASETS = {"routeprofile": (DATA / "routeprofile", "routeprofile", 5),
            "dcrouter": (DATA / "llmrouter_dcrouter", "dcrouter", 2)}
SEEDS = (0, 1, 2, 3, 4)
AGREEMENTS = (0.75, 0.85, 0.95)
SHADOW_RATES = (0.0, 0.05, 0.10)
N_VAL = 200
THREADS = 1


# ------------------------------------------------------------------------------------------ data

@dataclass
class Part:
    """A full-information part (train or test) as aligned arrays plus the long table."""
    table: pl.DataFrame          # sorted by (query_id, model), complete: n * K rows
    m: QualityMatrix             # quality_matrix of the same part (query_id order)
    models: list[str]

    @property
    def n(self) -> int:
        return len(self.m.query_ids)


def _part(table: pl.DataFrame, models: list[str]) -> Part:
    t = table.filter(pl.col("model").is_in(models)).sort("query_id", "model")
    m = quality_matrix(t, models)
    if len(t) != len(m.query_ids) * len(models):
        raise SystemExit("study needs full information: every query answered by every model")
    return Part(t, m, models)


_TABLES: dict[str, pl.DataFrame] = {}


def load(name: str) -> pl.DataFrame:
    if name not in _TABLES:
        src, fmt, _ = DATASETS[name]
        _TABLES[name] = import_benchmark(src, fmt)
    return _TABLES[name]


def split(name: str, seed: int, inner: bool = False) -> tuple[Part, Part]:
    """The test split of ``zeta evaluate-benchmark --seed seed``; with ``inner`` the train part is split
    again (70/30, seed 1000 + seed) into an inner train and an inner validation part."""
    table = load(name)
    train, test, _ = split_benchmark(table, None, 0.3, seed)
    if inner:
        val_ids = split_query_ids(train["query_id"].to_list(), 0.3, 1000 + seed)
        is_val = pl.col("query_id").is_in(sorted(val_ids))
        train, test = train.filter(~is_val), train.filter(is_val)
        seen = set(train["query"].unique().to_list())
        test = test.filter(~pl.col("query").is_in(sorted(seen)))
    models = sorted(train["model"].unique().to_list())
    return _part(train, models), _part(test, models)


# ------------------------------------------------------------------------------------ simulation

def levels_for(name: str) -> np.ndarray:
    return np.linspace(0.0, 1.0, DATASETS[name][2])


@dataclass
class Draws:
    logged: np.ndarray      # (n,) logged model index per train query
    shadow_rank: np.ndarray  # (n,) position in the seeded shadow order (shadowed if < r * n)
    u: np.ndarray           # (n, K) uniform: the judge is right iff u < a
    alt: np.ndarray         # (n, K) which wrong level (0 .. L-2) when it is wrong
    val_cells: np.ndarray   # (N_VAL,) flat cell indices of the validation answers
    val_u: np.ndarray
    val_alt: np.ndarray


def draw(name: str, seed: int, n: int, k: int, stream: int = 0) -> Draws:
    ds = list(DATASETS).index(name)
    rng = np.random.default_rng([seed, ds, stream])
    L = DATASETS[name][2]
    logged = rng.integers(0, k, size=n)
    shadow_rank = np.argsort(rng.permutation(n))
    u = rng.random((n, k))
    alt = rng.integers(0, L - 1, size=(n, k))
    val_cells = rng.choice(n * k, size=min(N_VAL, n * k), replace=False)
    return Draws(logged, shadow_rank, u, alt, val_cells, rng.random(len(val_cells)),
                 rng.integers(0, L - 1, size=len(val_cells)))


def quantize(q: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest level (ties to the lower one)."""
    return np.abs(q[..., None] - levels).argmin(axis=-1)


def judge(q: np.ndarray, u: np.ndarray, alt: np.ndarray, a: float, levels: np.ndarray) -> np.ndarray:
    """Judge scores in [0, 1]: the true level with probability a, else one of the other levels."""
    true_idx = quantize(q, levels)
    wrong_idx = alt + (alt >= true_idx)          # skip the true level
    return levels[np.where(u < a, true_idx, wrong_idx)]


def estimate_agreement(train: Part, d: Draws, a: float, levels: np.ndarray) -> float:
    q = train.m.quality.reshape(-1)[d.val_cells]
    j = judge(q, d.val_u, d.val_alt, a, levels)
    return float(np.mean(quantize(j, levels) == quantize(q, levels)))


def debias(j: np.ndarray, a_hat: float, levels: np.ndarray) -> np.ndarray:
    """Unbiased estimate of level(q) from a judge score: invert E[j | q] = c1 * level(q) + c0."""
    L = len(levels)
    c1 = a_hat - (1 - a_hat) / (L - 1)
    c0 = (1 - a_hat) * levels.sum() / (L - 1)
    return (j - c0) / max(c1, 1e-3)


# ------------------------------------------------------------------------------------ variants

@dataclass(frozen=True)
class Variant:
    """How labelled rows become training rows, and the training parameters."""
    name: str
    bandit_weight: str = "ips"       # "ips": 1/propensity (= K), "one": 1
    shadow_weight: float = 1.0       # weight of every row of a shadowed query, in units of 1
    logged_in_shadow: str = "shadow"  # the logged row of a shadowed query: "shadow" weight or "bandit" weight
    label: str = "judge"             # "judge" | "debias" | "true" (oracle labels, for reference)
    depth: int | None = None
    learning_rate: float | None = None
    iterations: int = 300
    l2_leaf_reg: float = 3.0
    identity_weight: float = 3.0
    unknown_model_share: float = 0.25
    select: str = "random"           # which queries are shadowed: "random" | "margin" (smallest predicted
                                     # top-2 quality gap of a first model trained on the bandit rows)

    def params(self, seed: int) -> TrainParams:
        return TrainParams(iterations=self.iterations, depth=self.depth, learning_rate=self.learning_rate,
                           l2_leaf_reg=self.l2_leaf_reg, identity_weight=self.identity_weight, seed=seed,
                           unknown_model_share=self.unknown_model_share,
                           thread_count=THREADS)


def labelled_rows(train: Part, d: Draws, a: float, r: float, v: Variant, levels: np.ndarray,
                  shadow_rank: np.ndarray | None = None) -> tuple[pl.DataFrame, dict]:
    n, k = train.n, len(train.models)
    shadowed = (d.shadow_rank if shadow_rank is None else shadow_rank) < int(round(r * n))
    mask = np.zeros((n, k), dtype=bool)
    mask[np.arange(n), d.logged] = True
    mask[shadowed] = True
    is_logged = np.zeros((n, k), dtype=bool)
    is_logged[np.arange(n), d.logged] = True
    j = judge(train.m.quality, d.u, d.alt, a, levels)
    a_hat = estimate_agreement(train, d, a, levels)
    if v.label == "judge":
        y = j
    elif v.label == "debias":
        y = debias(j, a_hat, levels)
    elif v.label == "true":
        y = train.m.quality
    else:
        raise ValueError(v.label)
    wb = float(k) if v.bandit_weight == "ips" else 1.0
    w = np.full((n, k), wb)
    w[shadowed] = v.shadow_weight
    if v.logged_in_shadow == "bandit":
        w[shadowed & is_logged] = wb
    flat = np.flatnonzero(mask.reshape(-1))
    rows = train.table[flat.tolist()].with_columns(
        quality=pl.Series(y.reshape(-1)[flat]), weight=pl.Series(w.reshape(-1)[flat]))
    info = {"rows": len(rows), "shadow_queries": int(shadowed.sum()), "a_hat": a_hat}
    return rows.select("query_id", "query", "model", "quality", "cost", "weight"), info


# ------------------------------------------------------------------------------------ evaluation

@dataclass
class Bench:
    """One (dataset, seed[, inner]) split: parts, baseline curves, the full-information router."""
    name: str
    seed: int
    train: Part
    test: Part
    baselines: dict[str, np.ndarray]
    full_curve: np.ndarray
    scale: float


def baseline_curves(train: Part, test: Part, scale: float) -> dict[str, np.ndarray]:
    """The baselines of ``zeta evaluate-benchmark`` (they fix AIQ's largest cost)."""
    te, tr, models = test.m, train.m, train.models
    picks = fixed_choices(train.table, models)
    point = lambda j: np.array([[te.cost[:, j].mean(), te.quality[:, j].mean()]])
    curves = {"single_models": np.vstack([point(j) for j in range(len(models))]),
              "best_single": point(models.index(picks["best_single"])),
              "cheapest": point(models.index(picks["cheapest"])),
              "random": np.array([[te.cost.mean(), te.quality.mean()]]),
              "oracle": sweep_curve(te.quality, te.cost, te.quality, te.cost, scale)}
    kq, kc = fit_knn(tr, scale).predict(te.queries)
    curves["knn"] = sweep_curve(kq, kc, te.quality, te.cost, scale)
    task_of = dict(test.table.select("query_id", "task").unique("query_id").iter_rows())
    tp = task_predictions(train.table, te, [task_of.get(q) for q in te.query_ids])
    if tp is not None:
        curves["task"] = sweep_curve(tp[0], tp[1], te.quality, te.cost, scale)
    return curves


def router_curve(art, test: Part) -> np.ndarray:
    pq, pc = predicted_matrix(art, test.m)
    return sweep_curve(pq, pc, test.m.quality, test.m.cost, art.policy.cost_scale)


def make_bench(name: str, seed: int, inner: bool = False) -> Bench:
    train, test = split(name, seed, inner)
    art, _ = fit_router(train.table, TrainParams(seed=seed, thread_count=THREADS))
    scale = art.policy.cost_scale
    return Bench(name, seed, train, test, baseline_curves(train, test, scale), router_curve(art, test), scale)


def scores(b: Bench, curve: np.ndarray) -> dict[str, float]:
    """AIQ of a variant and of the full-information router, on the same set of compared curves."""
    s = aiq({**b.baselines, "router": b.full_curve, "variant": curve})
    ref = aiq({**b.baselines, "router": b.full_curve})["router"]
    gain = lambda x: (x - s["single_models"]) / (s["oracle"] - s["single_models"])
    return {"aiq": s["variant"], "aiq_full": s["router"], "aiq_full_ref": ref, "gap": s["variant"] - s["router"],
            "gain": gain(s["variant"]), "gain_full": gain(s["router"]),
            "aiq_task": s.get("task"), "aiq_knn": s["knn"], "aiq_best_single": s["best_single"]}


def run_variant(b: Bench, d: Draws, a: float, r: float, v: Variant) -> dict:
    levels = levels_for(b.name)
    t0 = time.perf_counter()
    rank = None
    if v.select == "margin" and r > 0:
        # shadow where a first router, trained on the bandit rows alone, is least sure which model is best
        first, _ = fit_router(labelled_rows(b.train, d, a, 0.0, v, levels)[0], v.params(b.seed))
        pq, _ = predicted_matrix(first, b.train.m)
        top2 = np.sort(pq, axis=1)[:, -2:]
        rank = np.argsort(np.argsort(top2[:, 1] - top2[:, 0], kind="stable"), kind="stable")
    elif v.select not in ("random", "margin"):
        raise SystemExit(f"unknown shadow selection {v.select!r}")
    rows, info = labelled_rows(b.train, d, a, r, v, levels, rank)
    art, params = fit_router(rows, v.params(b.seed))
    out = scores(b, router_curve(art, b.test))
    return {"dataset": b.name, "seed": b.seed, "a": a, "r": r, "variant": v.name, **info, **out,
            "depth": params.depth, "learning_rate": params.learning_rate, "seconds": round(time.perf_counter() - t0, 2)}


# ------------------------------------------------------------------------------------ experiments

V_TODAY = Variant("ips_shadow1")  # bandit rows 1/propensity, every row of a shadowed query weight 1
NAMED = {"ips_shadow1": "", "ips_shadow1_true": "lab=true", "ips_shadow1_debias": "lab=debias",
         "ips_shadowK": "sw=K", "ips_shadow2K": "sw=2K", "one_shadow1": "bw=one"}


def parse_variant(spec: str, k: int) -> Variant:
    """A variant from ``key=value`` pairs separated by commas (or a name of ``NAMED``):
    bw=ips|one (bandit weight), sw=<float>|K|2K (shadow row weight), lis=shadow|bandit (weight of the
    logged row of a shadowed query), lab=judge|debias|true, d, lr, it, l2, idw (identity weight)."""
    body = NAMED.get(spec, spec)
    v = Variant(spec)
    for tok in filter(None, body.split(",")):
        key, val = tok.split("=")
        if key == "bw":
            v = replace(v, bandit_weight=val)
        elif key == "sw":
            v = replace(v, shadow_weight=float(val[:-1] or 1) * k if val.endswith("K") else float(val))
        elif key == "lis":
            v = replace(v, logged_in_shadow=val)
        elif key == "lab":
            v = replace(v, label=val)
        elif key == "d":
            v = replace(v, depth=int(val))
        elif key == "lr":
            v = replace(v, learning_rate=float(val))
        elif key == "it":
            v = replace(v, iterations=int(val))
        elif key == "l2":
            v = replace(v, l2_leaf_reg=float(val))
        elif key == "ums":
            v = replace(v, unknown_model_share=float(val))
        elif key == "sel":
            v = replace(v, select=val)
        elif key == "idw":
            v = replace(v, identity_weight=float(val))
        else:
            raise SystemExit(f"unknown variant key {key!r} in {spec!r}")
    return v


def done_keys(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        r = json.loads(line)
        keys.add((r["dataset"], r["seed"], r["a"], r["r"], r["variant"]))
    return keys


def experiment(exp: str, datasets, seeds, agreements, rates, variants, inner: bool = False) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{exp}.jsonl"
    for name in datasets:
        for seed in seeds:
            have = done_keys(path)  # re-read: another process may have finished this seed meanwhile
            todo = [(a, r, v) for a in agreements for r in rates for v in variants
                    if (name, seed, a, r, v) not in have]
            if not todo:
                continue
            t0 = time.perf_counter()
            b = make_bench(name, seed, inner)
            print(f"[{exp}] {name} seed {seed}: {b.train.n} train / {b.test.n} test queries, full router "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
            d = draw(name, seed, b.train.n, len(b.train.models))
            for a, r, vname in todo:
                v = parse_variant(vname, len(b.train.models))
                res = run_variant(b, d, a, r, v)
                res["inner"] = inner
                with open(path, "a") as f:
                    f.write(json.dumps(res) + "\n")
                print(f"  a={a} r={r} {vname}: gap {res['gap']:+.4f} (aiq {res['aiq']:.4f}, full {res['aiq_full']:.4f}, "
                      f"rows {res['rows']}, a_hat {res['a_hat']:.3f}, {res['seconds']}s)", flush=True)


# ------------------------------------------------------------------------------------ report

def table_md(path: Path, variant: str, title: str) -> str:
    rows = [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []
    df = pl.DataFrame(rows).filter(pl.col("variant") == variant) if rows else None
    if df is None or df.is_empty():
        return f"(no results for {variant} in {path.name})\n"
    out = [f"### {title}", "", "AIQ(variant) − AIQ(full information), mean ± std over seeds (n seeds); "
           "full-information AIQ in the header.", ""]
    for name in df["dataset"].unique(maintain_order=True).to_list():
        sub = df.filter(pl.col("dataset") == name)
        col = "aiq_full_ref" if "aiq_full_ref" in sub.columns else "aiq_full"
        full = sub.unique(["seed"]).select(pl.col(col).alias("aiq_full"))
        rates = sorted(sub["r"].unique().to_list())
        out.append(f"**{name}** (full-information AIQ {full['aiq_full'].mean():.4f} ± {full['aiq_full'].std():.4f})")
        out.append("")
        out.append("| a \\ r | " + " | ".join(f"{r:.0%}" for r in rates) + " |")
        out.append("|---|" + "---|" * len(rates))
        for a in sorted(sub["a"].unique().to_list()):
            cells = []
            for r in rates:
                g = sub.filter((pl.col("a") == a) & (pl.col("r") == r))["gap"]
                cells.append("–" if len(g) == 0 else f"{g.mean():+.4f} ± {(g.std() or 0.0):.4f} ({len(g)})")
            out.append(f"| {a} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def _rows(name: str) -> pl.DataFrame | None:
    p = RESULTS / f"{name}.jsonl"
    if not p.exists():
        return None
    return pl.read_ndjson(p).unique(["dataset", "seed", "a", "r", "variant"], keep="first", maintain_order=True)


def _ms(x: pl.Series) -> str:
    return f"{x.mean():+.4f} ± {(x.std() or 0.0):.4f}" + ("" if len(x) == 5 else f" (n={len(x)})")


def combined_md(df: pl.DataFrame, variants: list[str], labels: dict[str, str]) -> str:
    """One table per dataset: rows (a, r), one column per variant, cells gap mean ± std over seeds."""
    out = []
    for name in df["dataset"].unique(maintain_order=True).to_list():
        sub = df.filter(pl.col("dataset") == name)
        col = "aiq_full_ref" if "aiq_full_ref" in sub.columns else "aiq_full"
        full = sub.unique(["seed"])[col]
        gains = sub.unique(["seed"])["gain_full"]
        out += [f"**{name}**: full-information AIQ {full.mean():.4f} ± {full.std() or 0.0:.4f} "
                f"(normalized AIQ gain {gains.mean():.3f}), {len(full)} seeds", "",
                "| a | r | " + " | ".join(labels.get(v, v) for v in variants) + " |",
                "|---|---|" + "---|" * len(variants)]
        for a in sorted(sub["a"].unique().to_list()):
            for r in sorted(sub["r"].unique().to_list()):
                cells = []
                for v in variants:
                    g = sub.filter((pl.col("a") == a) & (pl.col("r") == r) & (pl.col("variant") == v))["gap"]
                    cells.append("–" if len(g) == 0 else _ms(g))
                out.append(f"| {a} | {r:.0%} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def paired_md(df: pl.DataFrame, base: str) -> str:
    """Per (dataset, a, r, variant): gap, and the paired difference to ``base`` on the same seeds."""
    b = df.filter(pl.col("variant") == base).select("dataset", "seed", "a", "r", pl.col("gap").alias("_b"))
    j = df.join(b, on=["dataset", "seed", "a", "r"]).with_columns(d=pl.col("gap") - pl.col("_b"))
    agg = (j.group_by("dataset", "a", "r", "variant", maintain_order=True)
           .agg(pl.col("gap").mean().alias("g"), pl.col("gap").std().alias("gs"), pl.col("d").mean().alias("d"),
                pl.col("d").std().alias("ds"), (pl.col("d") > 0).sum().alias("w"), pl.len().alias("n"))
           .sort("dataset", "a", "r", "d", descending=[False, False, False, True]))
    out = [f"| data set | a | r | variant | gap to full information | paired vs {base} | seeds better |",
           "|---|---|---|---|---|---|---|"]
    for t in agg.iter_rows(named=True):
        out.append(f"| {t['dataset']} | {t['a']} | {t['r']:.0%} | `{t['variant']}` | {t['g']:+.4f} ± {t['gs'] or 0:.4f} "
                   f"| {t['d']:+.4f} ± {t['ds'] or 0:.4f} | {t['w']}/{t['n']} |")
    return "\n".join(out) + "\n"


FINAL_VARIANTS = ["ips_shadow1", "sw=K,d=6", "sw=K,d=6,sel=margin"]
FINAL_LABELS = {"ips_shadow1": "baseline: logged 1/p, shadow 1, project params",
                "sw=K,d=6": "recipe A: shadow weight K, depth 6",
                "sw=K,d=6,sel=margin": "recipe B: A + shadow the least certain queries"}


def report() -> str:
    parts = []
    final = _rows("final")
    if final is not None:
        parts += ["## Main table (test parts, true labels): AIQ − full-information AIQ", "",
                  combined_md(final, FINAL_VARIANTS, FINAL_LABELS),
                  "Paired differences at r = 10 % (same seed, same log, same judge draws):", "",
                  paired_md(final.filter(pl.col("r") == 0.1), "ips_shadow1")]
    rp10 = _rows("final_rp10")
    if rp10 is not None:
        parts += ["## routeprofile, 10 seeds at a = 0.85 (its test parts are small: 154-194 queries)", "",
                  paired_md(rp10, "ips_shadow1")]
    dec = _rows("decompose")
    if dec is not None:
        parts += ["## Where the gap comes from (a = 0.85, test parts)", "", paired_md(dec, "ips_shadow1")]
    tune = _rows("tune")
    if tune is not None:
        parts += ["## Inner validation (inside the train parts; chooses the recipe)", "", paired_md(tune, "ips_shadow1")]
    return "\n".join(parts)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["grid", "tune", "report", "custom"])
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    ap.add_argument("--agreements", nargs="*", type=float, default=list(AGREEMENTS))
    ap.add_argument("--rates", nargs="*", type=float, default=list(SHADOW_RATES))
    ap.add_argument("--variants", nargs="*", default=[V_TODAY.name])
    ap.add_argument("--exp", default=None)
    ap.add_argument("--inner", action="store_true")
    a = ap.parse_args(argv)
    if a.what == "report":
        print(report())
        return
    exp = a.exp or ("tune" if a.what == "tune" else "grid")
    inner = a.inner or a.what == "tune"
    experiment(exp, a.datasets, a.seeds, a.agreements, a.rates, a.variants, inner)


if __name__ == "__main__":
    main()
