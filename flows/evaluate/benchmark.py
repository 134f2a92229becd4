"""``zeta evaluate-benchmark``: train on the train part of a benchmark table, compare the router with
every baseline on its test part, and write what a user can trust and look at.

Plain functions (``load_benchmark``, ``split_benchmark``, ``fit_router``, ``evaluate_routers``,
``write_report``) and a Prefect flow (``evaluate_benchmark``) that runs them as tasks and publishes
the Markdown summary as a Prefect artifact.  Metrics are defined in ``flows.evaluate.curves``, baselines in
``flows.evaluate.baselines``; the router's predictions come from the runtime ``Router`` itself
(``flows.evaluate.holdout.predicted_matrix``), so what is measured is what ships.

Honesty rules: the pipeline's one split (``flows.sources.split_table``: a test query whose exact text
also occurs in the train part is dropped from the test part and counted); the bandit router sees only a simulated
uniform log of the train part (one revealed model per query, weight 1/propensity).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from router_runtime.artifact import Artifact, parse_router
from router_runtime.errors import ContractError, MissingDependencyError
from router_runtime.features import default_feature_spec

from .. import sources
from .._prefect import step
from ..export import DEFAULT_COST_WEIGHT, cost_scale, router_document
from ..logs import logs_to_table, read_outcome_logs, simulate_logs
from ..training import TrainParams, build_pool, train_quality_model
from .baselines import fit_knn, fit_task_router, fixed_choices
from .curves import (COST_WEIGHTS, aiq, apgr, cost_at_quality, cpt, normalized_gain, quality_at_cost,
                      strong_share_curve, sweep_curve)
from .holdout import QualityMatrix, predicted_matrix, quality_matrix
from .per_task import per_task_table

__all__ = ["load_benchmark", "split_benchmark", "fit_router", "evaluate_routers", "summary_markdown",
           "per_task_markdown", "plot_curves", "write_report", "evaluate_benchmark", "run_evaluation", "ROUTERS"]

# Report keys, in display order; "task" is null without a task column, "router_bandit" only with --bandit.
ROUTERS = ("router", "router_bandit", "knn", "task", "single_models", "best_single", "cheapest", "random",
           "oracle")
Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def load_benchmark(source: str | os.PathLike, fmt: str = "table") -> tuple[pl.DataFrame, str]:
    """A validated benchmark table and the statement of its cost model (``flows.sources.load_table``)."""
    return sources.load_table(str(source), fmt)


def split_benchmark(table: pl.DataFrame, split_column: str | None = None, test_fraction: float = 0.3,
                    seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """The pipeline's split (``flows.sources.split_table``); both parts must hold queries."""
    train, test, info = sources.split_table(table, split_column, test_fraction, seed)
    if train.is_empty() or test.is_empty():
        raise ContractError("split", f"empty {'train' if train.is_empty() else 'test'} part ({info['how']})")
    return train, test, info


def fit_router(train: pl.DataFrame, params: TrainParams, *,
               cost_weight: float = DEFAULT_COST_WEIGHT) -> tuple[Artifact, TrainParams]:
    """Train the quality model on ``train``: the artifact the runtime would load, and the parameters used."""
    pool = build_pool(train)
    model = train_quality_model(train, default_feature_spec(), pool, params)
    models = train["model"].unique().to_list()
    scale = cost_scale(pool, models, train["query"].str.len_chars().to_numpy())
    doc = dict(router_document(model, pool, cost_weight=cost_weight, scale=scale), version="evaluation")
    return parse_router(json.loads(json.dumps(doc))), model.params


def bandit_table(train: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The train part as a simulated production log: a uniform policy reveals one model per query."""
    with tempfile.TemporaryDirectory() as d:
        path = simulate_logs(train, d, seed=seed)
        return logs_to_table(read_outcome_logs(path).records)


def _point(m: QualityMatrix, col: int) -> np.ndarray:
    return np.array([[m.cost[:, col].mean(), m.quality[:, col].mean()]])


def evaluate_routers(train: pl.DataFrame, test: pl.DataFrame, routers: dict[str, Artifact], *,
                     progress: Progress = _quiet) -> dict[str, Any]:
    """Curves of the routers (runtime predictions) and of every baseline on ``test``, and their metrics."""
    models = sorted(train["model"].unique().to_list())
    te, tr = quality_matrix(test, models), quality_matrix(train, models)
    scale = next(iter(routers.values())).policy.cost_scale
    picks = fixed_choices(train, models)
    curves: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}  # each router's predicted quality, for the two-model metrics
    predicted: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # (quality, cost), for the per-task table
    for name, art in routers.items():
        progress(f"predicting with {name} through the runtime ({len(te.queries)} queries x {len(models)} models)")
        pq, pc = predicted_matrix(art, te)
        curves[name] = sweep_curve(pq, pc, te.quality, te.cost, scale)
        scores[name], predicted[name] = pq, (pq, pc)
    progress(f"kNN: choosing k by leave-one-out AIQ on {len(tr.queries)} train queries")
    knn = fit_knn(tr, scale)
    kq, kc = knn.predict(te.queries)
    curves["knn"] = sweep_curve(kq, kc, te.quality, te.cost, scale)
    scores["knn"] = kq
    task_of = dict(test.select("query_id", "task").unique("query_id").iter_rows()) if "task" in test.columns else {}
    tp = fit_task_router(train, te, [task_of.get(q) for q in te.query_ids])
    per_task = None
    if tp is not None:
        curves["task"] = sweep_curve(tp.quality, tp.cost, te.quality, te.cost, scale)
        scores["task"] = tp.quality
        main = "router" if "router" in routers else next(iter(routers))  # at the cost weight it ships with
        per_task = per_task_table(te, tp.tasks, {"router": predicted[main], "knn": (kq, kc),
                                                 "task": (tp.quality, tp.cost)},
                                  {"best_single": picks["best_single"]}, routers[main].policy.cost_weight, scale,
                                  inferred_rows=tp.inferred_rows)
    curves["single_models"] = np.vstack([_point(te, j) for j in range(len(models))])
    curves["best_single"] = _point(te, models.index(picks["best_single"]))
    curves["cheapest"] = _point(te, models.index(picks["cheapest"]))
    curves["random"] = np.array([[te.cost.mean(), te.quality.mean()]])
    curves["oracle"] = sweep_curve(te.quality, te.cost, te.quality, te.cost, scale)
    scores["oracle"] = te.quality

    aiqs = aiq(curves)
    bx, by = curves["best_single"][0]
    keys = [k for k in ROUTERS if k in curves]
    q_at = {k: quality_at_cost(curves[k], bx) for k in keys}
    c_at = {k: cost_at_quality(curves[k], by) for k in keys}
    learned = [k for k in ("router", "router_bandit", "knn", "task") if k in curves]
    gains_aiq = {k: normalized_gain(aiqs[k], aiqs["single_models"], aiqs["oracle"]) for k in learned}
    gains_q = {k: normalized_gain(q_at[k], by, q_at["oracle"]) for k in learned}
    shown = [k for k in ROUTERS if k != "router_bandit" or k in curves]  # "task" stays, as null
    report: dict[str, Any] = {
        "n_train": tr.quality.shape[0], "n_test": te.quality.shape[0], "models": models,
        "aiq": {k: aiqs.get(k) for k in shown},
        "quality_at_best_single_cost": {k: q_at.get(k) for k in shown},
        "cost_at_best_single_quality": {k: c_at.get(k) for k in shown},
        "normalized_gain_aiq": gains_aiq["router"], "normalized_gain_quality": gains_q["router"],
        "normalized_gains": {"aiq": gains_aiq, "quality_at_best_single_cost": gains_q},
        "best_single_model": picks["best_single"], "cheapest_model": picks["cheapest"],
        "best_single_point": {"cost": float(bx), "quality": float(by)},
        "knn": {"k": knn.k, "leave_one_out_aiq": knn.loo_aiq, "hash_buckets": knn.train_vectors.shape[1]},
        "task_router": None if tp is None else {"test_queries_with_inferred_task": tp.inferred},
        "per_task": per_task,
        "cost_scale": scale, "cost_weights": list(COST_WEIGHTS),
        "curves": {k: v.tolist() for k, v in curves.items()},
        "two_models": _two_model_metrics(te, scores, picks) if len(models) == 2 else None,
        "quality_model_trees": {name: art.ensemble.n_trees for name, art in routers.items()},
    }
    return report


def _two_model_metrics(te: QualityMatrix, scores: dict[str, np.ndarray], picks: dict[str, str]) -> dict[str, Any]:
    """APGR and CPT(50%), CPT(80%) of each router for the pair (weak = cheaper on train)."""
    weak = te.models.index(picks["cheapest"])
    strong = 1 - weak
    wq, sq = te.quality[:, weak], te.quality[:, strong]
    out: dict[str, Any] = {"weak": te.models[weak], "strong": te.models[strong],
                           "weak_quality": float(wq.mean()), "strong_quality": float(sq.mean())}
    ranked = {k: v[:, strong] - v[:, weak] for k, v in scores.items()}
    ranked["random"] = np.zeros(len(wq))
    for k, s in ranked.items():
        c = strong_share_curve(s, wq, sq)
        out[k] = {"apgr": apgr(c, wq.mean(), sq.mean()), "cpt50": cpt(c, wq.mean(), sq.mean(), 0.5),
                  "cpt80": cpt(c, wq.mean(), sq.mean(), 0.8)}
    return out


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and (abs(v) < 1e-3 and v != 0):
        return f"{v:.3g}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def summary_markdown(r: dict[str, Any]) -> str:
    """The report as Markdown: what was compared, then one row per router."""
    lines = [
        f"# Routing evaluation: {r.get('source', 'benchmark table')}",
        "",
        f"- split: {r['split']['how']}; {r['n_train']} train / {r['n_test']} test queries"
        f" ({r['split']['test_queries_dropped_as_seen_in_train']} test queries dropped: their text is in train)",
        f"- models ({len(r['models'])}): {', '.join(r['models'])}",
        f"- best single model (on train): {r['best_single_model']}; cheapest: {r['cheapest_model']}",
        f"- kNN: k = {r['knn']['k']} (leave-one-out AIQ on train); cost scale {r['cost_scale']:.4g}",
        f"- cost model: {r['cost_model']}",
    ]
    for name, p in r.get("train_params", {}).items():
        lines.append(f"- {name}: CatBoost, {p['iterations']} oblivious trees of depth {p['depth']}, "
                     f"learning rate {p['learning_rate']}, identity weight {p['identity_weight']}")
    if r.get("task_router") and r["task_router"]["test_queries_with_inferred_task"]:
        lines.append(f"- per-task router: {r['task_router']['test_queries_with_inferred_task']} test queries have no "
                     "task; it was inferred as the most similar train task centroid (hashed bag of words)")
    if r.get("bandit"):
        b = r["bandit"]
        lines.append(f"- bandit: router_bandit trained only on a simulated uniform log of the train part "
                     f"({b['logged_rows']} logged outcomes, propensity {b['propensity']:.4g}, weight 1/propensity)")
    lines += ["", "| router | AIQ | normalized AIQ gain | quality at best single's cost | normalized quality gain "
              "| cost to reach best single's quality |", "|---|---|---|---|---|---|"]
    ga, gq = r["normalized_gains"]["aiq"], r["normalized_gains"]["quality_at_best_single_cost"]
    for k in r["aiq"]:
        if r["aiq"][k] is None:
            continue
        lines.append(f"| {k} | {_fmt(r['aiq'][k])} | {_fmt(ga.get(k), 3)} | {_fmt(r['quality_at_best_single_cost'][k])} "
                     f"| {_fmt(gq.get(k), 3)} | {_fmt(r['cost_at_best_single_quality'][k])} |")
    if r.get("two_models"):
        t = r["two_models"]
        lines += ["", f"Two models: weak {t['weak']} ({t['weak_quality']:.4f}), strong {t['strong']} "
                      f"({t['strong_quality']:.4f}); shares are of calls sent to the strong model.", "",
                  "| router | APGR | CPT(50%) | CPT(80%) |", "|---|---|---|---|"]
        for k, v in t.items():
            if isinstance(v, dict):
                lines.append(f"| {k} | {_fmt(v['apgr'], 3)} | {_fmt(v['cpt50'], 3)} | {_fmt(v['cpt80'], 3)} |")
    if r.get("per_task"):
        lines += per_task_markdown(r["per_task"])
    lines += ["", "AIQ: RouterBench's area under the non-decreasing convex hull of each cost-quality curve "
                  "(λ sweep), extended flat to the largest cost among all curves, divided by that cost. "
                  "A one-point curve (best single, cheapest, random) is credited only from its own cost on, so the "
                  "most expensive one scores 0. Normalized gains: (x − single models) / (oracle − single models) "
                  "for AIQ, (x − best single) / (oracle − best single) for quality at the best single model's cost.",
              ""]
    return "\n".join(lines)


def _shares(choices: dict[str, float], top: int = 3) -> str:
    ranked = sorted(choices.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{m} {v:.0%}" for m, v in ranked[:top])
    return text + (f", +{len(ranked) - top} more" if len(ranked) > top else "")


def per_task_markdown(pt: dict[str, Any]) -> list[str]:
    """The per-task table (``flows.evaluate.per_task``) as two Markdown tables: quality @ cost, then the gains."""
    rows = [*pt["tasks"], {"task": "**all**", "task_model": "", **pt["all"]}]
    lines = ["", f"Per task, at the router's cost weight λ = {pt['cost_weight']:g} (quality @ mean cost on the "
                 "task's test queries):", "",
             "| task | test queries | router | per-task | kNN | best single | oracle |",
             "|---|---|---|---|---|---|---|"]
    for b in rows:
        cells = [f"{b['quality'][k]:.3f} @ {_fmt(b['cost'][k], 3)}" for k in ("router", "task", "knn", "best_single",
                                                                             "oracle")]
        n = f"{b['n_test']} ({b['n_inferred_task']} inferred)" if b.get("n_inferred_task") else f"{b['n_test']}"
        lines.append(f"| {b['task']} | {n} | {' | '.join(cells)} |")
    lines += ["", "Where the router's gain over per-task comes from (U = quality − λ·cost/cost_scale; definitions "
                  "below):", "",
              "| task | router's choices | per-task choice | router differs | gain over per-task | within-task gain "
              "| task-level gain | router over best constant | kNN within-task gain | oracle over best constant |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for b in rows:
        w, o = b["within_task_gain"], b["over_best_constant"]
        lines.append(f"| {b['task']} | {_shares(b['router_choices'])} | {b['task_model']} "
                     f"| {b['router_differs_from_task_share']:.0%} | {b['gain_over_task']:+.4f} | {w['router']:+.4f} "
                     f"| {b['task_level_gain']:+.4f} | {o['router']:+.4f} | {w['knn']:+.4f} | {o['oracle']:+.4f} |")
    lines += ["", pt["definition"]]
    return lines


def plot_curves(r: dict[str, Any], path: str | os.PathLike) -> None:
    """Every curve (points and non-decreasing hull) on the cost-quality plane, as a PNG."""
    import matplotlib.pyplot as plt

    fig = curves_figure(r)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def curves_figure(r: dict[str, Any]):
    """The figure of ``plot_curves``: the legend beside the axes (it hides no point), the models' names
    placed so that no two labels overlap, the x axis in the cost model's unit."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("the report's plot needs matplotlib (catboost installs it): "
                                     "pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..importers import cost_unit
    from .curves import nondecreasing_hull

    # A fixed layout, not tight/constrained: label placement below measures the final positions.
    fig = plt.figure(figsize=(12, 6))
    ax = fig.add_axes((0.07, 0.1, 0.63, 0.8))
    styles = {"router": "C0", "router_bandit": "C9", "knn": "C1", "task": "C2", "oracle": "C3",
              "single_models": "C7", "best_single": "k", "cheapest": "C5", "random": "C4"}
    for k, pts in r["curves"].items():
        p = np.asarray(pts)
        h = nondecreasing_hull(p)
        label = f"{k} (AIQ {r['aiq'][k]:.3f})"
        if len(p) == 1:
            ax.scatter(p[:, 0], p[:, 1], color=styles.get(k), marker="*" if k == "best_single" else "D", s=90,
                       label=label, zorder=5)
            continue
        ax.scatter(p[:, 0], p[:, 1], color=styles.get(k), s=10, alpha=0.5)
        ax.plot(h[:, 0], h[:, 1], color=styles.get(k), label=label, lw=1.8 if k.startswith("router") else 1.2)
    names = [ax.annotate(name, (c, q), fontsize=7, alpha=0.85, xytext=(4, 3), textcoords="offset points",
                         arrowprops={"arrowstyle": "-", "lw": 0.4, "alpha": 0.5, "shrinkA": 0, "shrinkB": 2})
             for name, (c, q) in zip(r["models"], r["curves"]["single_models"])]
    ax.axvline(r["best_single_point"]["cost"], color="k", ls=":", lw=0.8)
    ax.set_xlabel(f"mean cost per query ({cost_unit(r['cost_model'])})")
    ax.set_ylabel("mean quality")
    ax.set_title(f"cost-quality curves on {r['n_test']} test queries (λ sweep; lines: non-decreasing hulls)",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.grid(alpha=0.3)
    _separate_labels(fig, ax, names)
    return fig


def _separate_labels(fig, ax, labels) -> None:
    """Move each label to the nearest offset (above, below, then left of its point) where its box
    overlaps no other text and stays inside the axes; a thin line ties a moved label to its point."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    fixed = [t.get_window_extent(renderer) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text() and t not in labels]
    placed: list[Any] = []
    step = 9  # points: one 7-point line and a gap
    offsets = ([(4, 3)] + [(4, 3 + sign * n * step) for n in range(1, 12) for sign in (1, -1)]
               + [(-4, 3 + sign * n * step) for n in range(12) for sign in (1, -1)])
    for label in sorted(labels, key=lambda t: t.xy[1]):
        for dx, dy in offsets:
            label.set_position((dx, dy))
            label.set_horizontalalignment("left" if dx > 0 else "right")
            box = label.get_window_extent(renderer)
            if (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
                    and not any(box.overlaps(b) for b in placed + fixed)):
                break
        placed.append(label.get_window_extent(renderer))


def write_report(r: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, str]:
    """report.json, summary.md and curves.png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "summary": out / "summary.md", "plot": out / "curves.png"}
    paths["json"].write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
    paths["summary"].write_text(summary_markdown(r), encoding="utf-8")
    plot_curves(r, paths["plot"])
    return {k: str(v) for k, v in paths.items()}


def run_evaluation(table: pl.DataFrame, *, cost_model: str, split_column: str | None = None,
                   test_fraction: float = 0.3, seed: int = 0, bandit: bool = False,
                   params: TrainParams | None = None, progress: Progress = _quiet) -> dict[str, Any]:
    """The whole evaluation as plain function calls (the flow runs the same steps as tasks)."""
    t0 = time.perf_counter()
    params = params or TrainParams(seed=seed)
    train, test, split = split_benchmark(table, split_column, test_fraction, seed)
    progress(f"split: {train['query_id'].n_unique()} train / {test['query_id'].n_unique()} test queries ({split['how']})")
    trained = {"router": _fit(train, params, progress, "router")}
    logged = None
    if bandit:
        logged = bandit_table(train, seed)
        trained["router_bandit"] = _fit(logged, params, progress, "router_bandit")
    r = evaluate_routers(train, test, {k: v[0] for k, v in trained.items()}, progress=progress)
    return _finish(r, split, cost_model, seed, trained, logged, time.perf_counter() - t0)


def _fit(train: pl.DataFrame, params: TrainParams, progress: Progress, name: str) -> tuple[Artifact, TrainParams]:
    progress(f"training {name}: CatBoost on {len(train)} (query, model) rows, {params.iterations} trees")
    return fit_router(train, params)


def _finish(r: dict[str, Any], split: dict[str, Any], cost_model: str, seed: int,
            trained: dict[str, tuple[Artifact, TrainParams]], logged: pl.DataFrame | None,
            seconds: float) -> dict[str, Any]:
    r.update(split=split, cost_model=cost_model, seed=seed, seconds=round(seconds, 1),
             train_params={k: p.to_json() for k, (_, p) in trained.items()})
    if logged is not None:
        r["bandit"] = {"logged_rows": len(logged), "propensity": float(logged["propensity"][0]),
                       "aiq_gap_to_full_information": r["aiq"]["router_bandit"] - r["aiq"]["router"]}
    return r


# ------------------------------------------------------------------------------------------- flow



@step
def load_table(source: str, source_format: str) -> tuple[pl.DataFrame, str]:
    return load_benchmark(source, source_format)


@step
def split_table(table: pl.DataFrame, split_column: str | None, test_fraction: float, seed: int):
    return split_benchmark(table, split_column, test_fraction, seed)


@step
def train_router_model(train: pl.DataFrame, params: TrainParams, name: str) -> tuple[Artifact, TrainParams]:
    return _fit(train, params, get_run_logger().info, name)


@step
def simulate_bandit_log(train: pl.DataFrame, seed: int) -> pl.DataFrame:
    return bandit_table(train, seed)


@step
def compare_routers(train: pl.DataFrame, test: pl.DataFrame, routers: dict[str, Artifact]) -> dict[str, Any]:
    return evaluate_routers(train, test, routers, progress=get_run_logger().info)


@step
def write_outputs(report: dict[str, Any], json_out: str | None, report_dir: str | None) -> dict[str, str]:
    paths = write_report(report, report_dir) if report_dir else {}
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        paths["json_out"] = str(json_out)
    return paths


@flow(name="zeta-evaluate-benchmark")
def evaluate_benchmark(source: str, source_format: str = "table", split_column: str | None = None,
                       test_fraction: float = 0.3, seed: int = 0, bandit: bool = False,
                       json_out: str | None = None, report_dir: str | None = None,
                       iterations: int | None = None, static_embedding: int = 0) -> dict[str, Any]:
    """Router vs baselines on the test part of a benchmark table; report JSON, Markdown and plot."""
    log = get_run_logger()
    t0 = time.perf_counter()
    params = TrainParams(seed=seed, static_embedding=static_embedding, **({"iterations": iterations} if iterations else {}))
    table, cost_model = load_table(source, source_format)
    train, test, split = split_table(table, split_column, test_fraction, seed)
    log.info("split: %d train / %d test queries (%s; %d test queries dropped as seen in train)",
             train["query_id"].n_unique(), test["query_id"].n_unique(), split["how"],
             split["test_queries_dropped_as_seen_in_train"])
    trained = {"router": train_router_model(train, params, "router")}
    logged = None
    if bandit:
        logged = simulate_bandit_log(train, seed)
        trained["router_bandit"] = train_router_model(logged, params, "router_bandit")
    report = compare_routers(train, test, {k: v[0] for k, v in trained.items()})
    report = _finish(report, split, cost_model, seed, trained, logged, time.perf_counter() - t0)
    report["source"] = str(source)
    report["outputs"] = write_outputs(report, json_out, report_dir)
    create_markdown_artifact(markdown=summary_markdown(report), key="zeta-benchmark-evaluation",
                             description=f"router vs baselines on {source}")
    log.info("router AIQ %.4f (normalized gain %s); kNN %.4f; oracle %.4f", report["aiq"]["router"],
             _fmt(report["normalized_gain_aiq"], 3), report["aiq"]["knn"], report["aiq"]["oracle"])
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Router vs baselines on a benchmark table (Prefect flow).")
    ap.add_argument("source")
    ap.add_argument("--format", default="table", choices=["table", "routeprofile", "dcrouter"])
    ap.add_argument("--split-column")
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bandit", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--report")
    a = ap.parse_args(argv)
    r = evaluate_benchmark(source=a.source, source_format=a.format, split_column=a.split_column,
                           test_fraction=a.test_fraction, seed=a.seed, bandit=a.bandit, json_out=a.json,
                           report_dir=a.report)
    print(summary_markdown(r))


if __name__ == "__main__":
    import sys

    from ..cli import run_script

    sys.exit(run_script(main, "python -m flows.evaluate.benchmark"))
