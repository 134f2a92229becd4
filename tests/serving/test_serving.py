"""RoutingService's own logic (route -> generate -> record, fallbacks, cooldowns, signals, feedback,
load penalty, context fit, streaming) on the function-backed fake backend.  The same paths run on
real GGUF models in tests/integration/test_llama_server.py."""

from __future__ import annotations

import json
import threading
import time

import pytest

from router_runtime import (BackendError, ContractError, Finished, FunctionBackend, GenerationRequest, OutcomeLogger,
                            RouteOptions, Router, RoutingService, ServingError, TextDelta)
from router_runtime.errors import ContextOverflowError
from router_runtime.pool import parse_model
from router_runtime.records import is_client_error, parse_outcome_line

# a: cheapest chat model; b: next; big: reason-capable, largest; emb: the only embedder
POOL = (
    parse_model({"name": "a", "capabilities": ["chat", "code"], "size_b": 1, "context_length": 64,
                 "ms_per_prompt_token": 0.1, "ms_per_token": 1.0, "load_ms": 100.0}),
    parse_model({"name": "b", "capabilities": ["chat"], "size_b": 3, "context_length": 4096,
                 "ms_per_prompt_token": 0.2, "ms_per_token": 2.0, "load_ms": 100.0}),
    parse_model({"name": "big", "capabilities": ["chat", "reason"], "size_b": 14,
                 "ms_per_prompt_token": 1.0, "ms_per_token": 10.0}),
    parse_model({"name": "emb", "capabilities": ["embed"], "ms_per_prompt_token": 0.01}),
)
CHAT = GenerationRequest("chat", messages=({"role": "user", "content": "Say hi"},), max_tokens=8)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def answer(text="Hello there"):
    def fn(model, req):
        if req.mode == "embed":
            return [[1.0, 0.0]] * len(req.inputs)
        return [text[:5], text[5:]] if len(text) > 5 else text
    return fn


def make(fn=None, *, tmp_path=None, loaded=None, token_counter=None, **kw):
    logger = OutcomeLogger(tmp_path) if tmp_path is not None else None
    router = Router(None, pool=POOL, use_numpy=False, logger=logger)
    backend = FunctionBackend(fn or answer(), loaded=loaded, token_counter=token_counter)
    clock = Clock()
    kw.setdefault("background_records", False)  # lines are on disk when complete() returns
    svc = RoutingService(router, backend, clock=clock, **kw)
    return svc, backend, clock


def lines(tmp_path):
    out = []
    for f in sorted(tmp_path.glob("*.jsonl")):
        out += [parse_outcome_line(x) for x in f.read_bytes().splitlines() if x.strip()]
    return out


def test_auto_routes_generates_and_records(tmp_path):
    svc, backend, _ = make(tmp_path=tmp_path)
    c = svc.complete(CHAT)
    assert c.model == "a" and c.text == "Hello there" and c.finish_reason == "stop" and c.signals == ()
    assert c.requested_model == "auto" and "cheapest capable model" in c.decision.reason
    (rec,) = lines(tmp_path)
    assert rec.decision_id == c.decision_id == c.decision.decision_id and rec.model == "a" and rec.success
    assert rec.latency_ms >= 0 and rec.ttft_ms is not None and rec.ttft_ms <= rec.latency_ms
    assert (rec.prompt_tokens, rec.completion_tokens) == (2, 2) and rec.error is None and rec.quality is None
    # the local cost model is in ms: the logged cost is the measured machine time
    assert rec.cost == pytest.approx(rec.latency_ms, abs=1e-3)
    assert set(rec.candidates) == {"a", "b", "big"} and rec.query == "Say hi"
    h = c.header()
    assert h["model"] == "a" and h["routed"] and set(h["scores"]) == {"a", "b", "big"}
    assert h["attempts"] == [{"model": "a", "error": None}] and h["fallback_from"] is None
    assert backend.open_streams == 0


def test_named_model_bypasses_routing(tmp_path):
    svc, _, _ = make(tmp_path=tmp_path)
    c = svc.complete(CHAT, RouteOptions(model="big"))
    assert c.model == "big" and c.decision.reason.startswith("model named in the request: routing bypassed")
    assert [s.model for s in c.decision.scores] == ["big"] and not c.header()["routed"]


def test_named_model_errors():
    svc, _, _ = make()
    with pytest.raises(ServingError) as e:
        svc.complete(CHAT, RouteOptions(model="nope"))
    assert (e.value.status, e.value.code, e.value.param) == (404, "model_not_found", "model")
    emb = GenerationRequest("embed", inputs=("x",))
    with pytest.raises(ServingError) as e:
        svc.complete(emb, RouteOptions(model="a"))
    assert e.value.status == 400 and "cannot serve" in str(e.value)
    with pytest.raises(ServingError) as e:
        svc.complete(emb, RouteOptions(kind="chat"))
    assert e.value.status == 400 and e.value.param == "zeta.kind"


def test_embeddings_route_among_embed_capable_models_only():
    svc, backend, _ = make()
    c = svc.complete(GenerationRequest("embed", inputs=("x", "y")))
    assert c.model == "emb" and c.embeddings == ((1.0, 0.0), (1.0, 0.0)) and c.decision.kind == "embed"
    assert [s.model for s in c.decision.scores] == ["emb"]


def failing(bad: set[str], exc=BackendError):
    def fn(model, req):
        if model.name in bad:
            raise exc(model.name, "crashed") if issubclass(exc, BackendError) else exc("crashed")
        return "fine"
    return fn


def test_fallback_records_the_failure_and_cools_the_model_down(tmp_path):
    svc, _, clock = make(failing({"a"}), tmp_path=tmp_path, cooldown_s=30)
    c = svc.complete(CHAT)
    assert c.model == "b" and c.fallback_from == "a" and c.decision_id == c.decision.decision_id + "-fb1"
    fail, ok = lines(tmp_path)
    assert (fail.decision_id, fail.model, fail.success) == (c.decision.decision_id, "a", False)
    assert "crashed" in fail.error and fail.propensity == 1.0
    assert (ok.decision_id, ok.model, ok.fallback_from, ok.success, ok.propensity) == (c.decision_id, "b", "a", True, 1.0)
    assert c.header()["fallback_from"] == "a" and [a["model"] for a in c.header()["attempts"]] == ["a", "b"]
    h = svc.health()
    assert h["status"] == "degraded" and h["models"]["a"]["cooling_down"] and h["models"]["a"]["failures"] == 1
    assert h["models"]["a"]["cooldown_remaining_s"] == 30
    assert svc.metrics.value("zeta_fallbacks_total", {"from_model": "a", "to_model": "b"}) == 1
    # while it rests, auto routing leaves it out and says so
    c2 = svc.complete(CHAT)
    assert c2.model == "b" and c2.attempts[0].model == "b" and "cooling down" in c2.decision.excluded["a"]
    clock.t += 31
    assert svc.cooling_down() == {} and svc.health()["status"] == "ok"


def test_every_capable_model_resting_still_tries_one():
    svc, _, _ = make(failing({"a", "b", "big"}), max_hops=2)
    with pytest.raises(ServingError):
        svc.complete(CHAT)
    svc.backend.fn = answer()
    c = svc.complete(CHAT)
    assert c.model == "a" and "every capable model is cooling down" in c.decision.reason


def test_fallback_hops_are_bounded_and_each_failure_is_an_outcome(tmp_path):
    svc, backend, _ = make(failing({"a", "b", "big"}), tmp_path=tmp_path, max_hops=1)
    with pytest.raises(ServingError) as e:
        svc.complete(CHAT)
    assert e.value.status == 502 and [a.model for a in e.value.attempts] == ["a", "b"]
    recs = lines(tmp_path)
    assert [(r.model, r.success, r.fallback_from) for r in recs] == [("a", False, None), ("b", False, "a")]
    assert len({r.decision_id for r in recs}) == 2 and len(backend.calls) == 2


def test_named_model_does_not_fall_back():
    svc, backend, _ = make(failing({"b"}))
    with pytest.raises(ServingError) as e:
        svc.complete(CHAT, RouteOptions(model="b"))
    assert e.value.status == 502 and len(backend.calls) == 1


def test_unexpected_backend_exception_is_a_failed_attempt_not_a_crash():
    svc, _, _ = make(failing({"a"}, exc=ZeroDivisionError))
    c = svc.complete(CHAT)
    assert c.model == "b" and "ZeroDivisionError" in c.attempts[0].error


def slow_a(model, req):
    if model.name == "a":
        def gen():
            for _ in range(50):
                time.sleep(0.01)
                yield "x"
        return gen()
    return "quick"


def test_timeout_falls_back_and_cools_down():
    svc, backend, _ = make(slow_a, timeout_s=0.03)
    c = svc.complete(CHAT)
    assert c.model == "b" and "timeout" in c.attempts[0].error and "a" in svc.cooling_down()
    assert backend.open_streams == 0  # the slow stream was closed, not left running


def test_a_client_timeout_falls_back_without_cooldown_and_is_a_client_error(tmp_path):
    svc, backend, _ = make(slow_a, tmp_path=tmp_path)
    c = svc.complete(CHAT, RouteOptions(timeout_s=0.03))
    assert c.model == "b" and c.attempts[0].error.startswith("client: no complete answer within the request's")
    assert svc.cooling_down() == {} and svc.health()["models"]["a"]["failures"] == 0
    fail, ok = lines(tmp_path)
    assert (fail.model, fail.success, fail.quality) == ("a", False, None) and is_client_error(fail.error)
    assert ok.success and not is_client_error(ok.error)
    assert svc.metrics.value("zeta_attempt_failures_total", {"model": "a", "reason": "client"}) == 1
    assert backend.open_streams == 0


def test_a_client_cannot_lengthen_the_service_timeout():
    svc, _, _ = make(slow_a, timeout_s=0.03)
    c = svc.complete(CHAT, RouteOptions(timeout_s=60.0))
    assert c.model == "b" and "a" in svc.cooling_down()  # the service's own limit bound: the model's fault


def test_context_overflow_falls_back_without_cooldown():
    svc, _, _ = make(failing({"a"}, exc=ContextOverflowError))
    c = svc.complete(CHAT)
    assert c.model == "b" and svc.cooling_down() == {}


@pytest.mark.parametrize("reply,json_mode,signals,success,quality,error", [
    ([TextDelta("a b c"), Finished("length", 2, 8)], False, ("truncated",), True, None, "truncated at max_tokens"),
    ("   ", False, ("empty",), False, 0.0, "empty answer"),
    ('{"a": 1', True, ("invalid_json",), False, 0.0, "invalid JSON: Expecting"),
    ('{"a": 1}', True, (), True, None, None),
    ("not json but not asked", False, (), True, None, None),
])
def test_implicit_quality_signals(tmp_path, reply, json_mode, signals, success, quality, error):
    svc, _, _ = make(lambda m, r: reply, tmp_path=tmp_path)
    req = GenerationRequest("chat", messages=CHAT.messages, json_mode=json_mode, max_tokens=8)
    c = svc.complete(req)
    assert c.signals == signals
    (rec,) = lines(tmp_path)
    assert rec.success is success and rec.quality == quality
    assert rec.quality_source == ("check" if quality is not None else None)
    assert (rec.error is None) if error is None else rec.error.startswith(error)
    for s in signals:
        assert svc.metrics.value("zeta_quality_signals_total", {"model": "a", "signal": s}) == 1


def test_truncation_without_max_tokens_is_the_context_end(tmp_path):
    svc, _, _ = make(lambda m, r: [TextDelta("a"), Finished("length", 1, 1)], tmp_path=tmp_path)
    svc.complete(GenerationRequest("chat", messages=CHAT.messages))
    assert lines(tmp_path)[0].error == "truncated at the end of the context"


def test_feedback_appends_the_answer_with_user_quality(tmp_path):
    svc, _, _ = make(tmp_path=tmp_path)
    c = svc.complete(CHAT)
    rec = svc.feedback(c.decision_id, 0.25)
    first, again = lines(tmp_path)
    assert again.decision_id == first.decision_id == c.decision_id and again.model == first.model
    assert (again.quality, again.quality_source, first.quality) == (0.25, "user", None)
    assert (rec.model, rec.quality, rec.quality_source, rec.success) == ("a", 0.25, "user", True)
    assert c.record == first
    for bad in (1.5, -0.1, float("nan"), True, "0.5"):
        with pytest.raises(ContractError):
            svc.feedback(c.decision_id, bad)


def test_feedback_memory_is_bounded():
    svc, _, _ = make(feedback_capacity=2)
    ids = [svc.complete(CHAT).decision_id for _ in range(3)]
    assert not svc.remembers(ids[0]) and svc.remembers(ids[2])
    svc.feedback(ids[2], 1.0)


def test_feedback_for_a_forgotten_decision_is_a_stand_in_label_line(tmp_path):
    svc, _, _ = make(tmp_path=tmp_path, feedback_capacity=1)
    first, second = svc.complete(CHAT), svc.complete(CHAT)
    svc.feedback(first.decision_id, 0.75)            # forgotten: beyond the capacity
    svc.feedback("from-another-process", 0.5, "b")   # never answered here; the client names the model
    svc.feedback("nobody-knows", 0.25)
    svc.flush()
    recs = lines(tmp_path)
    label = {r.decision_id: r for r in recs[2:]}
    assert [r.decision_id for r in recs[:2]] == [first.decision_id, second.decision_id]
    forgotten = label[first.decision_id]
    assert (forgotten.quality, forgotten.quality_source, forgotten.query) == (0.75, "user", None)
    assert forgotten.label["stand_in"] is True  # ingest must not read its placeholders as an answer
    assert label["from-another-process"].model == "b" and label["nobody-knows"].model == "unknown"
    assert label["nobody-knows"].label["model_named_by_client"] is False


def test_load_penalty_routes_to_the_loaded_model_until_the_other_is_loaded():
    loaded = {"b"}
    svc, _, _ = make(loaded=loaded)
    # max_tokens 8 caps the output the cost (this machine's ms) assumes: a's 100 ms load outweighs
    # 8 tokens at 1 ms against 2 ms, so the loaded b answers.
    short = svc.complete(CHAT)
    assert short.model == "b"
    assert short.decision.score("a").cost == pytest.approx(8 + 100 + 0.1 / 4 * 6)
    assert short.decision.score("b").cost == pytest.approx(16 + 0.2 / 4 * 6)
    unbounded = GenerationRequest("chat", messages=CHAT.messages)
    c = svc.complete(unbounded)
    # a, not loaded: 1 ms x 256 tokens + 0.1/4 ms x 6 chars + 100 ms to load; still below b's 2 x 256
    assert c.model == "a"
    assert c.decision.score("a").cost == pytest.approx(256 + 100 + 0.1 / 4 * 6)
    assert c.decision.score("b").cost == pytest.approx(512 + 0.2 / 4 * 6)
    assert "a" in loaded  # the fake loaded it
    c2 = svc.complete(unbounded)
    assert c2.decision.score("a").cost == pytest.approx(256 + 0.1 / 4 * 6)  # loaded now: no penalty


def test_load_penalty_can_change_the_choice():
    pool = (parse_model({"name": "cold", "ms_per_token": 1.0, "load_ms": 10_000.0}),
            parse_model({"name": "warm", "ms_per_token": 2.0, "load_ms": 10_000.0}))
    loaded = {"warm"}
    svc = RoutingService(Router(None, pool=pool, use_numpy=False), FunctionBackend(answer(), loaded=loaded))
    assert svc.complete(CHAT).model == "warm"
    loaded.add("cold")
    assert svc.complete(CHAT).model == "cold"
    # and a latency limit keeps an unloaded model out
    loaded.discard("cold")
    d = svc.complete(CHAT, RouteOptions(max_latency_ms=1000.0)).decision
    assert d.model == "warm" and "expected latency" in d.excluded["cold"]


def test_exact_context_fit_routes_away_and_names_the_reason():
    # 4 chars a token would say 60 chars fit a's 64 tokens; the exact count says they do not.
    svc, _, _ = make(token_counter=lambda text: 10 * len(text))
    req = GenerationRequest("chat", messages=({"role": "user", "content": "x" * 60},))
    c = svc.complete(req)
    assert c.model == "b" and "does not fit the context of 64" in c.decision.excluded["a"]
    with pytest.raises(ServingError) as e:
        svc.complete(req, RouteOptions(model="a"))
    assert (e.value.status, e.value.code) == (400, "context_length_exceeded")


def test_stream_yields_deltas_then_the_completion(tmp_path):
    svc, backend, _ = make(lambda m, r: ["one ", "two ", "three"], tmp_path=tmp_path)
    s = svc.stream(CHAT)
    first = next(s)
    assert first == TextDelta("one ") and s.model == "a" and s.header()["model"] == "a"
    rest = list(s)
    assert [d.text for d in rest] == ["two ", "three"] and s.result.text == "one two three"
    assert lines(tmp_path)[0].success and backend.open_streams == 0


def test_stream_falls_back_before_the_first_token():
    svc, _, _ = make(failing({"a"}))
    s = svc.stream(CHAT)
    assert next(s) == TextDelta("fine") and s.model == "b" and s.header()["fallback_from"] == "a"


def test_stream_failure_after_tokens_is_an_error_not_a_fallback(tmp_path):
    def breaks(model, req):
        def gen():
            yield "partial"
            raise BackendError(model.name, "died")
        return gen()
    svc, backend, _ = make(breaks, tmp_path=tmp_path)
    s = svc.stream(CHAT)
    assert next(s).text == "partial"
    with pytest.raises(ServingError) as e:
        next(s)
    assert e.value.status == 502 and "mid-stream" in str(e.value) and len(backend.calls) == 1
    (rec,) = lines(tmp_path)
    assert not rec.success and "died" in rec.error


def test_cancelled_stream_releases_the_model_and_is_recorded(tmp_path):
    gate = threading.Event()

    def endless(model, req):
        def gen():
            while True:
                gate.wait(0.001)
                yield "tok "
        return gen()
    svc, backend, _ = make(endless, tmp_path=tmp_path)
    s = svc.stream(CHAT)
    next(s)
    s.cancel()
    with pytest.raises(ServingError) as e:
        list(s)
    assert e.value.status == 499 and backend.open_streams == 0
    (rec,) = lines(tmp_path)
    assert not rec.success and "cancelled by the client" in rec.error
    assert svc.cooling_down() == {}  # the client left: not the model's fault


def test_stream_close_from_the_consumer():
    svc, backend, _ = make(lambda m, r: iter(["a", "b", "c", "d"]))
    s = svc.stream(CHAT)
    next(s)
    s.close()
    assert backend.open_streams == 0


def test_a_logger_that_cannot_write_does_not_lose_the_answer():
    class Broken:
        def write(self, rec):
            raise OSError("disk full")
    router = Router(None, pool=POOL, use_numpy=False, logger=Broken())
    for background in (False, True):
        svc = RoutingService(router, FunctionBackend(answer()), background_records=background)
        c = svc.complete(CHAT)
        assert svc.flush(timeout=10) and c.text == "Hello there" and c.record is None and c.outcome.success
        assert svc.metrics.value("zeta_record_errors_total") == 1


def test_background_records_keep_their_order_and_flush(tmp_path):
    svc, _, _ = make(failing({"a"}), tmp_path=tmp_path, background_records=True)
    done = [svc.complete(CHAT) for _ in range(20)]
    svc.feedback(done[-1].decision_id, 1.0)
    assert svc.flush(timeout=10)
    recs = lines(tmp_path)
    assert len(recs) == 1 + 20 + 1  # a's failure once (then it cools down), 20 answers, 1 feedback
    assert (recs[0].model, recs[0].success, recs[1].fallback_from) == ("a", False, "a")
    assert [r.decision_id for r in recs[1:21]] == [c.decision_id for c in done]
    assert recs[-1].decision_id == done[-1].decision_id and recs[-1].quality_source == "user"
    assert all(c.record is None and c.outcome is not None for c in done)


def test_concurrent_requests_are_all_answered_and_recorded(tmp_path):
    svc, _, _ = make(tmp_path=tmp_path)
    out = []
    threads = [threading.Thread(target=lambda: out.append(svc.complete(CHAT))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = lines(tmp_path)
    assert len(out) == 16 and len({r.decision_id for r in recs}) == 16


def test_invalid_service_settings():
    router = Router(None, pool=POOL, use_numpy=False)
    for kw in ({"max_hops": -1}, {"cooldown_s": float("inf")}, {"timeout_s": -1}):
        with pytest.raises(ContractError):
            RoutingService(router, FunctionBackend(answer()), **kw)
    with pytest.raises(ContractError):
        RoutingService(Router(None, use_numpy=False), FunctionBackend(answer()))
    with pytest.raises(ContractError):
        make()[0].stream(GenerationRequest("embed", inputs=("x",)))


def test_header_is_json_with_every_promised_field():
    svc, _, _ = make()
    h = json.loads(json.dumps(svc.complete(CHAT, RouteOptions(cost_weight=0.5)).header()))
    assert {"decision_id", "model", "scores", "cost_weight", "explored", "artifact_version", "reason",
            "propensity", "attempts"} <= set(h)
    assert h["cost_weight"] == 0.5 and h["explored"] is False and h["artifact_version"] is None


def _fresh_python(code: str) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_serving_imports_nothing_optional_until_used():
    got = _fresh_python(
        "import sys, json\n"
        "from router_runtime import FunctionBackend, LlamaBackend, Router, RoutingService, create_app, serve\n"
        "from router_runtime.pool import parse_model\n"
        "svc = RoutingService(Router(None, pool=[parse_model({'name': 'a'})], use_numpy=False),\n"
        "                     FunctionBackend(lambda m, r: 'hi'), background_records=False)\n"
        "assert svc.complete(__import__('router_runtime').GenerationRequest('completion', prompt='x')).text == 'hi'\n"
        "heavy = {'llama_cpp', 'starlette', 'uvicorn', 'sse_starlette', 'numpy', 'polars', 'prefect', 'catboost'}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n")
    assert json.loads(got) == []


@pytest.mark.parametrize("blocked,build,extra", [
    ("llama_cpp", "LlamaBackend([parse_model({'name': 'a', 'gguf': 'x.gguf'})])", "zeta-router[llama]"),
    ("starlette", "create_app(None)", "zeta-router[serve]"),
])
def test_a_missing_optional_dependency_names_its_extra(blocked, build, extra):
    got = _fresh_python(
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from router_runtime import LlamaBackend, MissingDependencyError, create_app\n"
        "from router_runtime.pool import parse_model\n"
        "try:\n"
        f"    {build}\n"
        "except MissingDependencyError as e:\n"
        "    print(str(e))\n")
    assert extra in got


def test_the_service_picks_up_a_promoted_artifact_while_deciding_through_penalised_copies(
        tmp_path, trained_registry):
    """Unloaded models make the service decide through load-penalised copies of its router, which do
    not watch the registry; the service asks its own router to, so a promotion still arrives."""
    import shutil

    from router_runtime import load_artifact, set_current, write_artifact

    reg = tmp_path / "reg"
    shutil.copytree(trained_registry, reg)
    art = load_artifact(reg)
    pool = tuple(parse_model({**m.to_json(), "load_ms": 100.0, "load_cost": 1e-6}) for m in art.pool if m.can("chat"))
    router = Router.load(reg, pool=pool, reload_interval_ms=10, use_numpy=False)
    svc = RoutingService(router, FunctionBackend(answer(), loaded=set()), background_records=False)
    assert svc.complete(CHAT).decision.artifact_version == art.version
    doc = json.loads((reg / "versions" / art.version / "router.json").read_text())
    doc["version"], doc["policy"]["cost_weight"] = "", 0.5
    new = write_artifact(reg, doc, {}).name
    set_current(reg, new)
    deadline = time.monotonic() + 10
    seen = art.version
    while seen != new and time.monotonic() < deadline:
        seen = svc.complete(CHAT).decision.artifact_version
        time.sleep(0.01)
    assert seen == new


def test_a_grammar_constrains_generated_text_only():
    g = 'root ::= "yes" | "no"'
    assert GenerationRequest("chat", messages=CHAT.messages, grammar=g).grammar == g
    for bad in ({"json_mode": True}, {"mode": "embed", "inputs": ("x",)}):
        with pytest.raises(ValueError, match="grammar"):
            GenerationRequest(**{"mode": "chat", "messages": CHAT.messages, "grammar": g, **bad})


# -- the answer in the log (issue 10) ---------------------------------------------------------------

def test_the_answer_text_is_logged_with_its_record_and_its_feedback(tmp_path):
    svc, _, _ = make(tmp_path=tmp_path)
    c = svc.complete(CHAT)
    svc.feedback(c.decision_id, 0.5)
    answer_line, feedback_line = lines(tmp_path)
    assert answer_line.response == c.text == "Hello there" and answer_line.response_truncated is False
    assert feedback_line.response == c.text  # a label line is a full copy of the answer's line


def test_a_huge_answer_is_capped_and_flagged_and_a_broken_one_repaired_never_lost(tmp_path):
    from router_runtime.records import RESPONSE_MAX_CHARS

    svc, _, _ = make(answer("y" * (RESPONSE_MAX_CHARS * 3)), tmp_path=tmp_path)
    c = svc.complete(CHAT)
    assert len(c.text) == RESPONSE_MAX_CHARS * 3  # the caller gets the whole answer, only the log is capped
    broken = "ok " + b"\xff\xfe".decode("utf-8", errors="surrogateescape")
    svc2, _, _ = make(lambda model, req: broken, tmp_path=tmp_path / "b")
    svc2.complete(CHAT)
    (rec,) = lines(tmp_path)
    assert rec.response == "y" * RESPONSE_MAX_CHARS and rec.response_truncated is True
    (rec2,) = lines(tmp_path / "b")
    assert rec2.response.startswith("ok ") and "\ufffd" in rec2.response and rec2.success
    assert svc2.metrics.value("zeta_record_errors_total") in (None, 0)


def test_no_answer_text_when_text_logging_is_off_for_embeddings_or_failed_attempts(tmp_path):
    router = Router(None, pool=POOL, use_numpy=False, logger=OutcomeLogger(tmp_path / "off"), log_query_text=False)
    svc = RoutingService(router, FunctionBackend(answer()), background_records=False)
    svc.complete(CHAT)
    (rec,) = lines(tmp_path / "off")
    assert rec.query is None and rec.query_sha256 is not None and rec.response is None
    svc, _, _ = make(failing({"a"}), tmp_path=tmp_path / "on")
    svc.complete(CHAT)
    fail, ok = lines(tmp_path / "on")
    assert (fail.success, fail.response) == (False, None) and ok.response == "fine"
    svc, _, _ = make(tmp_path=tmp_path / "emb")
    svc.complete(GenerationRequest("embed", inputs=("x",)))
    (emb,) = lines(tmp_path / "emb")
    assert emb.model == "emb" and emb.response is None
