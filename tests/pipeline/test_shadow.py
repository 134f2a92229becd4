"""Shadow replay (flows/shadow.py) with a function-backed fake backend: the sample, eligibility, the
time budget, failing shadow models, what was already shadowed, reproducibility, the records it writes,
and the Prefect flow ``zeta-shadow`` (and ``zeta shadow``) under the test harness."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flows import shadow as sh
from flows.logs import read_outcome_logs
from router_runtime.errors import BackendError, ContractError
from router_runtime.logger import OutcomeLogger
from router_runtime.pool import ModelInfo
from router_runtime.records import OutcomeRecord
from router_runtime.serving.backends import FunctionBackend

POOL = (
    ModelInfo("small", ("chat",), size_b=1.0),
    ModelInfo("coder", ("chat", "code"), size_b=7.0),
    ModelInfo("embedder", ("embed",), size_b=0.1),
)
POOL_TOML = """\
[[models]]
name = "small"
capabilities = ["chat"]
size_b = 1.0

[[models]]
name = "coder"
capabilities = ["chat", "code"]
size_b = 7.0

[[models]]
name = "embedder"
capabilities = ["embed"]
size_b = 0.1
"""


def rec(i, model="small", *, kind="chat", query=None, decision_id=None, success=True, **kw) -> OutcomeRecord:
    return OutcomeRecord(decision_id=decision_id or f"d{i:04d}", ts=f"2026-03-01T10:{i // 60:02d}:{i % 60:02d}Z",
                         candidates=("small", "coder"), model=model, propensity=0.5, success=success,
                         query=query if query is not None else f"question number {i}?", request_kind=kind,
                         artifact_version="v1", scores={"small": 0.4, "coder": 0.6}, **kw)


def echo(model, request):
    return f"{model.name} answers: {request.messages[-1]['content']}"


def write_logs(d: Path, records) -> Path:
    with OutcomeLogger(d) as log:
        for r in records:
            log.write(r)
    return d


def shadow_lines(logs: Path) -> list[dict]:
    out = []
    for f in sorted((logs / sh.SHADOW_DIR).glob("*.jsonl")):
        out += [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
    return out


def field(line: dict, name: str):
    """A contract field of issue 10, whether records.py has it yet or it travels as an unknown key."""
    return line.get(name)


def replay(logs: Path, backend, pool=POOL, **kw):
    records, _ = sh.read_logged(logs)
    plan = sh.plan_shadow(records, pool, backend, **{k: v for k, v in kw.items() if k in ("rate", "max_runs", "seed")})
    res = sh.run_shadow(plan, pool, backend, logs / sh.SHADOW_DIR,
                        **{k: v for k, v in kw.items() if k in ("time_budget_s", "clock", "max_tokens")})
    return plan, res


# -- the sample ---------------------------------------------------------------------------------------
def test_the_sample_is_nested_in_the_rate_seeded_and_independent_of_other_lines():
    ids = [f"id-{i}" for i in range(400)]
    at = {r: {d for d in ids if sh.in_sample(d, 0, r)[0]} for r in (0.0, 0.1, 0.3, 1.0)}
    assert at[0.0] == set() and at[1.0] == set(ids)
    assert at[0.1] <= at[0.3] and 0 < len(at[0.1]) < len(at[0.3]) < len(ids)
    other_seed = {d for d in ids if sh.in_sample(d, 1, 0.3)[0]}
    assert other_seed != at[0.3]
    # membership of a decision is a property of its id: a plan over a subset picks the same ones
    backend = FunctionBackend(echo)
    records = [rec(i) for i in range(60)]
    full = {r.original.decision_id for r in sh.plan_shadow(records, POOL, backend, rate=0.3).runs}
    part = {r.original.decision_id for r in sh.plan_shadow(records[::2], POOL, backend, rate=0.3).runs}
    assert part == {d for d in full if int(d[1:]) % 2 == 0}


def test_seeded_replays_of_the_same_logs_write_the_same_runs(tmp_path):
    records = [rec(i, "small" if i % 3 else "coder") for i in range(30)]
    got = []
    for run in ("a", "b", "c"):
        logs = write_logs(tmp_path / run, records)
        replay(logs, FunctionBackend(echo), rate=0.5, seed=0 if run != "c" else 7)
        got.append(sorted((field(x, "shadow_of"), x["model"], field(x, "response"))
                          for x in shadow_lines(logs)))
    assert got[0] == got[1] and got[0] and got[2] != got[0]


def test_max_runs_takes_runs_in_sample_order(tmp_path):
    logs = write_logs(tmp_path / "logs", [rec(i) for i in range(20)])
    records, _ = sh.read_logged(logs)
    backend = FunctionBackend(echo)
    every = sh.plan_shadow(records, POOL, backend, rate=1.0)
    first = sh.plan_shadow(records, POOL, backend, rate=1.0, max_runs=5)
    assert first.runs == every.runs[:5] and first.counts["eligible_runs"] == len(every.runs) == 20
    assert [r.order for r in every.runs] == sorted(r.order for r in every.runs)


# -- eligibility ----------------------------------------------------------------------------------------
class BudgetedBackend(FunctionBackend):
    """The fake with a memory budget: ``too_big`` models can never load (as LlamaBackend reports)."""

    def __init__(self, fn, too_big=(), **kw):
        super().__init__(fn, **kw)
        self.too_big = set(too_big)

    def memory_problem(self, model):
        return "needs ~9000 MB, more than the whole memory budget of 4000 MB" if model.name in self.too_big else None


def test_only_capable_fitting_loadable_models_that_did_not_answer_are_replayed():
    pool = POOL + (ModelInfo("tiny-context", ("chat", "code"), context_length=16),
                   ModelInfo("huge", ("chat", "code"), size_b=70.0))
    backend = BudgetedBackend(echo, too_big={"huge"}, token_counter=lambda t: len(t.split()))
    records = [
        rec(1, "small", kind="code", query="write a function " * 10),   # long: tiny-context cannot fit it
        rec(2, "coder", kind="code", query="sort a list"),
        rec(3, "small", kind="embed", query="embed me"),
        rec(4, "small", kind="reason"),
    ]
    plan = sh.plan_shadow(records, pool, backend, rate=1.0)
    pairs = {(r.original.decision_id, r.model) for r in plan.runs}
    assert pairs == {("d0001", "coder"), ("d0002", "tiny-context")}
    c = plan.counts
    assert c["skipped_embed"] == 1 and c["sampled"] == 3 and c["sampled_without_target"] == 1  # nobody can "reason"
    assert c["ineligible"]["memory"] == 2 and c["ineligible"]["context"] == 1
    assert c["memory_problems"] == {"huge": "needs ~9000 MB, more than the whole memory budget of 4000 MB"}


def test_records_without_text_and_fallback_attempts_are_not_replayed_twice():
    records = [
        OutcomeRecord(decision_id="nt", ts="2026-03-01T10:00:00Z", candidates=("small", "coder"), model="small",
                      propensity=0.5, success=True, query_sha256="b" * 64),
        rec(1, "coder", decision_id="root", success=False, error="load failed"),
        rec(2, "small", decision_id="root-fb1", fallback_from="coder"),
    ]
    plan = sh.plan_shadow(records, POOL, FunctionBackend(echo), rate=1.0)
    assert plan.runs == [] and plan.counts["skipped_no_query_text"] == 1
    assert plan.counts["skipped_fallback_attempt"] == 1 and plan.counts["ineligible"]["already_answered"] == 2


# -- running ---------------------------------------------------------------------------------------
def test_shadow_records_follow_the_contract_and_ingest_reads_them(tmp_path):
    original = rec(1, "small", kind="code")
    logs = write_logs(tmp_path / "logs", [original])
    plan, res = replay(logs, FunctionBackend(echo), rate=1.0)
    assert res.written == res.succeeded == 1 and res.stopped == "done"
    assert re.fullmatch(r"shadow-\d{8}T\d{6}Z-[0-9a-f]{8}\.jsonl", Path(res.file).name)
    [line] = shadow_lines(logs)
    assert line["shadow_of"] == original.decision_id and line["decision_id"] != original.decision_id
    assert line["model"] == "coder" and line["propensity"] == 1.0 and line["explored"] is False
    assert line["scores"] == {} and line["query"] == original.query and line["request_kind"] == "code"
    assert line["candidates"] == list(original.candidates) and line["artifact_version"] == "v1"
    assert line["response"] == f"coder answers: {original.query}" and line["success"] is True
    assert line["quality"] is None and line["completion_tokens"] == len(line["response"].split())
    got = read_outcome_logs(logs)
    assert got.quarantined == [] and {r.decision_id for r in got.records} == {original.decision_id,
                                                                             line["decision_id"]}


def test_a_shadow_model_outside_the_candidates_is_added_to_them(tmp_path):
    named = OutcomeRecord(decision_id="n1", ts="2026-03-01T10:00:00Z", candidates=("small",), model="small",
                          propensity=1.0, success=True, query="hello there")
    logs = write_logs(tmp_path / "logs", [named])
    replay(logs, FunctionBackend(echo), rate=1.0)
    [line] = shadow_lines(logs)
    assert line["model"] == "coder" and line["candidates"] == ["small", "coder"]


def test_a_failing_shadow_model_is_recorded_as_a_failure_and_the_others_still_run(tmp_path):
    pool = POOL + (ModelInfo("broken", ("chat",)),)

    def fn(model, request):
        if model.name == "broken":
            raise BackendError("broken", "failed to load broken.gguf: not a model")
        if "empty" in request.messages[0]["content"]:
            return "   "
        return echo(model, request)

    logs = write_logs(tmp_path / "logs", [rec(1, "small"), rec(2, "small", query="say nothing (empty)")])
    _, res = replay(logs, FunctionBackend(fn), pool=pool, rate=1.0)
    lines = shadow_lines(logs)
    assert res.written == len(lines) == 4 and res.by_model["broken"] == {"succeeded": 0, "failed": 2}
    broken = [x for x in lines if x["model"] == "broken"]
    assert all(x["success"] is False and "failed to load" in x["error"] and x["quality"] is None
               and x.get("response") is None for x in broken)
    empty = next(x for x in lines if x["model"] == "coder" and "empty" in x["query"])
    assert empty["success"] is False and empty["error"] == "empty answer"
    assert (empty["quality"], empty["quality_source"]) == (0.0, "check")  # the serving layer's check, same rule
    assert res.failed == 3 and res.succeeded == 1


def test_an_unexpected_backend_exception_is_the_models_failure_not_a_crash(tmp_path):
    def fn(model, request):
        raise RuntimeError("segfault-ish")

    logs = write_logs(tmp_path / "logs", [rec(1)])
    _, res = replay(logs, FunctionBackend(fn), rate=1.0)
    [line] = shadow_lines(logs)
    assert res.failed == 1 and line["error"] == "RuntimeError: segfault-ish"


def test_runs_are_grouped_by_model_so_each_loads_once(tmp_path):
    records = [rec(i, "small" if i % 2 else "coder") for i in range(12)]
    backend = FunctionBackend(echo, loaded=set())
    logs = write_logs(tmp_path / "logs", records)
    replay(logs, backend, rate=1.0)
    order = [name for name, _ in backend.calls]
    switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
    assert set(order) == {"small", "coder"} and switches == 1


def test_the_time_budget_stops_the_replay_and_an_abandoned_answer_is_not_recorded(tmp_path):
    now = [0.0]

    def fn(model, request):
        def tokens():
            for w in ("one", "two", "three"):
                now[0] += 1.0  # each token takes a (fake) second
                yield w + " "
        return tokens()

    logs = write_logs(tmp_path / "logs", [rec(i) for i in range(10)])
    plan, res = replay(logs, FunctionBackend(fn), rate=1.0, time_budget_s=7.5, clock=lambda: now[0])
    # runs take 3 s each: two finish by t=6, the third is cut at t=8 and dropped, nothing starts after
    assert res.written == res.succeeded == 2 and res.stopped == "time budget"
    assert res.not_recorded == {"time budget": 1} and len(plan.runs) == 10
    # the rest is replayed next time
    now[0] = 0.0
    plan2, res2 = replay(logs, FunctionBackend(fn), rate=1.0, time_budget_s=1000.0, clock=lambda: now[0])
    assert len(plan2.runs) == 8 and res2.written == 8 and res2.stopped == "done"


def test_already_shadowed_pairs_are_skipped(tmp_path):
    logs = write_logs(tmp_path / "logs", [rec(i) for i in range(6)])
    _, first = replay(logs, FunctionBackend(echo), rate=1.0, max_runs=4)
    plan, second = replay(logs, FunctionBackend(echo), rate=1.0)
    assert first.written == 4 and second.written == 2
    assert plan.counts["shadow_records"] == 4 and plan.counts["ineligible"]["already_answered"] == 6 + 4
    plan3, third = replay(logs, FunctionBackend(echo), rate=1.0)
    assert plan3.runs == [] and third.written == 0 and third.file is None
    pairs = [(x["shadow_of"], x["model"]) for x in shadow_lines(logs)]
    assert len(pairs) == len(set(pairs)) == 6


def test_a_huge_answer_is_capped_and_flagged(tmp_path):
    from router_runtime.records import RESPONSE_MAX_CHARS as cap

    logs = write_logs(tmp_path / "logs", [rec(1)])
    replay(logs, FunctionBackend(lambda m, r: "é" * (cap + 10)), rate=1.0)
    [line] = shadow_lines(logs)
    assert len(line["response"]) == cap and line["response_truncated"] is True


def test_bad_parameters_are_contract_errors():
    for kw in ({"rate": 1.5}, {"rate": float("nan")}, {"max_runs": -1}, {"max_runs": 2.5}):
        with pytest.raises(ContractError):
            sh.plan_shadow([], POOL, FunctionBackend(echo), **kw)
    with pytest.raises(ContractError, match="time_budget_s"):
        sh.run_shadow(sh.ShadowPlan(), POOL, FunctionBackend(echo), "/nonexistent", time_budget_s=0)


# -- the Prefect flow and the command -----------------------------------------------------------------------
@pytest.fixture
def fake_llama(monkeypatch):
    made = []

    def build(pool_path, models, *, memory_budget_mb, n_threads):
        b = FunctionBackend(echo)
        made.append((b, memory_budget_mb))
        return b

    monkeypatch.setattr(sh, "build_backend", build)
    return made


def test_the_flow_replays_and_the_command_prints_counts(prefect_harness, tmp_path, fake_llama, capsys):
    from flows.cli import main

    logs = write_logs(tmp_path / "logs", [rec(i, "small" if i % 2 else "coder") for i in range(8)]
                      + [rec(99, "small", kind="embed")])
    pool = tmp_path / "pool.toml"
    pool.write_text(POOL_TOML, encoding="utf-8")
    s = sh.shadow_flow(logs=str(logs), pool=str(pool), rate=1.0, max_runs=3, seed=0, memory_budget_mb=512.0)
    assert s["written"] == 3 and s["plan"]["skipped_embed"] == 1 and s["plan"]["eligible_runs"] == 8
    assert fake_llama[-1][1] == 512.0 and s["stopped"] == "done" and Path(s["file"]).parent == logs / "shadow"
    assert main(["shadow", "--logs", str(logs), "--pool", str(pool), "--rate", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote 5 shadow records (5 succeeded, 0 failed" in out and "3 shadow" in out
    assert main(["shadow", "--logs", str(logs), "--pool", str(pool), "--rate", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 0
    assert len(shadow_lines(logs)) == 8


def test_the_command_refuses_a_missing_logs_directory(prefect_harness, tmp_path, fake_llama, capsys):
    from flows.cli import main

    pool = tmp_path / "pool.toml"
    pool.write_text(POOL_TOML, encoding="utf-8")
    assert main(["shadow", "--logs", str(tmp_path / "nope"), "--pool", str(pool)]) == 2
    assert "not a directory of outcome logs" in capsys.readouterr().err


def test_the_flow_run_is_named_for_its_outcome_and_publishes_its_counts(prefect_harness, tmp_path, fake_llama):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.reports import NOTHING_TO_REPLAY, REPLAYED

    logs = write_logs(tmp_path / "logs", [rec(i, "small" if i % 2 else "coder") for i in range(6)])
    pool = tmp_path / "pool.toml"
    pool.write_text(POOL_TOML, encoding="utf-8")
    state = sh.shadow_flow(logs=str(logs), pool=str(pool), rate=1.0, seed=0, return_state=True)
    s = state.result()
    assert state.is_completed() and state.name == REPLAYED and s["outcome"] == REPLAYED and s["written"] == 6
    assert state.message.startswith("zeta-shadow Replayed: 6 shadow records (6 succeeded, 0 failed) of 6 planned")
    with get_client(sync_client=True) as client:
        arts = {a.key: a for a in client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))}
    assert arts["zeta-shadow-report"].description == state.message and s["file"] in arts["zeta-shadow-report"].data
    rows = json.loads(arts["zeta-shadow-models"].data)
    # each logged decision was answered by one of small/coder: the other one replays it
    assert sorted(rows, key=lambda r: r["model"]) == [{"model": "coder", "planned_runs": 3, "succeeded": 3, "failed": 0},
                                                      {"model": "small", "planned_runs": 3, "succeeded": 3, "failed": 0}]
    again = sh.shadow_flow(logs=str(logs), pool=str(pool), rate=1.0, seed=0, return_state=True)
    assert again.name == NOTHING_TO_REPLAY and again.result()["written"] == 0
