"""The per-task table of `zeta evaluate-benchmark` (flows.evaluate.per_task): hand-computed cases, the same
through a real CatBoost router on a hand-made table, its JSON keys and Markdown, and the demo's lines."""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl
import pytest

from conftest import SAMPLE
from flows.evaluate.benchmark import run_evaluation, summary_markdown
from flows.evaluate.holdout import QualityMatrix
from flows.evaluate.per_task import per_task_table, within_task_examples
from flows.training import TrainParams

BLOCK_KEYS = {"n_test", "router_choices", "quality", "cost", "utility", "router_differs_from_task_share",
              "gain_over_task", "within_task_gain", "task_level_gain", "over_best_constant"}


def hand_matrix() -> tuple[QualityMatrix, list[str]]:
    """Task "cue": A answers the queries with the cue, B the others; task "one": A answers everything."""
    queries = ["cue 1", "cue 2", "plain 3", "plain 4", "one 5", "one 6", "one 7"]
    #                 A    B
    quality = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 0], [1, 0], [1, 1]], dtype=float)
    cost = np.ones_like(quality)  # equal costs: utility is the quality at any λ
    tasks = ["cue"] * 4 + ["one"] * 3
    return QualityMatrix([f"q{i}" for i in range(7)], queries, ["A", "B"], quality, cost), tasks


def test_hand_computed_per_task_table():
    te, tasks = hand_matrix()
    # router: the true qualities (it reads the cue); per-task: B on both tasks (train means 0.5 vs 0.6);
    # kNN: always A
    per_task = np.array([[0.5, 0.6]] * 7)
    knn = np.array([[0.9, 0.1]] * 7)
    t = per_task_table(te, tasks, {"router": (te.quality, te.cost), "task": (per_task, te.cost),
                                   "knn": (knn, te.cost)}, {"best_single": "A"}, cost_weight=0.1, cost_scale=1.0)
    cue, one = t["tasks"]
    assert (cue["task"], one["task"]) == ("cue", "one") and BLOCK_KEYS <= set(cue) and BLOCK_KEYS <= set(t["all"])
    # "cue": the router is right 4/4 with A, A, B, B (main choice: a 2-2 tie, name order -> A, right 2/4);
    # per-task's B is right 2/4; so all of the gain is within the task
    assert (cue["task_model"], cue["router_main_model"], cue["best_constant_model"]) == ("B", "A", "A")
    assert cue["quality"]["router"] == 1.0 and cue["quality"]["task"] == 0.5 and cue["quality"]["oracle"] == 1.0
    assert cue["router_choices"] == {"A": 0.5, "B": 0.5} and cue["router_differs_from_task_share"] == 0.5
    assert cue["gain_over_task"] == pytest.approx(0.5) and cue["within_task_gain"]["router"] == pytest.approx(0.5)
    assert cue["task_level_gain"] == 0.0 and cue["over_best_constant"]["router"] == pytest.approx(0.5)
    assert cue["within_task_gain"]["knn"] == 0.0 and cue["within_task_gain"]["task"] == 0.0
    # "one": A always wins (q6 ties, cheaper-then-name keeps A); the router sends the task to A, per-task to
    # B (right 1/3): the whole gain is the task-level choice, none of it within the task
    assert one["router_choices"] == {"A": 1.0} and one["router_differs_from_task_share"] == 1.0
    assert one["within_task_gain"]["router"] == 0.0 and one["over_best_constant"]["router"] == 0.0
    assert one["gain_over_task"] == pytest.approx(2 / 3) and one["task_level_gain"] == pytest.approx(2 / 3)
    assert one["within_task_gain"]["oracle"] == 0.0 and one["over_best_constant"]["oracle"] == 0.0
    assert one["over_best_constant"]["task"] == pytest.approx(-2 / 3)
    # the "all" row is the query-weighted mean of the task rows; the split is exact everywhere
    a = t["all"]
    assert a["n_test"] == 7 and a["within_task_gain"]["router"] == pytest.approx(4 * 0.5 / 7)
    assert a["task_level_gain"] == pytest.approx(3 * (2 / 3) / 7)
    assert a["router_differs_from_task_share"] == pytest.approx(5 / 7)
    for b in (cue, one, a):
        assert b["gain_over_task"] == pytest.approx(b["within_task_gain"]["router"] + b["task_level_gain"])
        assert b["within_task_gain"]["task"] == 0.0


def test_cost_enters_through_the_utility():
    te, tasks = hand_matrix()
    te.cost[:, 1] = 4.0  # B is dearer: at λ = 0.5, scale 1, a right B (1 - 2) is worth less than a wrong A (-0.5)
    t = per_task_table(te, tasks, {"router": (te.quality, te.cost), "task": (te.quality, te.cost)}, {},
                       cost_weight=0.5, cost_scale=1.0)
    cue = t["tasks"][0]
    assert cue["router_choices"] == {"A": 1.0} and cue["utility"]["router"] == pytest.approx(0.5 - 0.5)
    assert cue["within_task_gain"]["router"] == 0.0 and cue["over_best_constant"]["router"] == 0.0
    assert cue["cost"]["router"] == 1.0
    with pytest.raises(ValueError, match="task labels"):
        per_task_table(te, tasks[:3], {"router": (te.quality, te.cost), "task": (te.quality, te.cost)}, {}, 0.0, 1.0)


def cue_table(n: int = 240) -> pl.DataFrame:
    """Two tasks of the same data set: in "cue", model A answers the questions about a zebra and B the
    others; in "one", A answers everything.  Equal costs, so only the quality decides."""
    rows = []
    for i in range(n):
        task = "cue" if i % 2 == 0 else "one"
        if task == "cue":
            animal = "zebra" if i % 4 == 0 else "horse"
            text = f"Describe the {animal} number {i} in the picture"
            good = {"A"} if animal == "zebra" else {"B"}
        else:
            text = f"Add {i} and {i + 7} then report the sum"
            good = {"A"}
        for m in ("A", "B"):
            rows.append({"query_id": f"q{i}", "query": text, "model": m, "quality": float(m in good),
                         "cost": 1e-6, "task": task})
    return pl.DataFrame(rows)


def test_real_router_gains_within_the_cue_task_and_not_within_the_one_model_task():
    r = run_evaluation(cue_table(), cost_model="hand-made", seed=0, params=TrainParams(iterations=60))
    pt = r["per_task"]
    assert set(pt) == {"cost_weight", "cost_scale", "definition", "tasks", "all"}
    assert pt["cost_weight"] == 0.1 and pt["cost_scale"] == r["cost_scale"]
    by = {b["task"]: b for b in pt["tasks"]}
    assert set(by) == {"cue", "one"} and sum(b["n_test"] for b in pt["tasks"]) == r["n_test"] == pt["all"]["n_test"]
    cue, one = by["cue"], by["one"]
    # per-task sends the whole "cue" task to one model (right on about half); the router reads the cue
    assert cue["within_task_gain"]["router"] > 0.3 and len(cue["router_choices"]) == 2
    assert cue["router_differs_from_task_share"] > 0.2 and cue["quality"]["router"] > cue["quality"]["task"]
    assert one["within_task_gain"]["router"] == 0.0 and one["router_choices"] == {"A": 1.0}
    assert one["task_model"] == "A" and one["over_best_constant"]["oracle"] == 0.0
    assert cue["over_best_constant"]["router"] > 0.3  # more than any single model could give on the task
    md = summary_markdown({**r, "split": r["split"]})
    assert "| task | test queries | router | per-task | kNN | best single | oracle |" in md
    assert "| cue |" in md and "| **all** |" in md and "within-task gain = U(router) − U(the router's main choice" in md


def test_no_task_column_gives_no_per_task_table():
    r = run_evaluation(cue_table(80).drop("task"), cost_model="hand-made", seed=0, params=TrainParams(iterations=20))
    assert r["per_task"] is None and "| task | test queries |" not in summary_markdown(r)


def test_within_task_examples_pick_the_most_varied_task_or_say_there_is_none():
    ds = [{"task": "t1", "query": f"a{i}", "model": "A", "predicted": {"A": 0.9, "B": 0.1}} for i in range(5)]
    ds += [{"task": "t2", "query": f"b{i}", "model": m, "predicted": {"A": 0.5, "B": 0.5}}
           for i, m in enumerate("AABBBC")]
    ex = within_task_examples(ds, per_task=2)
    assert ex["task"] == "t2" and ex["n_queries"] == 6 and ex["choices"] == {"B": 3, "A": 2, "C": 1}
    assert [d["model"] for d in ex["examples"]] == ["B", "A"] and all(d["task"] == "t2" for d in ex["examples"])
    none = within_task_examples(ds[:5] + [{**d, "task": "t3"} for d in ds[:2]])
    assert none["task"] is None and none["examples"] == [] and "routes by task" in none["reason"]
    assert within_task_examples([{"task": None, "query": "x", "model": "A", "predicted": {}}])["task"] is None


def test_demo_prints_held_out_decisions_within_one_task(capsys, trained_registry):
    from flows.cli import _print_within_task
    from router_runtime import Router

    router = Router.load(trained_registry)
    _print_within_task(router, str(SAMPLE / "routeprofile"),
                       argparse.Namespace(format="routeprofile", test_fraction=0.3, seed=0))
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "== within one task (held-out queries) =="
    if lines[1].startswith("task "):
        picks = [line.split("-> ")[1].split(":")[0] for line in lines if line.startswith("  -> ")]
        assert 2 <= len(picks) <= 3 and len(set(picks)) == len(picks)  # different models, one task
        assert all("predicted quality " in line and "utility " in line and "true quality" in line
                   for line in lines if "  -> " in line)
    else:
        assert "routes by task" in lines[1]
