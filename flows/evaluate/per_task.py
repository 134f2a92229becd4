"""Where a router's gain comes from, task by task: the per-task table of ``zeta evaluate-benchmark`` and
the demo's within-task decisions.  numpy only; definitions here, once.

Every router is looked at in one operating point, the cost weight λ the router artifact ships with, and
chooses per test query by the runtime's rank rule (``flows.evaluate.holdout.route_at``).  On a task ``t``
(the data's task family; a test query without one gets the per-task baseline's inferred task) with test
queries ``Q_t``, and the true utility ``u = quality − λ · cost / cost_scale`` (what the router maximizes;
at λ = 0 it is the quality):

- ``U_X(t)`` = mean quality − λ · mean cost / cost_scale of router ``X``'s choices on ``Q_t`` (router, knn,
  per-task, best single, oracle), beside that mean quality and mean cost;
- ``X``'s **main choice** ``m_X(t)``: the model ``X`` chose most often on ``Q_t`` (ties: name order);
- **gain over per-task** = ``U_router(t) − U_task(t)``, split exactly into
  **within-task gain** = ``U_router(t) − U_{m_router(t)}(t)``: what the router's query-to-query choices add
  over sending the whole task to its own main choice, 0 when it sends the task to one model (so per-task
  routing's is 0 by definition), and
  **task-level gain** = ``U_{m_router(t)}(t) − U_task(t)``: its main choice against the per-task choice;
- **best constant** ``c_t``: the one model with the highest ``U`` on ``Q_t`` (chosen in hindsight on the
  test queries; ties: cheaper, then name); **over best constant** = ``U_X(t) − U_{c_t}(t)``, above 0 only
  by choosing different models for different queries of the task (no single model can); the oracle's
  is the headroom a per-query router has inside the task;
- **differs from per-task**: the share of ``Q_t`` whose router choice is not the per-task choice.

The "all" row is the same over every test query, each query measured against its own task's main choice
and best constant (so it is the query-weighted mean of the task rows).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .holdout import QualityMatrix, quality_matrix, route_at

__all__ = ["per_task_table", "held_out_decisions", "within_task_examples", "PER_TASK_DEFINITION"]

PER_TASK_DEFINITION = (
    "Per task, at the router's cost weight λ, U = mean quality − λ·mean cost/cost_scale of the choices on the "
    "task's test queries. Gain over per-task = U(router) − U(per-task) = within-task gain + task-level gain, "
    "where within-task gain = U(router) − U(the router's main choice: the model it chose most often on the task, "
    "sent all of the task's queries), 0 when the router sends the task to one model, as per-task routing always "
    "does; task-level gain = U(router's main choice) − U(per-task). Over best constant = U(x) − U(the single "
    "model best on the task's test queries, in hindsight): above 0 only by choosing different models for "
    "different queries of the task; the oracle's is the headroom within the task. 'Router differs' is the share "
    "of the task's test queries where the router's choice is not the per-task choice.")


def _utility(quality: float, cost: float, lam: float, scale: float) -> float:
    # from the means, so exact ties in quality and cost stay ties (a mean of per-query utilities would not)
    return quality - lam * cost / scale


def _best_constant(q: np.ndarray, c: np.ndarray, models: Sequence[str], lam: float, scale: float) -> int:
    """The column with the highest mean utility over the rows of ``q``/``c`` (ties: lower mean cost, then name)."""
    mq, mc = q.mean(axis=0), c.mean(axis=0)
    return min(range(len(models)), key=lambda j: (-_utility(mq[j], mc[j], lam, scale), mc[j], models[j]))


def _main_choice(cols: np.ndarray, n_models: int) -> int:
    """The most frequent column (ties: the lower index, i.e. name order)."""
    return int(np.bincount(cols, minlength=n_models).argmax())


def _block(te: QualityMatrix, rows: np.ndarray, choices: Mapping[str, np.ndarray],
           constants: Mapping[str, np.ndarray], lam: float, scale: float) -> dict[str, Any]:
    models = te.models
    q, c = te.quality[rows], te.cost[rows]
    r = np.arange(len(rows))

    def point(cols: np.ndarray) -> tuple[float, float, float]:
        mq, mc = float(q[r, cols[rows]].mean()), float(c[r, cols[rows]].mean())
        return mq, mc, _utility(mq, mc, lam, scale)

    at = {k: point(v) for k, v in choices.items()}
    const = {k: point(v)[2] for k, v in constants.items()}  # "best", and "main:<router>" per router
    u = {k: v[2] for k, v in at.items()}
    counts = np.bincount(choices["router"][rows], minlength=len(models))
    routers = [k for k in ("router", "knn", "task", "oracle") if k in choices]
    return {
        "n_test": int(len(rows)),
        "router_choices": {models[j]: float(counts[j] / len(rows)) for j in np.flatnonzero(counts)},
        "quality": {k: v[0] for k, v in at.items()},
        "cost": {k: v[1] for k, v in at.items()},
        "utility": u,
        "router_differs_from_task_share": float(np.mean(choices["router"][rows] != choices["task"][rows])),
        "gain_over_task": u["router"] - u["task"],
        "within_task_gain": {k: u[k] - const[f"main:{k}"] for k in routers},
        "task_level_gain": const["main:router"] - u["task"],
        "over_best_constant": {k: u[k] - const["best"] for k in routers},
    }


def per_task_table(te: QualityMatrix, tasks: Sequence[str], predictions: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   fixed: Mapping[str, str], cost_weight: float, cost_scale: float,
                   inferred_rows: Sequence[int] = ()) -> dict[str, Any]:
    """The per-task table (see the module docstring) of routers given by their predicted (quality, cost)
    matrices on ``te``: ``predictions`` must hold "router" and "task" (the per-task baseline), may hold
    "knn"; ``fixed`` names fixed choices (e.g. {"best_single": model}).  The oracle is added here.
    ``inferred_rows``: the test rows whose task was inferred, counted per task as ``n_inferred_task``."""
    if len(tasks) != len(te.queries):
        raise ValueError(f"{len(tasks)} task labels for {len(te.queries)} test queries")
    n, k = len(te.queries), len(te.models)
    choices = {name: route_at(pq, pc, cost_weight, cost_scale) for name, (pq, pc) in predictions.items()}
    choices.update({name: np.full(n, te.models.index(m)) for name, m in fixed.items()})
    choices["oracle"] = route_at(te.quality, te.cost, cost_weight, cost_scale)
    labels = np.asarray(list(tasks), dtype=object)
    rows_of = {t: np.flatnonzero(labels == t) for t in sorted(set(labels.tolist()))}
    routers = [name for name in ("router", "knn", "task", "oracle") if name in choices]
    constants = {key: np.empty(n, dtype=np.int64) for key in ["best", *(f"main:{r}" for r in routers)]}
    for rows in rows_of.values():  # each task's own constants, so the "all" row compares query by query
        constants["best"][rows] = _best_constant(te.quality[rows], te.cost[rows], te.models, cost_weight, cost_scale)
        for r in routers:
            constants[f"main:{r}"][rows] = _main_choice(choices[r][rows], k)
    inferred = np.zeros(n, dtype=bool)
    inferred[np.asarray(inferred_rows, dtype=np.int64)] = True
    per = []
    for t, rows in rows_of.items():
        first = rows[0]
        per.append({"task": t, "n_inferred_task": int(inferred[rows].sum()),
                    "task_model": te.models[int(choices["task"][first])],
                    "router_main_model": te.models[int(constants["main:router"][first])],
                    "best_constant_model": te.models[int(constants["best"][first])],
                    **_block(te, rows, choices, constants, cost_weight, cost_scale)})
    return {"cost_weight": float(cost_weight), "cost_scale": float(cost_scale), "definition": PER_TASK_DEFINITION,
            "tasks": per, "all": _block(te, np.arange(n), choices, constants, cost_weight, cost_scale)}


def held_out_decisions(router: Any, test: Any) -> list[dict[str, Any]]:
    """The runtime ``router``'s decision on each query of a full-information ``test`` table (Polars, with a
    ``task`` column), among the table's models at the router's own cost weight: task, query, chosen model,
    predicted quality and utility of each model, and the true quality of the choice."""
    m = quality_matrix(test)
    task_of = dict(test.select("query_id", "task").unique("query_id").iter_rows()) if "task" in test.columns else {}
    out = []
    for i, (qid, query) in enumerate(zip(m.query_ids, m.queries)):
        d = router.decide(query, candidates=m.models)
        predicted = {s.model: s.quality for s in d.scores if s.quality is not None}
        utility = {s.model: s.utility for s in d.scores if s.quality is not None}
        true = float(m.quality[i, m.models.index(d.model)]) if d.model in m.models else None
        out.append({"task": task_of.get(qid), "query": query, "model": d.model, "predicted": predicted,
                    "utility": utility, "true_quality": true})
    return out


def within_task_examples(decisions: Sequence[Mapping[str, Any]], per_task: int = 3) -> dict[str, Any]:
    """Held-out decisions that differ from query to query within one task, for the demo.

    ``decisions``: one mapping per held-out query with "task", "query", "model" (the chosen model) and
    "predicted" (model -> predicted quality).  Returns the task whose queries the router spread over the
    most models (ties: more queries, then name) with up to ``per_task`` of its queries, each with a
    different chosen model (most frequent choice first), or ``{"task": None, ...}`` and the reason when
    every task's queries went to one model.
    """
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for d in decisions:
        if d.get("task") is not None and d.get("model") is not None:
            by_task.setdefault(str(d["task"]), []).append(d)
    if not by_task:
        return {"task": None, "examples": [], "reason": "no held-out query has a task and a chosen model"}

    def spread(t: str) -> tuple[int, int, str]:
        return (-len({d["model"] for d in by_task[t]}), -len(by_task[t]), t)

    best = min(by_task, key=spread)
    ds = by_task[best]
    counts: dict[str, int] = {}
    for d in ds:
        counts[d["model"]] = counts.get(d["model"], 0) + 1
    if len(counts) < 2:
        return {"task": None, "examples": [], "n_tasks": len(by_task),
                "reason": f"the router sent every held-out query of each of the {len(by_task)} tasks to one "
                          "model: on this data it routes by task, there is no within-task decision to show"}
    order = sorted(counts, key=lambda m: (-counts[m], m))
    examples = [next(d for d in ds if d["model"] == m) for m in order[:per_task]]
    return {"task": best, "n_queries": len(ds), "choices": {m: counts[m] for m in order}, "examples": examples}
