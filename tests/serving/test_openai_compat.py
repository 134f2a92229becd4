"""What agent frameworks and standard UIs send, through the real server (uvicorn on a loopback port)
and the official openai client, on the fake backend: tools and tool calls (streamed too), llama.cpp's
sampling knobs, json_schema, model aliases and routing headers, feedback for any decision, and a
client's retries of a 502 recorded as retries of one request."""

from __future__ import annotations

import json

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("uvicorn")
from test_reliability import Live  # noqa: E402  (tests/serving: uvicorn on a thread, as zeta serve runs it)

from router_runtime import FunctionBackend, OutcomeLogger, Router, RoutingService  # noqa: E402
from router_runtime.errors import ContractError  # noqa: E402
from router_runtime.pool import load_aliases, load_pool, parse_model  # noqa: E402
from router_runtime.records import parse_outcome_line  # noqa: E402
from router_runtime.serving.backends import Finished, TextDelta  # noqa: E402

POOL = (parse_model({"name": "small", "capabilities": ["chat"], "ms_per_token": 1.0}),
        parse_model({"name": "large", "capabilities": ["chat", "reason", "tools"], "size_b": 14,
                     "ms_per_token": 5.0}))
ALIASES = {"auto:cheap": {"cost_weight": 5.0}, "auto:best": {"cost_weight": 0.0, "candidates": ("large",)}}
MSG = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


class Script:
    """The fake model: answers by what the request asks for, and keeps every request it saw."""

    def __init__(self):
        self.fail = False

    def __call__(self, model, req):
        if self.fail:
            raise RuntimeError("model crashed")
        if req.tool_choice == "function":
            return [TextDelta('{"city": '), TextDelta('"Paris"}'), Finished("stop", 5, 4)]
        if req.tool_choice == "required":
            return [TextDelta('{"name": "get_time", '), TextDelta('"arguments": {}}'), Finished("stop", 5, 6)]
        if req.json_mode:
            return '{"answer": 42}'
        return [TextDelta("Sunny"), TextDelta(" and mild"), Finished("stop", 5, 3)]


@pytest.fixture
def world(tmp_path):
    script = Script()
    backend = FunctionBackend(script)
    router = Router(None, pool=POOL, use_numpy=False, logger=OutcomeLogger(tmp_path / "logs"))
    svc = RoutingService(router, backend, max_hops=1, aliases=ALIASES, cooldown_s=0.0)
    live = Live(svc)
    client = openai.OpenAI(base_url=live.base + "/v1", api_key="unused", max_retries=0)
    yield live, client, backend, script, svc, tmp_path / "logs"
    live.stop()


def records(log_dir):
    out = []
    for f in sorted(log_dir.rglob("*.jsonl")):
        out += [parse_outcome_line(x) for x in f.read_bytes().splitlines() if x.strip()]
    return out


def decision(raw):
    return json.loads(raw.headers["x-zeta-decision"])


# -- tools ------------------------------------------------------------------------------------------
def test_a_forced_tool_call_comes_back_as_tool_calls_from_a_tools_model(world):
    live, client, backend, *_ = world
    r = client.chat.completions.create(model="auto", messages=MSG, tools=[WEATHER, CLOCK],
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"} and call.id.startswith("call_")
    assert r.model == "large"  # small does not declare "tools"
    name, req = backend.calls[-1]
    assert json.loads(req.json_schema) == WEATHER["function"]["parameters"] and req.json_mode
    assert [t["function"]["name"] for t in req.tools] == ["get_weather", "get_time"]


def test_the_tool_loop_of_an_agent_continues_with_tool_messages(world):
    live, client, backend, *_ = world
    first = client.chat.completions.create(model="auto", messages=MSG, tools=[WEATHER],
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = first.choices[0].message.tool_calls[0]
    follow = MSG + [first.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'}]
    r = client.chat.completions.create(model="auto", messages=follow, tools=[WEATHER])
    assert r.choices[0].message.content == "Sunny and mild" and r.choices[0].finish_reason == "stop"
    _, req = backend.calls[-1]
    assert req.tool_choice == "auto" and req.json_schema is None
    assert req.messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert req.messages[2] == {"role": "tool", "content": '{"temp_c": 18}', "tool_call_id": call.id}


def test_streamed_tool_calls_forced_and_required(world):
    live, client, *_ = world
    chunks = list(client.chat.completions.create(
        model="auto", messages=MSG, tools=[WEATHER], stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id.startswith("call_") and calls[0].function.name == "get_weather"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)

    chunks = list(client.chat.completions.create(model="auto", messages=MSG, tools=[WEATHER, CLOCK],
                                                 tool_choice="required", stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name == "get_time" and json.loads(calls[0].function.arguments) == {}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_required_tool_choice_constrains_to_a_choice_of_tools(world):
    live, client, backend, *_ = world
    r = client.chat.completions.create(model="auto", messages=MSG, tools=[WEATHER, CLOCK], tool_choice="required")
    assert r.choices[0].message.tool_calls[0].function.name == "get_time"
    schema = json.loads(backend.calls[-1][1].json_schema)
    assert [v["properties"]["name"]["const"] for v in schema["anyOf"]] == ["get_weather", "get_time"]


def test_tools_refused_only_when_no_model_can_call_them(world, tmp_path):
    live, client, *_ = world
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="small", messages=MSG, tools=[WEATHER])
    body = e.value.body
    assert body["param"] == "tools" and "does not declare the capability 'tools'" in body["message"]
    assert "models that can: large" in body["message"]
    # tool_choice "none": no tool can be called, so any model serves (and sees no tools)
    r = client.chat.completions.create(model="small", messages=MSG, tools=[WEATHER], tool_choice="none")
    assert r.choices[0].message.content == "Sunny and mild"

    no_tools = RoutingService(Router(None, pool=POOL[:1], use_numpy=False), FunctionBackend(Script()))
    other = Live(no_tools)
    try:
        c = openai.OpenAI(base_url=other.base + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="auto", messages=MSG, tools=[WEATHER])
        assert e.value.body["param"] == "tools" and e.value.body["code"] == "no_capable_model"
        assert "no model of the pool declares the capability 'tools'" in e.value.body["message"]
    finally:
        other.stop()


# -- sampling and structured output -----------------------------------------------------------------
def test_llama_cpp_sampling_knobs_pass_through(world):
    live, client, backend, *_ = world
    client.chat.completions.create(model="small", messages=MSG, seed=7, logit_bias={"15": -100, "42": 2.5},
                                   extra_body={"top_k": 20, "min_p": 0.1, "repeat_penalty": 1.3})
    _, req = backend.calls[-1]
    assert (req.top_k, req.min_p, req.repeat_penalty, req.seed) == (20, 0.1, 1.3, 7)
    assert req.logit_bias == ((15, -100.0), (42, 2.5))
    client.completions.create(model="small", prompt="Once", extra_body={"top_k": 5, "min_p": 0.2})
    _, req = backend.calls[-1]
    assert (req.mode, req.top_k, req.min_p) == ("completion", 5, 0.2)


def test_json_schema_response_format(world):
    live, client, backend, *_ = world
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    r = client.chat.completions.create(model="auto", messages=MSG, response_format={
        "type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}})
    assert json.loads(r.choices[0].message.content) == {"answer": 42}
    _, req = backend.calls[-1]
    assert req.json_mode and json.loads(req.json_schema) == schema


# -- aliases and headers ----------------------------------------------------------------------------
def test_aliases_and_headers_set_the_routing_options(world):
    live, client, *_ = world
    raw = client.chat.completions.with_raw_response.create(model="auto:best", messages=MSG)
    h = decision(raw)
    assert (h["requested_model"], h["routed"], h["cost_weight"], h["model"]) == ("auto:best", True, 0.0, "large")
    assert decision(client.chat.completions.with_raw_response.create(
        model="auto:cw=0.3", messages=MSG))["cost_weight"] == 0.3
    # a header wins over the alias, the body's zeta field over the header
    h = decision(client.chat.completions.with_raw_response.create(
        model="auto:cheap", messages=MSG, extra_headers={"x-zeta-cost-weight": "0.7"}))
    assert h["cost_weight"] == 0.7
    h = decision(client.chat.completions.with_raw_response.create(
        model="auto:cheap", messages=MSG, extra_headers={"x-zeta-cost-weight": "0.7", "x-zeta-kind": "reason"},
        extra_body={"zeta": {"cost_weight": 0.2}}))
    assert (h["cost_weight"], h["kind"], h["model"]) == (0.2, "reason", "large")
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="auto:nope", messages=MSG)
    assert "auto:best" in e.value.body["message"] and e.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="auto:cw=lots", messages=MSG)
    assert e.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="auto", messages=MSG, extra_headers={"x-zeta-max-latency-ms": "-5"})
    assert e.value.body["param"] == "x-zeta-max-latency-ms"
    ids = [m.id for m in client.models.list().data]
    assert ids == ["auto", "auto:best", "auto:cheap", "small", "large"]


def test_aliases_come_from_the_pool_file(tmp_path):
    pool = tmp_path / "pool.toml"
    pool.write_text('[[models]]\nname = "small"\n\n[[models]]\nname = "large"\n\n[aliases]\n'
                    '"auto:cheap" = { cost_weight = 2.0 }\n"auto:big" = { candidates = ["large"], timeout_ms = 500 }\n',
                    encoding="utf-8")
    assert load_aliases(pool) == {"auto:cheap": {"cost_weight": 2.0},
                                  "auto:big": {"candidates": ("large",), "timeout_ms": 500.0}}
    assert [m.name for m in load_pool(pool)] == ["small", "large"]
    for table, field, words in (('"cheap" = { cost_weight = 1 }', "aliases.cheap", "starts with"),
                                ('"auto:x" = { cost_wieght = 1 }', "aliases.auto:x.cost_wieght", "unknown routing"),
                                ('"auto:x" = { candidates = ["huge"] }', "aliases.auto:x.candidates", "not a model"),
                                ('"auto:cw=1" = { cost_weight = 1 }', "aliases.auto:cw=1", "built in")):
        pool.write_text(f'[[models]]\nname = "small"\n\n[[models]]\nname = "large"\n\n[aliases]\n{table}\n')
        with pytest.raises(ContractError) as e:
            load_pool(pool)
        assert e.value.field == field and words in e.value.problem


# -- feedback and retries ---------------------------------------------------------------------------
def test_feedback_for_any_decision_is_written_to_the_log(world):
    live, client, _, _, svc, logs = world
    out = client.post("/feedback", cast_to=object, body={"decision_id": "answered-elsewhere", "quality": 0.3})
    assert out == {"decision_id": "answered-elsewhere", "model": "unknown", "quality": 0.3,
                   "quality_source": "user", "recorded": True, "remembered": False}
    svc.flush()
    (line,) = records(logs)
    assert (line.decision_id, line.quality, line.quality_source, line.query) == ("answered-elsewhere", 0.3, "user", None)


def test_retries_of_a_502_are_marked_as_retries_of_one_request(world):
    live, client, _, script, svc, logs = world
    script.fail = True
    retrying = openai.OpenAI(base_url=live.base + "/v1", api_key="unused", max_retries=2)
    with pytest.raises(openai.InternalServerError):  # 502 after the fallback failed too, three times
        retrying.with_options(timeout=30).chat.completions.create(model="auto", messages=MSG)
    svc.flush()
    recs = records(logs)
    first = [r for r in recs if r.retry_of is None]
    again = [r for r in recs if r.retry_of is not None]
    assert len(first) == 2 and len(again) == 4  # each request: one attempt + one fallback
    assert {r.retry_of for r in again} == {first[0].decision_id}
    assert all(r.request_id is None for r in recs)

    # an explicit request id: any later request with it is a retry, whatever the body
    script.fail = False
    for body in ("a", "b"):
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": body}],
                                       extra_headers={"x-zeta-request-id": "job-17"})
    svc.flush()
    tagged = [r for r in records(logs) if r.request_id == "job-17"]
    assert len(tagged) == 2 and tagged[0].retry_of is None and tagged[1].retry_of == tagged[0].decision_id
    # the same body again, without the client saying it retries: a new request
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "a"}])
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "a"}])
    svc.flush()
    assert all(r.retry_of is None for r in records(logs)[-2:])
