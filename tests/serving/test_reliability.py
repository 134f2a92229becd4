"""Issue 15, serving half: what a client can and cannot do to the service, through the real server
(uvicorn on a loopback port, configured by ``server_config`` exactly as ``zeta serve`` is) in front of
the function-backed fake backend.  The items that need real llama.cpp (a GGUF rewritten while loaded,
a corrupt or oversized model) are in tests/integration/test_reliability_llama.py."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

from artifact_docs import make_doc  # noqa: E402
from router_runtime import (ContractError, FunctionBackend, ModelUnavailableError, OutcomeLogger,  # noqa: E402
                            Router, RoutingService, write_artifact, set_current)
from router_runtime.pool import parse_model  # noqa: E402
from router_runtime.records import is_client_error, parse_outcome_line  # noqa: E402
from router_runtime.serving.backends import Finished, TextDelta  # noqa: E402
from live_server import Live  # noqa: E402
from router_runtime.serving.http import create_app, server_config  # noqa: E402

POOL = (parse_model({"name": "small", "capabilities": ["chat", "code"], "context_length": 512, "ms_per_token": 1.0}),
        parse_model({"name": "large", "capabilities": ["chat", "reason"], "size_b": 14, "context_length": 512,
                     "ms_per_token": 5.0}))
MSG = [{"role": "user", "content": "hello"}]


def reply(model, req):
    return [TextDelta("Hi"), TextDelta(" you"), Finished("stop", 3, 2)]


def service(fn=reply, *, tmp_path=None, pool=POOL, router=None, **kw):
    logger = OutcomeLogger(tmp_path) if tmp_path is not None else None
    router = router or Router(None, pool=pool, use_numpy=False, logger=logger)
    kw.setdefault("background_records", False)
    backend = kw.pop("backend", None) or FunctionBackend(fn, token_counter=lambda t: len(t.split()) + 1)
    return RoutingService(router, backend, **kw)


@pytest.fixture
def live():
    servers = []

    def start(svc, **limits):
        s = Live(svc, **limits)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


def records(tmp_path):
    return [parse_outcome_line(x) for f in sorted(tmp_path.glob("*.jsonl")) for x in f.read_bytes().splitlines()]


# -- item 3: client-caused failures never cool a model down and are no training label -------------------
def test_a_lone_surrogate_is_a_400_before_any_model(live, tmp_path):
    svc = service(tmp_path=tmp_path)
    srv = live(svc)
    raw = b'{"model": "auto", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'
    status, body = srv.request("POST", "/v1/chat/completions", raw=raw)
    assert status == 400 and body["error"]["param"] == "messages[0].content", body
    assert "lone surrogate" in body["error"]["message"]
    status, body = srv.request("POST", "/v1/completions", raw=b'{"model": "auto", "prompt": "\\udfff"}')
    assert status == 400 and body["error"]["param"] == "prompt"
    assert svc.backend.calls == [] and svc.cooling_down() == {} and records(tmp_path) == []
    assert srv.chat()[0] == 200  # and the server serves on


def test_a_client_timeout_cools_nothing_down_and_is_recorded_as_a_client_error(live, tmp_path):
    def slow(model, req):
        def gen():
            time.sleep(0.3)
            yield "late"
        return gen()
    svc = service(slow, tmp_path=tmp_path, max_hops=1)
    srv = live(svc)
    status, body = srv.chat({"timeout_ms": 1})
    assert status == 504 and body["error"]["code"] == "timeout"
    assert svc.cooling_down() == {} and all(m["failures"] == 0 for m in svc.health()["models"].values())
    recs = records(tmp_path)
    assert len(recs) == 2 and all(not r.success and is_client_error(r.error) and r.quality is None for r in recs)
    svc.backend.fn = reply
    status, body = srv.chat()
    assert status == 200 and body["model"] == "small"  # nobody was put to rest


def test_the_service_still_times_out_a_slow_model_and_rests_it(live):
    def slow(model, req):
        if model.name == "small":
            time.sleep(0.3)
        return "ok"
    svc = service(slow, timeout_s=0.05, max_hops=1)
    status, body = live(svc).chat()
    assert status == 200 and body["model"] == "large" and "small" in svc.cooling_down()


# -- item 8: deadlines hold while a backend blocks; probes never queue behind generation -----------------
def test_a_blocked_backend_is_timed_out_on_time(live):
    release = threading.Event()

    def stalls(model, req):
        release.wait(4.0)  # a stall inside the backend: no event comes out until it ends
        return "too late"
    svc = service(stalls, timeout_s=0.5, max_hops=0)
    srv = live(svc)
    t0 = time.monotonic()
    status, body = srv.chat()
    elapsed = time.monotonic() - t0
    release.set()
    assert status == 504 and elapsed < 2.0, (status, elapsed)


def test_health_and_metrics_answer_while_60_requests_wait_for_a_model(live):
    gate = threading.Event()

    def blocked(model, req):
        gate.wait(30)
        return "done"
    svc = service(blocked, timeout_s=30, max_hops=0)
    srv = live(svc)
    with ThreadPoolExecutor(60) as pool:
        futures = [pool.submit(srv.chat) for _ in range(60)]
        try:
            time.sleep(1.0)  # every worker thread of the server is now busy waiting on the model
            t0 = time.monotonic()
            status, health = srv.request("GET", "/health", timeout=5)
            t_health = time.monotonic() - t0
            t0 = time.monotonic()
            status_m, _ = srv.request("GET", "/metrics", timeout=5)
            t_metrics = time.monotonic() - t0
        finally:
            gate.set()
        answered = [f.result(timeout=60)[0] for f in futures]
    assert status == 200 and health["status"] in ("ok", "degraded") and status_m == 200
    assert t_health < 1.0 and t_metrics < 3.0, (t_health, t_metrics)
    assert answered.count(200) == 60


# -- item 9: a permanently broken model is out of the pool until its file changes -----------------------
class BrokenFileBackend(FunctionBackend):
    """``broken`` names models whose file is corrupt (ModelUnavailableError) until a test "fixes" it."""

    def __init__(self, fn, broken):
        super().__init__(fn)
        self.broken = dict(broken)

    def unavailable_models(self):
        return dict(self.broken)

    def generate(self, model, request):
        if model.name in self.broken:
            raise ModelUnavailableError(model.name, self.broken[model.name])
        return super().generate(model, request)


def test_a_permanently_broken_model_spends_no_hop_and_shows_in_health(live):
    backend = BrokenFileBackend(reply, {"large": "failed to load large.gguf: corrupt"})
    svc = service(backend=backend, max_hops=1)
    srv = live(svc)
    status, body = srv.chat(model="large")
    assert status == 503 and body["error"]["code"] == "model_unavailable"
    assert "until its file changes" in body["error"]["message"] and "corrupt" in body["error"]["message"]
    status, body = srv.chat({"kind": "reason"})  # the rules would pick "large", the largest reason-capable model
    assert status == 200 and body["model"] == "small" and [a["model"] for a in body["zeta"]["attempts"]] == ["small"]
    assert "until its file changes" in body["zeta"]["excluded"]["large"]
    assert backend.calls and {name for name, _ in backend.calls} == {"small"}
    _, health = srv.request("GET", "/health")
    assert health["status"] == "degraded" and "corrupt" in health["models"]["large"]["unavailable"]
    assert health["models"]["large"]["cooling_down"] is False
    _, metrics = srv.request("GET", "/metrics")
    assert 'zeta_model_unavailable{model="large"} 1' in metrics
    backend.broken.clear()  # the file was replaced
    status, body = srv.chat({"kind": "reason"})
    assert status == 200 and body["model"] == "large" and "excluded" not in body["zeta"]["reason"]


# -- item 10: header and body read timeouts, a connection cap --------------------------------------------
def test_partial_headers_are_dropped_after_the_header_timeout(live):
    srv = live(service(), header_timeout_s=0.5, limit_concurrency=64)
    socks = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")  # and never the rest
        s.settimeout(5)
        socks.append(s)
    t0 = time.monotonic()
    closed = sum(1 for s in socks if s.recv(1024) == b"")  # b"": the server closed the connection
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()
    assert closed == 40 and elapsed < 3.0, (closed, elapsed)
    assert srv.chat()[0] == 200


def test_a_slow_body_gets_408(live):
    srv = live(service(), body_timeout_s=0.5, header_timeout_s=5)
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"model\":")
        s.settimeout(5)
        t0 = time.monotonic()
        answer = b""
        while b"}}" not in answer:
            piece = s.recv(4096)
            if not piece:
                break
            answer += piece
    assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout" in answer and time.monotonic() - t0 < 3.0


def test_connections_beyond_the_limit_get_503_at_once_and_the_server_recovers(live):
    srv = live(service(), header_timeout_s=30, limit_concurrency=8)
    holders = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(8)]
    time.sleep(0.2)
    with socket.create_connection(("127.0.0.1", srv.port)) as extra:
        extra.settimeout(5)
        assert extra.recv(4096).startswith(b"HTTP/1.1 503")
    for h in holders:
        h.close()
    time.sleep(0.2)
    assert srv.chat()[0] == 200


def test_the_limits_are_checked():
    app = create_app(service())
    for kw in ({"header_timeout_s": 0}, {"keep_alive_s": 0}, {"limit_concurrency": 0}):
        with pytest.raises(ContractError):
            server_config(app, **kw)
    with pytest.raises(ContractError):
        create_app(service(), body_timeout_s=float("inf"))


# -- item 11: zeta.kind is one of the pool's kinds -------------------------------------------------------
def test_only_the_pools_kinds_are_accepted_and_metrics_stay_bounded(live):
    srv = live(service())
    for i in range(50):
        status, body = srv.chat({"kind": f"made-up-kind-{i}"})
        assert status == 400 and body["error"]["param"] == "zeta.kind", body
        assert "chat, code, reason" in body["error"]["message"]
    assert srv.chat({"kind": "code"})[0] == 200
    _, metrics = srv.request("GET", "/metrics")
    assert "made-up-kind" not in metrics and 'kind="code"' in metrics


# -- items 12, 13: numbers a client can send ------------------------------------------------------------
@pytest.mark.parametrize("raw,param", [
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + b"9" * 5000 + b"}",
     "body"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + b"9" * 400 + b"}",
     "max_tokens"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "seed": ' + b"9" * 400 + b"}", "seed"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "zeta": {"cost_weight": 1e308}}',
     "zeta.cost_weight"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "zeta": {"cost_weight": ' + b"9" * 400
     + b"}}", "zeta.cost_weight"),
])
def test_huge_numbers_are_400_naming_the_field(live, raw, param):
    svc = service()
    srv = live(svc)
    status, body = srv.request("POST", "/v1/chat/completions", raw=raw)
    assert status == 400 and body["error"]["param"] == param, body
    assert len(body["error"]["message"]) < 300  # the number is not echoed back whole
    assert svc.backend.calls == []


def test_cost_weight_is_bounded_for_callers_and_artifacts(reg):
    from artifact_docs import raises
    from router_runtime.artifact import parse_router

    router = Router(None, pool=POOL, use_numpy=False)
    with pytest.raises(ContractError, match="cost_weight"):
        router.decide("hi", cost_weight=1e308)
    assert router.decide("hi", cost_weight=1e6).model is not None
    doc = make_doc()
    doc["policy"]["cost_weight"] = 1e308
    doc["version"] = "v1"
    raises(ContractError, lambda: parse_router(doc), "policy.cost_weight")


# -- item 16: a refused hot reload shows in /health and /metrics -----------------------------------------
def test_a_refused_hot_reload_shows_in_health_and_metrics(live, reg):
    first = write_artifact(reg, make_doc(), {}).name
    set_current(reg, first)
    router = Router.load(reg, reload_interval_ms=10)
    doc = make_doc()
    doc["policy"]["cost_weight"] = 0.7
    second = write_artifact(reg, doc, {"parent_version": first})
    path = second / "router.json"
    path.write_bytes(path.read_bytes().replace(b'"cost_weight": 0.7', b'"cost_weight": 0.9'))  # tampered
    (reg / "CURRENT").write_text(second.name + "\n")  # by hand, as a bad actor would (set_current verifies)
    assert router.reload() is False
    srv = live(service(router=router))
    _, health = srv.request("GET", "/health")
    assert health["status"] == "degraded" and "ArtifactIntegrityError" in health["reload_error"]
    assert health["reloads_refused"] >= 1 and health["artifact_version"] == first
    _, metrics = srv.request("GET", "/metrics")
    assert "zeta_artifact_reload_refused 1" in metrics and "zeta_artifact_reloads_refused_total" in metrics
    assert f'zeta_artifact_info{{version="{first}"}} 1' in metrics


# -- item 19: the real cause instead of "empty pool" -----------------------------------------------------
def test_many_tiny_messages_name_the_per_message_overhead(live):
    srv = live(service())
    status, body = srv.chat(messages=[{"role": "user", "content": "a"}] * 1000)
    msg = body["error"]["message"]
    assert status == 400 and body["error"]["code"] == "context_length_exceeded", body
    assert "per-message overhead" in msg and "empty pool" not in msg and "small" in msg and "large" in msg
