"""The HTTP layer on the fake backend: OpenAI wire format, errors as OpenAI error objects, auth, body
cap, SSE, metrics.  In process (Starlette's TestClient); tests/integration drives a real server with
real models and the official openai client."""

from __future__ import annotations

import base64
import json
import struct

import pytest

pytest.importorskip("starlette")
pytest.importorskip("sse_starlette")
from starlette.testclient import TestClient  # noqa: E402

from router_runtime import ContractError, FunctionBackend, Metrics, Router, RoutingService, create_app  # noqa: E402
from router_runtime.serving.backends import Finished, TextDelta  # noqa: E402
from router_runtime.serving.openai_api import parse_chat, parse_completion, parse_embeddings  # noqa: E402
from router_runtime.pool import parse_model  # noqa: E402
from router_runtime.serving.http import header_value  # noqa: E402

POOL = (parse_model({"name": "small", "capabilities": ["chat"], "ms_per_token": 1.0}),
        parse_model({"name": "large", "capabilities": ["chat", "reason"], "size_b": 14, "ms_per_token": 5.0}),
        parse_model({"name": "embedder", "capabilities": ["embed"], "ms_per_prompt_token": 0.1}))
MSG = [{"role": "user", "content": "hello"}]


def reply(model, req):
    if req.mode == "embed":
        return [[0.5, -0.25, 1.0]] * len(req.inputs)
    if req.messages and req.messages[-1]["content"] == "explode":
        raise RuntimeError("backend bug")
    return [TextDelta("Hi"), TextDelta(" you"), Finished("stop", 3, 2)]


@pytest.fixture
def svc():
    return RoutingService(Router(None, pool=POOL, use_numpy=False), FunctionBackend(reply), max_hops=1)


@pytest.fixture
def client(svc):
    return TestClient(create_app(svc, max_body_bytes=2048))


def err(r, status, param=None, words=()):
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert set(e) == {"message", "type", "param", "code"} and e["param"] == param
    assert all(w in e["message"] for w in words), e["message"]
    return e


def test_chat_completion_and_decision_header(client):
    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": MSG, "zeta": {"cost_weight": 0.3}})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "small"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hi you"}
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    h = json.loads(r.headers["x-zeta-decision"])
    assert h == body["zeta"] and h["model"] == "small" and h["cost_weight"] == 0.3
    assert set(h["scores"]) == {"small", "large"} and h["decision_id"] in body["id"]


def test_named_model_and_completions(client):
    r = client.post("/v1/completions", json={"model": "large", "prompt": "Once"})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "Hi you" and r.json()["model"] == "large"
    assert json.loads(r.headers["x-zeta-decision"])["routed"] is False


def test_streamed_chat_is_openai_sse(client):
    with client.stream("POST", "/v1/chat/completions",
                       json={"model": "auto", "messages": MSG, "stream": True,
                             "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert json.loads(r.headers["x-zeta-decision"])["model"] == "small"
        data = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hi you"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "small" for c in chunks)


def test_streamed_completion(client):
    with client.stream("POST", "/v1/completions", json={"model": "auto", "prompt": "x", "stream": True}) as r:
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    texts = [json.loads(d)["choices"][0]["text"] for d in data[:-1]]
    assert "".join(texts) == "Hi you" and data[-1] == "[DONE]"


def test_stream_error_before_the_first_token_is_a_json_error(client):
    r = client.post("/v1/chat/completions", json={"model": "small", "messages": [{"role": "user", "content": "explode"}],
                                                  "stream": True})
    err(r, 502, words=("backend bug",))


def test_embeddings_float_and_base64(client):
    r = client.post("/v1/embeddings", json={"model": "auto", "input": ["a", "b"]})
    assert r.status_code == 200 and r.json()["model"] == "embedder"
    assert [d["embedding"] for d in r.json()["data"]] == [[0.5, -0.25, 1.0]] * 2
    r = client.post("/v1/embeddings", json={"model": "auto", "input": "a", "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert list(struct.unpack("<3f", raw)) == [0.5, -0.25, 1.0]
    err(client.post("/v1/embeddings", json={"model": "small", "input": "a"}), 400, "model", ("cannot serve",))


def test_models_lists_the_pool_and_auto(client):
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["auto", "small", "large", "embedder"]


def test_feedback_endpoint(client, svc):
    did = client.post("/v1/chat/completions", json={"model": "auto", "messages": MSG}).json()["zeta"]["decision_id"]
    r = client.post("/v1/feedback", json={"decision_id": did, "quality": 0.9})
    assert r.status_code == 200 and r.json() == {"decision_id": did, "model": "small", "quality": 0.9,
                                                 "quality_source": "user", "recorded": True, "remembered": True}
    # A decision this process never answered: recorded all the same, as a stand-in label line.
    r = client.post("/v1/feedback", json={"decision_id": "other-process-1", "quality": 0.4, "model": "large"})
    assert r.status_code == 200 and r.json()["remembered"] is False and r.json()["model"] == "large"
    err(client.post("/v1/feedback", json={"decision_id": "", "quality": 0.9}), 400, "decision_id")
    err(client.post("/v1/feedback", json={"decision_id": "x" * 129, "quality": 0.9}), 400, "decision_id")
    err(client.post("/v1/feedback", json={"decision_id": did, "quality": 2}), 400, "quality")
    err(client.post("/v1/feedback", json={"decision_id": did, "quality": 1, "x": 1}), 400, "x")


@pytest.mark.parametrize("body,param,words", [
    ({"messages": MSG}, "model", ("required",)),
    ({"model": "auto"}, "messages", ("non-empty list",)),
    ({"model": "auto", "messages": []}, "messages", ("non-empty list",)),
    ({"model": "auto", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", ("must be one of",)),
    ({"model": "auto", "messages": [{"role": "user"}]}, "messages[0].content", ("required",)),
    ({"model": "auto", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "messages[0].content[0]", ("text parts",)),
    ({"model": "auto", "messages": MSG, "temperature": 3}, "temperature", ("[0, 2]",)),
    ({"model": "auto", "messages": MSG, "max_tokens": 0}, "max_tokens", ("in [1, ",)),
    ({"model": "auto", "messages": MSG, "n": 2}, "n", ("n = 1",)),
    ({"model": "auto", "messages": MSG, "stop": ["a"] * 5}, "stop", ("up to 4",)),
    ({"model": "auto", "messages": MSG, "tools": [{"type": "function"}]}, "tools[0]", ('"type": "function"',)),
    ({"model": "auto", "messages": MSG, "functions": [{"name": "f"}]}, "functions", ("not supported",)),
    ({"model": "auto", "messages": MSG, "frobnicate": 1}, "frobnicate", ("unrecognized",)),
    ({"model": "auto", "messages": MSG, "response_format": {"type": "xml"}}, "response_format", ("json_schema",)),
    ({"model": "auto", "messages": MSG, "response_format": {"type": "json_schema"}}, "response_format.json_schema",
     ("schema",)),
    ({"model": "auto", "messages": MSG, "top_k": -1}, "top_k", ("integer in [0,",)),
    ({"model": "auto", "messages": MSG, "logit_bias": {"abc": 1}}, "logit_bias.abc", ("token ids",)),
    ({"model": "auto", "messages": MSG, "logit_bias": {"12": 101}}, "logit_bias.12", ("[-100, 100]",)),
    ({"model": "auto", "messages": MSG, "zeta": {"cost_weight": -1}}, "zeta.cost_weight", ("in [0, 1e+06]",)),
    ({"model": "auto", "messages": MSG, "zeta": {"max_latency_ms": 0}}, "zeta.max_latency_ms", ("positive",)),
    ({"model": "auto", "messages": MSG, "zeta": {"speed": 1}}, "zeta.speed", ("unknown routing option",)),
    ({"model": "auto", "messages": MSG, "zeta": []}, "zeta", ("object",)),
    ({"model": "auto", "messages": MSG, "stream": "yes"}, "stream", ("true or false",)),
])
def test_bad_fields_are_400_naming_the_field(client, body, param, words):
    err(client.post("/v1/chat/completions", json=body), 400, param, words)


def test_clients_sending_features_switched_off_are_accepted(client):
    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": MSG, "tools": None, "logprobs": False,
                                                  "user": "u1", "n": 1, "stream": False})
    assert r.status_code == 200


def test_bad_json_and_bodies(client):
    err(client.post("/v1/chat/completions", content=b"{not json"), 400, "body", ("invalid JSON",))
    err(client.post("/v1/chat/completions", content=b""), 400, "body", ("empty body",))
    err(client.post("/v1/chat/completions", content=b"[1, 2]"), 400, "body", ("JSON object",))
    err(client.post("/v1/chat/completions", content=b"\xff\xfe"), 400, "body", ("UTF-8",))



def test_deeply_nested_json_is_a_400(svc):
    client = TestClient(create_app(svc, max_body_bytes=1 << 20))
    err(client.post("/v1/chat/completions", content=b"[" * 100_000 + b"]" * 100_000), 400, "body", ("nested",))


def test_body_cap(client):
    big = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    err(client.post("/v1/chat/completions", content=big), 413, words=("2048 bytes",))

    def chunks():  # no content-length: the cap holds on the streamed body too
        for _ in range(10):
            yield b" " * 500
    err(client.post("/v1/chat/completions", content=chunks()), 413)


def test_unknown_paths_and_methods_are_openai_errors(client):
    assert err(client.get("/v1/nothing"), 404)["code"] == "not_found"
    assert err(client.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"


def test_no_capable_model_and_unknown_model(client):
    err(client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": MSG}), 404, "model", ("not in the pool",))


def test_an_unexpected_error_is_a_500_and_the_server_keeps_serving(svc):
    def boom(*a, **k):
        raise RuntimeError("unexpected")
    svc.complete = boom
    client = TestClient(create_app(svc), raise_server_exceptions=False)
    err(client.post("/v1/chat/completions", json={"model": "auto", "messages": MSG}), 500)
    assert client.get("/health").status_code == 200


def test_bearer_token(svc):
    client = TestClient(create_app(svc, token="s3cret"))
    e = err(client.get("/v1/models"), 401)
    assert e["type"] == "authentication_error"
    err(client.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200  # probes need no token
    with pytest.raises(ContractError):
        create_app(svc, token="")


def test_health_and_metrics(client):
    client.post("/v1/chat/completions", json={"model": "large", "messages": [{"role": "user", "content": "explode"}]})
    h = client.get("/health").json()
    assert h["status"] == "degraded" and h["models"]["large"]["cooling_down"] and h["router"] == "rules"
    client.post("/v1/chat/completions", json={"model": "auto", "messages": MSG})
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    for needle in ('zeta_decisions_total{kind="chat",model="small",route="auto"} 1',
                   'zeta_request_duration_seconds_count{model="small"} 1',
                   'zeta_attempt_failures_total{model="large",reason="error"} 1',
                   'zeta_artifact_info{version="none"} 1', 'zeta_router_rule_based 1',
                   'zeta_model_cooldown_seconds{model="large"}', "# TYPE zeta_fallbacks_total counter",
                   'zeta_http_requests_total{path="/v1/chat/completions",status="200"} 1'):
        assert needle in text, needle


def test_fallback_shows_in_header_and_metrics(svc):
    def flaky(model, req):
        if model.name == "small":
            raise RuntimeError("gone")
        return "ok"
    svc.backend.fn = flaky
    r = TestClient(create_app(svc)).post("/v1/chat/completions", json={"model": "auto", "messages": MSG})
    h = json.loads(r.headers["x-zeta-decision"])
    assert r.status_code == 200 and h["model"] == "large" and h["fallback_from"] == "small"
    assert svc.metrics.value("zeta_fallbacks_total", {"from_model": "small", "to_model": "large"}) == 1


def test_header_value_stays_short_and_ascii():
    h = {"decision_id": "d", "model": "m", "reason": "é" * 20000, "excluded": {f"m{i}": "why" * 50 for i in range(200)},
         "scores": {f"m{i}": {"quality": 0.5, "cost": 1.0, "latency_ms": 1.0, "utility": 0.1} for i in range(20)}}
    v = header_value(h)
    assert v.isascii() and len(v) <= 8000 and json.loads(v)["model"] == "m"


def test_parsers_give_backend_requests():
    req, opts, stream, usage = parse_chat({"model": "m", "messages": [
        {"role": "developer", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "a"},
                                                                                   {"type": "text", "text": "b"}]}],
        "max_completion_tokens": 5, "stop": "END", "response_format": {"type": "json_object"},
        "zeta": {"kind": "code", "timeout_ms": 1500, "candidates": ["x"]}})
    assert req.messages == ({"role": "system", "content": "be brief"}, {"role": "user", "content": "ab"})
    assert (req.max_tokens, req.stop, req.json_mode, stream, usage) == (5, ("END",), True, False, False)
    assert (opts.model, opts.kind, opts.timeout_s, opts.candidates) == ("m", "code", 1.5, ("x",))
    creq, _, _, _ = parse_completion({"model": "m", "prompt": ["p"]})
    assert creq.prompt == "p" and creq.max_tokens == 16
    ereq, _, fmt = parse_embeddings({"model": "m", "input": "x"})
    assert ereq.inputs == ("x",) and fmt == "float"
    with pytest.raises(ContractError):
        parse_embeddings({"model": "m", "input": [""]})
    with pytest.raises(ContractError):
        parse_embeddings({"model": "m", "input": [[1, 2]]})


def test_metrics_text_format_by_hand():
    m = Metrics()
    m.declare("x_total", "counter", "a counter")
    m.declare("lat_seconds", "histogram", "a histogram", buckets=(0.1, 1.0))
    m.inc("x_total", {"model": 'we"ird\\name\n'})
    m.observe("lat_seconds", 0.05)
    m.observe("lat_seconds", 0.5)
    m.observe("lat_seconds", 5.0)
    assert m.render() == (
        "# HELP x_total a counter\n# TYPE x_total counter\n"
        'x_total{model="we\\"ird\\\\name\\n"} 1\n'
        "# HELP lat_seconds a histogram\n# TYPE lat_seconds histogram\n"
        'lat_seconds_bucket{le="0.1"} 1\nlat_seconds_bucket{le="1"} 2\nlat_seconds_bucket{le="+Inf"} 3\n'
        "lat_seconds_sum 5.55\nlat_seconds_count 3\n")


# -- session affinity (issue 11), through the server with the official openai client -------------
def test_session_affinity_keeps_a_conversation_on_its_model_and_moves_when_it_fails(trained_registry, tmp_path):
    openai = pytest.importorskip("openai")
    from router_runtime import OutcomeLogger, parse_outcome_line

    # Two models the artifact never saw (same descriptors: equal quality); "b" costs a little more.
    pool = (parse_model({"name": "a", "capabilities": ["chat"], "size_b": 1.0, "ms_per_token": 1.0}),
            parse_model({"name": "b", "capabilities": ["chat"], "size_b": 1.0, "ms_per_token": 1.2}))
    failing: set[str] = set()

    def fn(model, req):
        if model.name in failing:
            raise RuntimeError(f"{model.name} is down")
        return f"answer {len(req.messages)} from {model.name}"

    router = Router.load(trained_registry, pool=pool, logger=OutcomeLogger(tmp_path))
    svc = RoutingService(router, FunctionBackend(fn), background_records=False, affinity_margin=0.05)
    client = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=TestClient(create_app(svc)))

    def turn(messages, model="auto"):
        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=8)
        c = raw.parse()
        return c.choices[0].message.content, json.loads(raw.headers["x-zeta-decision"])

    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    fresh = turn(msgs)[1]
    assert fresh["model"] == "a" and not fresh["sticky"]  # cheaper at equal quality
    answer, h = turn(msgs, model="b")  # the conversation starts on b (named)
    msgs += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And of Spain?"}]
    answer, h = turn(msgs)
    assert h["model"] == "b" and h["sticky"] and h["propensity"] == 1.0
    assert "session affinity: kept on b" in h["reason"] and "the router chose a" in h["reason"]
    failing.add("b")
    msgs += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And of Italy?"}]
    answer, h = turn(msgs)  # kept on b, b fails: a answers; b cools down
    assert h["model"] == "a" and h["fallback_from"] == "b"
    msgs += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And of Peru?"}]
    answer, h = turn(msgs)
    assert h["model"] == "a" and "session affinity: a again" in h["reason"]
    # An explicit key (the header) ties requests together without any history.
    failing.clear()
    svc._cooldown.clear()
    for model, text in (("b", "Hi"), ("auto", "Something else entirely")):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}], extra_headers={"x-zeta-conversation": "s-1"})
    h = json.loads(raw.headers["x-zeta-decision"])
    assert h["model"] == "b" and h["sticky"]
    recs = [parse_outcome_line(x) for f in sorted(tmp_path.glob("*.jsonl")) for x in f.read_text().splitlines()]
    sticky = [r for r in recs if r.sticky]
    assert [(r.model, r.propensity) for r in sticky] == [("b", 1.0)] * 3  # kept, failed attempt, header
    assert sticky[1].success is False and any(r.fallback_from == "b" and not r.sticky for r in recs)
