"""Where a router's gain comes from, task by task: the per-task table of ``zeta evaluate-benchmark`` and
the demo's within-task decisions.  numpy only; definitions here, once.

Every router is looked at in one operating point, the cost weight λ the router artifact ships with, and
chooses per test query by the runtime's rank rule (``flows.evaluate.holdout.route_at``).  On a task ``t``
(the data's task family; a test query without one gets the per-task baseline's inferred task) with test
queries ``Q_t``, and the true utility ``u(q, m) = quality − λ · cost / cost_scale`` (what the router
maximizes; at λ = 0 it is the quality):

- ``U_X(t)``: mean over ``Q_t`` of ``u(q, X(q))`` for router ``X`` (router, knn, per-task, best single,
  oracle), beside its mean true quality and cost;
- best constant ``c_t``: the one model with the highest mean ``u`` over ``Q_t`` (chosen in hindsight on the
  test queries; ties: cheaper, then name), the best any router that sends the whole task to one model
  can do;
- **gain over per-task** = ``U_router(t) − U_task(t)``, split exactly into
  **within-task gain** = ``U_router(t) − U_{c_t}(t)`` (above 0 only by choosing different models for
  different queries of the task: a constant choice can at most tie it) and
  **constant-choice gain** = ``U_{c_t}(t) − U_task(t)`` (≥ 0: what a better single choice for the task
  would have given; per-task routing gains nothing within a task by definition, its within-task gain
  is ``−`` this);
- **differs from per-task**: the share of ``Q_t`` whose router choice is not the per-task choice.

The "all" row is the same over every test query (means weighted by the tasks' query counts).  The
oracle's within-task gain is the headroom a per-query router has inside the task.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .holdout import QualityMatrix, quality_matrix, route_at

__all__ = ["per_task_table", "held_out_decisions", "within_task_examples", "PER_TASK_DEFINITION"]

PER_TASK_DEFINITION = (
    "Per task, at the router's cost weight λ, with true utility u = quality − λ·cost/cost_scale: gain over "
    "per-task = U(router) − U(per-task); within-task gain = U(router) − U(best constant), where the best constant "
    "is the single model with the highest mean u on the task's test queries (so only choosing different models "
    "for different queries of one task can make it positive); constant-choice gain = U(best constant) − "
    "U(per-task) ≥ 0; the two add up to the gain over per-task. 'differs' is the share of the task's test "
    "queries where the router's choice is not the per-task choice.")


def _utility(quality: float, cost: float, lam: float, scale: float) -> float:
    # from the means, so exact ties in quality and cost stay ties (a mean of per-query utilities would not)
    return quality - lam * cost / scale


def _best_constant(q: np.ndarray, c: np.ndarray, models: Sequence[str], lam: float, scale: float) -> int:
    """The column with the highest mean utility over the rows of ``q``/``c`` (ties: lower mean cost, then name)."""
    mq, mc = q.mean(axis=0), c.mean(axis=0)
    return min(range(len(models)), key=lambda j: (-_utility(mq[j], mc[j], lam, scale), mc[j], models[j]))


def _block(te: QualityMatrix, rows: np.ndarray, choices: Mapping[str, np.ndarray], task_choice: np.ndarray,
           lam: float, scale: float) -> dict[str, Any]:
    models = te.models
    q, c = te.quality[rows], te.cost[rows]
    r = np.arange(len(rows))
    picked = {k: v[rows] for k, v in choices.items()}  # "best_constant" is per task, set by the caller
    mq = {k: float(q[r, v].mean()) for k, v in picked.items()}
    mc = {k: float(c[r, v].mean()) for k, v in picked.items()}
    uu = {k: _utility(mq[k], mc[k], lam, scale) for k in picked}
    counts = np.bincount(picked["router"], minlength=len(models))
    return {
        "n_test": int(len(rows)),
        "router_choices": {models[j]: float(counts[j] / len(rows)) for j in np.flatnonzero(counts)},
        "quality": mq,
        "cost": mc,
        "utility": uu,
        "router_differs_from_task_share": float(np.mean(picked["router"] != task_choice[rows])),
        "gain_over_task": uu["router"] - uu["task"],
        "within_task_gain": {k: uu[k] - uu["best_constant"] for k in picked if k != "best_constant"},
        "constant_choice_gain": uu["best_constant"] - uu["task"],
    }


def per_task_table(te: QualityMatrix, tasks: Sequence[str], predictions: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   fixed: Mapping[str, str], cost_weight: float, cost_scale: float) -> dict[str, Any]:
    """The per-task table (see the module docstring) of routers given by their predicted (quality, cost)
    matrices on ``te``: ``predictions`` must hold "router" and "task" (the per-task baseline), may hold
    "knn"; ``fixed`` names fixed choices (e.g. {"best_single": model}).  The oracle is added here."""
    if len(tasks) != len(te.queries):
        raise ValueError(f"{len(tasks)} task labels for {len(te.queries)} test queries")
    n = len(te.queries)
    choices = {k: route_at(pq, pc, cost_weight, cost_scale) for k, (pq, pc) in predictions.items()}
    choices.update({k: np.full(n, te.models.index(m)) for k, m in fixed.items()})
    choices["oracle"] = route_at(te.quality, te.cost, cost_weight, cost_scale)
    labels = np.asarray(list(tasks), dtype=object)
    rows_of = {t: np.flatnonzero(labels == t) for t in sorted(set(labels.tolist()))}
    const = np.empty(n, dtype=np.int64)
    for rows in rows_of.values():
        const[rows] = _best_constant(te.quality[rows], te.cost[rows], te.models, cost_weight, cost_scale)
    choices["best_constant"] = const
    task_choice = choices["task"]
    per = []
    for t in rows_of:
        b = _block(te, rows_of[t], choices, task_choice, cost_weight, cost_scale)
        per.append({"task": t, "task_model": te.models[int(task_choice[rows_of[t][0]])],
                    "best_constant_model": te.models[int(const[rows_of[t][0]])], **b})
    return {"cost_weight": float(cost_weight), "cost_scale": float(cost_scale), "definition": PER_TASK_DEFINITION,
            "tasks": per, "all": _block(te, np.arange(n), choices, task_choice, cost_weight, cost_scale)}


def held_out_decisions(router: Any, test: Any) -> list[dict[str, Any]]:
    """The runtime ``router``'s decision on each query of a full-information ``test`` table (Polars, with a
    ``task`` column), among the table's models at the router's own cost weight: task, query, chosen model,
    predicted quality of each model, and the true quality of the choice."""
    m = quality_matrix(test)
    task_of = dict(test.select("query_id", "task").unique("query_id").iter_rows()) if "task" in test.columns else {}
    out = []
    for i, (qid, query) in enumerate(zip(m.query_ids, m.queries)):
        d = router.decide(query, candidates=m.models)
        predicted = {s.model: s.quality for s in d.scores if s.quality is not None}
        true = float(m.quality[i, m.models.index(d.model)]) if d.model in m.models else None
        out.append({"task": task_of.get(qid), "query": query, "model": d.model, "predicted": predicted,
                    "true_quality": true})
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
    order = sorted(counts, key=lambda m: (-counts[m], m))[:per_task]
    examples = [next(d for d in ds if d["model"] == m) for m in order]
    return {"task": best, "n_queries": len(ds), "choices": {m: counts[m] for m in sorted(counts, key=lambda m: (-counts[m], m))},
            "examples": examples}
