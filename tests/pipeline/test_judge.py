"""The judge without a real model: rubric and parsing, the one retry, failures, sampling, self-grading,
pairwise in both orders, label and failure lines, and bad input.  A function-backed fake stands in for
llama.cpp (tests/integration/test_judge_llama.py runs the real one)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from router_runtime import ContractError, FunctionBackend, OutcomeRecord
from router_runtime.errors import BackendError
from router_runtime.pool import parse_model
from router_runtime.records import parse_outcome_line

from flows.judge.flow import judge_run, resolve_judge
from flows.judge.grader import Judge
from flows.judge.grading import MAX_CONSECUTIVE_CRASHES
from flows.judge.labels import FAILURES_DIR, LABELS_DIR
from flows.judge.rubric import (ANSWER_MAX_CHARS, JUDGE_MAX_TOKENS, PAIRWISE, QUERY_MAX_CHARS, SINGLE, Rubric,
                                clip_text, parse_score, parse_winner, score_quality, single_messages)
from flows.judge.selection import label_of, response_of, select_groups, select_records
from flows.logs import read_outcome_logs

JUDGE = parse_model({"name": "judge-m", "capabilities": ["chat"]})
MODELS = ("small", "big", "judge-m")


def rec(i: int, model: str = "small", *, query: str | None = None, response: str | None = "an answer",
        **kw) -> OutcomeRecord:
    extra = dict(kw.pop("extra", {}))
    if response is not None:
        extra["response"] = response
    return OutcomeRecord(decision_id=kw.pop("decision_id", f"d{i}-{model}"), ts=f"2026-01-01T00:00:{i % 60:02d}Z",
                         candidates=MODELS, model=model, propensity=1 / 3, success=kw.pop("success", True),
                         query=query or f"question {i}", extra=extra, **kw)


def write_logs(tmp_path: Path, records, name: str = "outcomes-1.jsonl") -> Path:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / name, "a", encoding="utf-8") as f:
        for r in records:
            f.write(r.to_line())
    return logs


def scorer(fn):
    """A fake judge: ``fn(user_text) -> reply``."""
    return FunctionBackend(lambda model, request: fn(request.messages[-1]["content"]))


def lines(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines()]


# -- rubric and parsing -------------------------------------------------------------------------

def test_rubric_hash_covers_every_text_and_travels_in_the_label():
    again = Rubric(SINGLE.version, SINGLE.system, SINGLE.template, SINGLE.grammar, SINGLE.scale)
    assert again.sha256 == SINGLE.sha256 and re.fullmatch("[0-9a-f]{64}", SINGLE.sha256)
    changed = Rubric(SINGLE.version, SINGLE.system, SINGLE.template + " ", SINGLE.grammar, SINGLE.scale)
    assert changed.sha256 != SINGLE.sha256 and PAIRWISE.sha256 != SINGLE.sha256
    assert SINGLE.meta() == {"rubric_version": SINGLE.version, "rubric_sha256": SINGLE.sha256}


@pytest.mark.parametrize("raw,score", [('{"score": 4}', 4), (' {"score":1}\n', 1),
                                       ('Sure! ```json\n{"score": 5}\n```', 5)])
def test_parse_score_reads_a_verdict(raw, score):
    assert parse_score(raw) == score


@pytest.mark.parametrize("raw", ["", "five", '{"score": 6}', '{"score": 0}', '{"score": "4"}', '{"score": 4.0}',
                                 '{"score": true}', '{"grade": 4}', "[4]", "{" * 5000])
def test_parse_score_refuses_anything_else(raw):
    from flows.judge.rubric import JudgeOutputError

    with pytest.raises(JudgeOutputError):
        parse_score(raw)


def test_parse_winner_and_score_quality():
    assert [parse_winner(f'{{"winner": "{w}"}}') for w in ("A", "B", "tie")] == ["A", "B", "tie"]
    with pytest.raises(ValueError):
        parse_winner('{"winner": "C"}')
    assert [score_quality(s) for s in (1, 2, 3, 4, 5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_huge_and_broken_text_is_capped_in_the_prompt():
    huge_q, huge_a = "q" * 50_000, "\U0001F600" * 100_000
    user = single_messages(huge_q, huge_a)[1]["content"]
    assert "q" * QUERY_MAX_CHARS in user and "q" * (QUERY_MAX_CHARS + 1) not in user
    assert user.count("\U0001F600") == ANSWER_MAX_CHARS and "96000 more characters cut" in user
    assert len(user) < QUERY_MAX_CHARS + ANSWER_MAX_CHARS + len(SINGLE.template) + 200
    broken = clip_text("ok \ud800 done", 100)  # a lone surrogate, as a non-UTF-8 source decodes to
    assert broken.encode("utf-8") and broken.startswith("ok ") and broken.endswith(" done")


# -- asking: the one retry, failures ------------------------------------------------------------

def test_a_verdict_is_constrained_greedy_and_short():
    backend = scorer(lambda text: '{"score": 3}')
    v = Judge(backend, JUDGE, seed=7).grade("What is 2+2?", "4")
    assert v.ok and v.value == 3 and v.attempts == 1 and v.raw == '{"score": 3}'
    (_, req), = backend.calls
    assert (req.grammar, req.temperature, req.seed, req.max_tokens) == (SINGLE.grammar, 0.0, 7, JUDGE_MAX_TOKENS)
    assert req.messages[0] == {"role": "system", "content": SINGLE.system}
    assert "What is 2+2?" in req.messages[1]["content"] and "<<<\n4\n>>>" in req.messages[1]["content"]


def test_garbage_is_retried_once_with_a_reminder():
    replies = iter(["I think it is good", '{"score": 5}'])
    backend = scorer(lambda text: next(replies))
    v = Judge(backend, JUDGE).grade("q", "a")
    assert v.ok and v.value == 5 and v.attempts == 2 and v.raws == ["I think it is good", '{"score": 5}']
    retry = backend.calls[1][1].messages
    assert retry[-2] == {"role": "assistant", "content": "I think it is good"}
    assert "not in the required format" in retry[-1]["content"]


def test_garbage_twice_is_a_failure_with_the_raw_text():
    backend = scorer(lambda text: "no idea")
    v = Judge(backend, JUDGE).grade("q", "a")
    assert not v.ok and v.value is None and v.attempts == 2 and v.raw == "no idea"
    assert "unusable reply" in v.error and not v.crashed and len(backend.calls) == 2


def test_a_crashing_backend_is_retried_then_a_failure():
    def crash(model, request):
        raise RuntimeError("segfault in the model")

    v = Judge(FunctionBackend(crash), JUDGE).grade("q", "a")
    assert not v.ok and v.crashed and v.attempts == 2 and "segfault in the model" in v.error and v.raw == ""
    flaky = iter([BackendError("judge-m", "load failed"), '{"score": 2}'])

    def once(model, request):
        x = next(flaky)
        if isinstance(x, Exception):
            raise x
        return x

    v = Judge(FunctionBackend(once), JUDGE).grade("q", "a")
    assert v.ok and v.value == 2 and v.attempts == 2


def test_a_small_judge_context_gets_smaller_caps_and_an_overflow_is_not_retried(tmp_path):
    from router_runtime.errors import ContextOverflowError

    from flows.judge.rubric import text_caps

    small = parse_model({"name": "judge-m", "context_length": 512})
    assert text_caps(SINGLE, None) == (QUERY_MAX_CHARS, ANSWER_MAX_CHARS)
    qcap, acap = text_caps(SINGLE, 512)
    assert qcap < QUERY_MAX_CHARS and acap < ANSWER_MAX_CHARS
    # what the rubric leaves of 3/4 of the context, at 4 chars a token, goes 1:2 to query and answer
    assert qcap + acap <= (512 - JUDGE_MAX_TOKENS) * 4 * 0.75 - len(SINGLE.template) - len(SINGLE.system)
    assert text_caps(PAIRWISE, 512)[1] < acap  # two answers share the room
    seen = []
    Judge(FunctionBackend(lambda m, r: seen.append(r.messages[1]["content"]) or '{"score": 3}'), small).grade(
        "q" * 5000, "a" * 5000)
    assert "q" * qcap + "\n[..." in seen[0] and seen[0].count("a" * acap) == 1 and "a" * (acap + 1) not in seen[0]

    def overflow(model, request):
        raise ContextOverflowError(model.name, "prompt of 900 tokens does not fit the context of 512")

    logs = write_logs(tmp_path, [rec(i) for i in range(5)])
    s = judge_run(str(logs), Judge(FunctionBackend(overflow), small), read_outcome_logs(logs))
    assert (s["failures"], s["judge_calls"], s["stopped"]) == (5, 5, None)  # no retry, not a crashing judge
    assert all("does not fit the judge's context" in f["error"] for f in lines(s["failures_file"]))


# -- selection and sampling ---------------------------------------------------------------------

def test_only_unlabeled_answers_are_gradable_and_each_skip_is_counted():
    records = [rec(0), rec(1, "big"),
               rec(2, quality=1.0, quality_source="user"),                       # labeled by a person
               rec(3, success=False, error="boom", response=None),               # a check's quality 0
               rec(4, response=None),                                            # text logging off / embed
               rec(5, "judge-m"),                                                # the judge's own answer
               rec(6, quality=0.5, quality_source="judge", extra={"label": {"judge": "x"}})]
    sel = select_records(records, judge="judge-m")
    assert sorted(r.decision_id for r in sel.records) == ["d0-small", "d1-big"]
    assert sel.counts() == {"failed_calls": 1, "label_lines": 1, "labeled": 1, "no_response": 1, "skipped_self": 1}
    with_self = select_records(records, judge="judge-m", include_self=True)
    assert "d5-judge-m" in {r.decision_id for r in with_self.records} and "skipped_self" not in with_self.counts()


def test_the_sample_is_seeded_order_free_and_nested():
    records = [rec(i, m) for i in range(200) for m in ("small", "big")]
    ids = lambda sel: [r.decision_id for r in sel.records]  # noqa: E731
    a = select_records(records, judge="j", sample_rate=0.3, seed=1)
    assert ids(a) == ids(select_records(records[::-1], judge="j", sample_rate=0.3, seed=1))
    assert 80 < len(a.records) < 160 and a.counts()["not_sampled"] == 400 - len(a.records)
    assert set(ids(a)) < set(ids(select_records(records, judge="j", sample_rate=0.6, seed=1)))
    assert set(ids(a)) != set(ids(select_records(records, judge="j", sample_rate=0.3, seed=2)))
    capped = select_records(records, judge="j", sample_rate=0.3, max_items=10, seed=1)
    assert ids(capped) == ids(a)[:10]
    for bad in ({"sample_rate": 0.0}, {"sample_rate": 1.5}, {"max_items": 0}, {"sample_rate": True}):
        with pytest.raises(ContractError):
            select_records(records, judge="j", **bad)


def test_pairwise_groups_join_a_record_and_its_shadows_by_query():
    orig = rec(1, "small", query="Explain TCP.")
    shadow = rec(2, "big", query="Explain TCP.", shadow_of=orig.decision_id) if _has_shadow_field() else \
        rec(2, "big", query="Explain TCP.", extra={"shadow_of": orig.decision_id})
    again = rec(3, "small", query="Explain TCP.")            # the same model again: one answer per model
    lonely = rec(4, "small", query="Alone")
    mine = rec(5, "judge-m", query="Explain TCP.")
    sel = select_groups([orig, shadow, again, lonely, mine], judge="judge-m")
    assert len(sel.groups) == 1 and {r.model for r in sel.groups[0]} == {"small", "big"}
    assert sel.counts() == {"no_other_answer": 1, "same_model_answer": 1, "skipped_self": 1}


def _has_shadow_field() -> bool:
    from dataclasses import fields

    return "shadow_of" in {f.name for f in fields(OutcomeRecord)}


# -- a run: label lines, failure lines, counts --------------------------------------------------

def test_a_run_writes_label_lines_that_read_back_as_judge_labels(tmp_path):
    records = [rec(i, m, response=f"answer {i} of {m}") for i in range(5) for m in ("small", "big", "judge-m")]
    logs = write_logs(tmp_path, records)
    before = (logs / "outcomes-1.jsonl").read_bytes()
    judge = Judge(scorer(lambda text: '{"score": 5}' if "of big" in text else '{"score": 2}'), JUDGE)
    s = judge_run(str(logs), judge, read_outcome_logs(logs))
    assert (s["graded"], s["failures"], s["skipped_self"], s["selected"], s["judge_calls"]) == (10, 0, 5, 10, 10)
    assert s["by_model"] == {"big": {"graded": 5, "failures": 0, "mean_quality": 1.0},
                             "small": {"graded": 5, "failures": 0, "mean_quality": 0.25}}
    assert (logs / "outcomes-1.jsonl").read_bytes() == before          # nobody else's file is touched
    path = Path(s["labels_file"])
    assert path.parent == logs / LABELS_DIR and re.fullmatch(r"judge-\d{8}T\d{6}Z-[0-9a-f]{8}\.jsonl", path.name)
    assert s["failures_file"] is None and not (logs / FAILURES_DIR).exists()
    originals = {r.decision_id: r for r in records}
    for raw in path.read_bytes().splitlines():
        line = parse_outcome_line(raw)
        orig = originals[line.decision_id]
        assert line.model != "judge-m" and line.quality_source == "judge" and line.ts > orig.ts
        assert line.quality == (1.0 if line.model == "big" else 0.25)
        assert (line.query, line.model, line.candidates, response_of(line)) == (
            orig.query, orig.model, orig.candidates, response_of(orig))
        meta = label_of(line)
        assert meta == {"judge": "judge-m", "mode": "single", "rubric_version": SINGLE.version,
                        "rubric_sha256": SINGLE.sha256, "raw": '{"score": 5}' if line.model == "big" else '{"score": 2}',
                        "score": 5 if line.model == "big" else 2, "scale": [1, 5], "attempts": 1}


def test_garbage_and_crashes_become_failure_lines_never_qualities(tmp_path):
    records = [rec(i, "small", response=f"answer {i}") for i in range(4)]
    logs = write_logs(tmp_path, records)
    judge = Judge(scorer(lambda text: '{"score": 4}' if "answer 0" in text else "blah \x00 \udcff"), JUDGE)
    s = judge_run(str(logs), judge, read_outcome_logs(logs))
    assert (s["graded"], s["failures"], s["judge_calls"]) == (1, 3, 7)
    fails = lines(s["failures_file"])
    assert Path(s["failures_file"]).parent == logs / FAILURES_DIR
    assert {f["decision_id"] for f in fails} == {"d1-small", "d2-small", "d3-small"}
    for f in fails:
        assert set(f) >= {"ts", "decision_id", "judge", "rubric_version", "error", "raw"}
        assert f["raw"] == "blah \x00 \udcff" and f["judge"] == "judge-m" and "unusable reply" in f["error"]
    labeled = [parse_outcome_line(x) for x in Path(s["labels_file"]).read_bytes().splitlines()]
    assert [r.decision_id for r in labeled] == ["d0-small"]


def test_a_judge_that_keeps_crashing_stops_the_run_and_keeps_what_it_did(tmp_path):
    records = [rec(i, "small") for i in range(10)]
    logs = write_logs(tmp_path, records)
    calls = []

    def dying(model, request):
        calls.append(1)
        if len(calls) > 1:
            raise BackendError("judge-m", "the model file vanished")
        return '{"score": 3}'

    s = judge_run(str(logs), Judge(FunctionBackend(dying), JUDGE), read_outcome_logs(logs))
    assert s["graded"] == 1 and s["failures"] == MAX_CONSECUTIVE_CRASHES
    assert "failed 3 verdicts in a row" in s["stopped"] and "vanished" in s["stopped"]
    assert len(lines(s["labels_file"])) == 1 and len(lines(s["failures_file"])) == MAX_CONSECUTIVE_CRASHES


def test_bad_log_lines_are_counted_and_the_rest_is_graded(tmp_path):
    good = [rec(i, "small") for i in range(3)]
    logs = write_logs(tmp_path, good)
    huge = rec(9, "big", response="x" * 200_000)  # an old writer without the response cap
    with open(logs / "outcomes-1.jsonl", "ab") as f:
        f.write(b'{"schema_version":1,"decision_id":"bad","response":"\xff\xfe not utf-8"}\n')
        f.write(huge.to_line().encode())
    seen = []
    judge = Judge(FunctionBackend(lambda m, r: seen.append(r.messages[-1]["content"]) or '{"score": 1}'), JUDGE)
    s = judge_run(str(logs), judge, read_outcome_logs(logs))
    assert s["quarantined"] == 1 and s["graded"] == 4 and s["failures"] == 0
    assert max(len(t) for t in seen) < ANSWER_MAX_CHARS + QUERY_MAX_CHARS + len(SINGLE.template)


def test_a_verdict_with_unencodable_text_around_it_still_labels(tmp_path):
    logs = write_logs(tmp_path, [rec(0)])
    s = judge_run(str(logs), Judge(scorer(lambda t: '\udcff {"score": 4}'), JUDGE), read_outcome_logs(logs))
    (line,) = lines(s["labels_file"])
    assert line["quality"] == 0.75 and line["label"]["raw"] == '? {"score": 4}'


def test_nothing_to_grade_writes_no_file(tmp_path):
    logs = write_logs(tmp_path, [rec(0, "judge-m"), rec(1, response=None)])
    s = judge_run(str(logs), Judge(scorer(lambda t: '{"score": 3}'), JUDGE), read_outcome_logs(logs))
    assert s["graded"] == 0 and s["labels_file"] is None and not (logs / LABELS_DIR).exists()


# -- pairwise -----------------------------------------------------------------------------------

def _pair_logs(tmp_path, n=3):
    records = []
    for i in range(n):
        records += [rec(i, "small", query=f"q{i}", response=f"small says {i}"),
                    rec(i, "big", query=f"q{i}", response=f"big says {i}")]
    return write_logs(tmp_path, records)


def _which_is_a(text: str) -> str:
    return "small" if "<<<\nsmall says" in text.split("ANSWER A:")[1].split("ANSWER B:")[0] else "big"


def test_pairwise_labels_when_both_orders_agree(tmp_path):
    logs = _pair_logs(tmp_path)
    backend = scorer(lambda t: '{"winner": "A"}' if _which_is_a(t) == "big" else '{"winner": "B"}')
    s = judge_run(str(logs), Judge(backend, JUDGE), read_outcome_logs(logs), pairwise=True)
    assert (s["groups"], s["graded"], s["failures"], s["judge_calls"]) == (3, 6, 0, 6)
    orders = [_which_is_a(req.messages[-1]["content"]) for _, req in backend.calls]
    assert all({orders[k], orders[k + 1]} == {"small", "big"} for k in range(0, 6, 2))  # each pair, both orders
    assert all(req.grammar == PAIRWISE.grammar for _, req in backend.calls)
    out = {r["decision_id"]: r for r in lines(s["labels_file"])}
    assert {d: r["quality"] for d, r in out.items()} == {f"d{i}-{m}": float(m == "big") for i in range(3)
                                                         for m in ("small", "big")}
    big = out["d0-big"]["label"]
    assert (big["mode"], big["rubric_version"], big["wins"], big["losses"], big["opponents"]) == (
        "pairwise", PAIRWISE.version, 1, 0, ["d0-small"])
    assert out["d0-big"]["ts"] == out["d0-small"]["ts"]


def test_pairwise_tie_in_both_orders_is_half_each(tmp_path):
    logs = _pair_logs(tmp_path, 1)
    s = judge_run(str(logs), Judge(scorer(lambda t: '{"winner": "tie"}'), JUDGE), read_outcome_logs(logs),
                  pairwise=True)
    assert sorted(r["quality"] for r in lines(s["labels_file"])) == [0.5, 0.5]


def test_a_position_biased_judge_gives_no_labels(tmp_path):
    logs = _pair_logs(tmp_path, 2)
    s = judge_run(str(logs), Judge(scorer(lambda t: '{"winner": "A"}'), JUDGE), read_outcome_logs(logs),
                  pairwise=True)
    assert (s["graded"], s["inconsistent"], s["failures"], s["labels_file"]) == (0, 2, 2, None)
    for f in lines(s["failures_file"]):
        assert "orders disagree" in f["error"] and f["raw"] == ['{"winner": "A"}', '{"winner": "A"}']
        assert f["mode"] == "pairwise" and f["other_decision_id"] != f["decision_id"]


# -- the judge model ----------------------------------------------------------------------------

POOL = '''{judge}
[[models]]
name = "small"

[[models]]
name = "judge-m"
'''


def test_the_judge_comes_from_the_flag_or_the_pool_and_must_be_in_it(tmp_path):
    pool = tmp_path / "pool.toml"
    pool.write_text(POOL.format(judge='judge = "judge-m"'))
    assert resolve_judge(str(pool)).name == "judge-m" and resolve_judge(str(pool), "small").name == "small"
    with pytest.raises(ContractError, match="'absent' is not a model of the pool"):
        resolve_judge(str(pool), "absent")
    pool.write_text(POOL.format(judge=""))
    with pytest.raises(ContractError, match="no judge model: pass --judge"):
        resolve_judge(str(pool))
