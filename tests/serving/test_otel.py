"""OpenTelemetry: one span per request with the GenAI semantic-convention attributes and the decision's,
checked with the SDK's in-memory exporter, through the service and through the HTTP server; off (and
not even imported) unless configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from router_runtime import FunctionBackend, Router, RoutingService  # noqa: E402
from router_runtime.errors import ServingError  # noqa: E402
from router_runtime.pool import parse_model  # noqa: E402
from router_runtime.serving.backends import Finished, GenerationRequest, TextDelta  # noqa: E402
from router_runtime.serving.completion import RouteOptions  # noqa: E402
from router_runtime.serving.otel import Tracing, tracing_from_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
POOL = (parse_model({"name": "small", "capabilities": ["chat"], "ms_per_token": 1.0}),
        parse_model({"name": "large", "capabilities": ["chat"], "size_b": 14, "ms_per_token": 5.0}))
CHAT = GenerationRequest("chat", messages=({"role": "user", "content": "hello"},), max_tokens=8, temperature=0.2,
                         top_k=30, seed=3)


def make(fn):
    exporter = InMemorySpanExporter()
    svc = RoutingService(Router(None, pool=POOL, use_numpy=False), FunctionBackend(fn), max_hops=1,
                         tracer=Tracing(exporter=exporter, batch=False), background_records=False)
    return svc, exporter


def test_a_span_per_request_with_genai_and_decision_attributes():
    svc, exporter = make(lambda m, r: [TextDelta("Hi"), Finished("stop", 4, 2)])
    c = svc.complete(CHAT, RouteOptions(model="auto:cw=0.4"))
    (span,) = exporter.get_finished_spans()
    a = dict(span.attributes)
    assert span.name == "chat auto:cw=0.4" and span.kind == SpanKind.SERVER
    assert span.status.status_code == StatusCode.UNSET
    assert (a["gen_ai.operation.name"], a["gen_ai.request.model"], a["gen_ai.response.model"]) == (
        "chat", "auto:cw=0.4", c.model)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (4, 2)
    assert a["gen_ai.response.finish_reasons"] == ("stop",) and a["gen_ai.response.id"] == c.decision_id
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.temperature"], a["gen_ai.request.top_k"],
            a["gen_ai.request.seed"]) == (8, 0.2, 30, 3)
    d = c.decision
    assert a["zeta.decision.candidates"] == tuple(s.model for s in d.scores) == ("small", "large")
    assert (a["zeta.decision.chosen"], a["zeta.decision.propensity"], a["zeta.decision.explored"]) == (
        d.model, d.propensity, d.explored)
    assert (a["zeta.artifact.version"], a["zeta.decision.rule_based"], a["zeta.decision.cost_weight"]) == (
        "none", True, 0.4)
    assert a["zeta.attempts"] == 1 and "zeta.fallback_from" not in a
    assert [e.name for e in span.events] == ["zeta.attempt"]


def test_a_fallback_and_a_failure_are_in_the_span():
    def flaky(model, req):
        if model.name == "small":
            raise RuntimeError("small crashed")
        return "ok"

    svc, exporter = make(flaky)
    c = svc.complete(CHAT)
    a = dict(exporter.get_finished_spans()[-1].attributes)
    assert (a["zeta.decision.chosen"], a["gen_ai.response.model"], a["zeta.fallback_from"], a["zeta.attempts"]) == (
        "small", "large", "small", 2)
    assert c.model == "large"

    svc, exporter = make(lambda m, r: (_ for _ in ()).throw(RuntimeError("down")))
    with pytest.raises(ServingError):
        svc.complete(CHAT)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "backend_error"
    assert span.attributes["http.response.status_code"] == 502 and span.attributes["zeta.attempts"] == 2


def test_the_http_server_continues_the_callers_trace():
    starlette = pytest.importorskip("starlette.testclient")
    from router_runtime import create_app

    svc, exporter = make(lambda m, r: [TextDelta("Hi"), Finished("stop", 4, 2)])
    client = starlette.TestClient(create_app(svc))
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "x"}],
                                                  "stream": True},
                    headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    assert r.status_code == 200 and "[DONE]" in r.text
    (span,) = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == trace_id and format(span.parent.span_id, "016x") == parent
    assert span.attributes["gen_ai.response.model"] == json.loads(r.headers["x-zeta-decision"])["model"]


def test_tracing_is_off_and_not_imported_unless_configured():
    assert tracing_from_config(False, None, environ={}) is None
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    t = tracing_from_config(False, None, environ=env)  # the exporter is built; nothing is sent yet
    assert isinstance(t, Tracing)
    t.shutdown()
    code = ("import sys\n"
            "from router_runtime import FunctionBackend, Router, RoutingService, create_app\n"
            "from router_runtime.pool import parse_model\n"
            "svc = RoutingService(Router(None, pool=(parse_model({'name': 'a'}),)), FunctionBackend(lambda m, r: 'x'))\n"
            "create_app(svc)\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(env, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
