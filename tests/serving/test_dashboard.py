"""The dashboard's JSON (``/ui/data.json``) against ``/metrics`` through the real server, the token
on both, the per-minute ring, the cost baseline rule, the histogram quantile, the registry section,
and hot reload without traffic (the service's timer) with its log lines.  The page itself is driven
in a real browser in test_dashboard_browser.py."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

from artifact_docs import make_doc  # noqa: E402
from live_server import Live  # noqa: E402
from router_runtime import BackendError, FunctionBackend, Router, RoutingService, promote, write_artifact  # noqa: E402
from router_runtime.pool import parse_model  # noqa: E402
from router_runtime.registry import annotate_manifest, report_path  # noqa: E402
from router_runtime.router import CandidateScore  # noqa: E402
from router_runtime.serving.activity import DecisionTimeline, largest_capable  # noqa: E402
from router_runtime.serving.backends import Finished, TextDelta  # noqa: E402
from router_runtime.serving.dashboard import page_html  # noqa: E402
from router_runtime.serving.metrics import histogram_quantile  # noqa: E402
from conftest import wait_for

TOKEN = "dash-secret"
POOL = (parse_model({"name": "small", "capabilities": ["chat", "code"], "size_b": 1, "context_length": 512,
                     "ms_per_token": 1.0}),
        parse_model({"name": "large", "capabilities": ["chat", "code"], "size_b": 14, "context_length": 512,
                     "ms_per_token": 5.0}),
        parse_model({"name": "flaky", "capabilities": ["chat"], "size_b": 3, "context_length": 512,
                     "ms_per_token": 2.0}))


def reply(model, req):
    if model.name == "flaky":
        raise BackendError("flaky", "the fake refuses")
    time.sleep({"small": 0.002, "large": 0.03}[model.name])  # two latency buckets apart
    return [TextDelta("Hi"), TextDelta(" there"), Finished("stop", 3, 2)]


@pytest.fixture
def live():
    servers = []

    def start(svc, **kw):
        s = Live(svc, **kw)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()
        s.service.close()


def fetch(url, token=None):
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def parse_prometheus(text):
    """name -> {frozenset(labels): value}, the test's own reading of the exposition format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, line
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return out


def by(samples, label, skip=()):
    out = {}
    for labels, v in samples.items():
        d = dict(labels)
        if any(d.get(k) == x for k, x in skip):
            continue
        out[d[label]] = out.get(d[label], 0.0) + v
    return out


def quantile_from_scrape(scraped, name, model, q):
    """Prometheus' histogram_quantile, computed independently from the scraped bucket lines."""
    buckets = sorted((float(dict(k)["le"]), v) for k, v in scraped[f"{name}_bucket"].items()
                     if model in (None, dict(k)["model"]) and dict(k)["model"] != "none")
    merged = {}
    for le, v in buckets:
        merged[le] = merged.get(le, 0.0) + v
    les = sorted(merged)
    total = merged[math.inf]
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le in les:
        if merged[le] >= rank:
            if le == math.inf:
                return les[-2] * 1000
            return (prev_le + (le - prev_le) * (rank - prev_c) / (merged[le] - prev_c)) * 1000
        prev_le, prev_c = le, merged[le]


def traffic(srv):
    """Routed and named chats, a fallback off the failing model, and one feedback."""
    for _ in range(3):
        assert srv.chat()[0] == 200
    for _ in range(2):
        assert srv.chat(model="large")[0] == 200
    assert srv.chat(zeta={"candidates": ["flaky", "large"], "cost_weight": 10.0})[0] == 200  # flaky first, fails
    status, body = srv.chat(model="small")
    assert status == 200
    assert srv.request("POST", "/v1/feedback", {"decision_id": body["zeta"]["decision_id"], "quality": 0.9})[0] == 200
    return body


def test_data_json_numbers_are_the_metrics_numbers(live):
    svc = RoutingService(Router(None, pool=POOL, use_numpy=False), FunctionBackend(reply), cooldown_s=60)
    srv = live(svc, token=TOKEN)
    last = traffic(srv)
    status, _, data = fetch(srv.base + "/ui/data.json", TOKEN)
    assert status == 200
    d = json.loads(data)
    status, _, text = fetch(srv.base + "/metrics", TOKEN)
    assert status == 200
    scraped = parse_prometheus(text)

    decisions = by(scraped["zeta_decisions_total"], "model")
    assert d["decisions"]["by_model"] == decisions and sum(decisions.values()) == 7
    assert d["decisions"]["by_route"] == by(scraped["zeta_decisions_total"], "route")
    assert sum(sum(m["counts"].values()) for m in d["decisions"]["per_minute"]) == 7
    assert d["served"] == {dict(k)["model"]: v for k, v in scraped["zeta_request_duration_seconds_count"].items()}
    assert d["served"] == {"large": 3, "small": 4}
    spent = by(scraped["zeta_cost_expected_total"], "model")
    largest = by(scraped["zeta_cost_largest_total"], "model")
    assert d["cost"]["spent_by_model"] == spent and d["cost"]["largest_by_model"] == largest
    assert d["cost"]["spent"] == pytest.approx(sum(spent.values()))
    assert d["cost"]["largest_capable"] == pytest.approx(sum(largest.values()))
    # Routed requests are compared with "large"; a request naming "small" had no other candidate.
    assert set(largest) == {"large", "small"}
    assert 0 < d["cost"]["saved_fraction"] == pytest.approx(1 - sum(spent.values()) / sum(largest.values()))
    for model in ("small", "large", None):
        key = model or "all"
        for q, name in ((0.5, "p50"), (0.95, "p95")):
            want = quantile_from_scrape(scraped, "zeta_request_duration_seconds", model, q)
            assert d["latency_ms"][key][name] == pytest.approx(want, abs=1e-3)
            assert d["ttft_ms"][key][name] == pytest.approx(
                quantile_from_scrape(scraped, "zeta_ttft_seconds", model, q), abs=1e-3)
    assert d["latency_ms"]["large"]["p50"] > d["latency_ms"]["small"]["p50"]
    assert d["quality"]["feedback"] == by(scraped["zeta_feedback_total"], "model") == {"small": 1}
    assert {m: sum(r.values()) for m, r in d["failures"].items()} == by(scraped["zeta_attempt_failures_total"], "model")
    assert d["failures"] == {"flaky": {"error": 1}}
    assert d["fallbacks"] == sum(scraped["zeta_fallbacks_total"].values()) == 1
    flaky = next(m for m in d["models"] if m["name"] == "flaky")
    assert flaky["cooldown_remaining_s"] > 0 and "the fake refuses" in flaky["last_error"]
    assert d["recent_decision"]["decision_id"] == last["zeta"]["decision_id"]
    assert d["recent_decision"]["model"] == "small"
    assert d["router"]["kind"] == "rules" and d["registry"]["root"] is None


def test_the_token_guards_the_page_and_its_data(live):
    svc = RoutingService(Router(None, pool=POOL, use_numpy=False), FunctionBackend(reply))
    srv = live(svc, token=TOKEN)
    for token in (None, "wrong"):
        status, headers, body = fetch(srv.base + "/ui/data.json", token)
        assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
        status, headers, body = fetch(srv.base + "/ui", token)
        # The prompt: the static page itself, nothing of the service in it, so a browser can ask for the token.
        assert status == 401 and headers["content-type"].startswith("text/html")
        assert body == page_html().decode() and 'id="login-form"' in body
    status, headers, body = fetch(srv.base + "/ui", TOKEN)
    assert status == 200 and "connect-src 'self'" in headers["content-security-policy"]
    status, _, body = fetch(srv.base + "/ui/data.json", TOKEN)
    assert status == 200 and "decisions" in json.loads(body)
    open_srv = live(RoutingService(Router(None, pool=POOL, use_numpy=False), FunctionBackend(reply)))
    assert fetch(open_srv.base + "/ui")[0] == fetch(open_srv.base + "/ui/data.json")[0] == 200  # no token set


def test_histogram_quantile_on_a_hand_computed_histogram():
    bounds, cumulative = (1.0, 2.0, 4.0), (2.0, 6.0, 8.0, 10.0)  # 2 in (0,1], 4 in (1,2], 2 in (2,4], 2 above
    assert histogram_quantile(0.1, bounds, cumulative) == 0.5    # rank 1 of the first bucket's 2
    assert histogram_quantile(0.5, bounds, cumulative) == 1.75   # rank 5: 1 + (5 - 2) / 4
    assert histogram_quantile(0.7, bounds, cumulative) == 3.0    # rank 7: 2 + 2 * (7 - 6) / 2
    assert histogram_quantile(0.95, bounds, cumulative) == 4.0   # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, bounds, (0.0, 0.0, 0.0, 0.0)) is None


def test_the_decision_ring_counts_per_minute_and_forgets_old_minutes():
    now = [600.0]
    t = DecisionTimeline(3, clock=lambda: now[0])
    t.add("a")
    t.add("a")
    now[0] += 60
    t.add("b")
    assert [m["counts"] for m in t.series()] == [{}, {"a": 2}, {"b": 1}]
    assert [m["minute"] for m in t.series()] == [540, 600, 660]  # minute starts, in unix seconds
    now[0] += 120  # a quiet minute, then one more decision: the first minute has left the window
    t.add("a")
    assert [m["counts"] for m in t.series()] == [{"b": 1}, {}, {"a": 1}]
    now[0] += 600  # ten quiet minutes: nothing left to show
    assert [m["counts"] for m in t.series()] == [{}, {}, {}] and len(t._ring) <= 3


def test_largest_capable_is_the_biggest_priced_candidate():
    sizes = {"s": 1.0, "m": 7.0, "l": 70.0, "x": None}
    score = lambda m, c: CandidateScore(model=m, quality=0.5, cost=c, latency_ms=None, utility=0.0)  # noqa: E731
    assert largest_capable([score("s", 1.0), score("l", 9.0), score("m", 3.0)], sizes.get).model == "l"
    assert largest_capable([score("s", 1.0), score("l", None)], sizes.get).model == "s"  # no cost: cannot compare
    assert largest_capable([score("x", 5.0), score("s", 1.0)], sizes.get).model == "s"   # unknown size counts last
    assert largest_capable([score("x", 5.0)], sizes.get).model == "x"
    assert largest_capable([score("s", None)], sizes.get) is None


# -- the registry section, and hot reload without traffic ------------------------------------------------------
def _registry(tmp_path):
    reg = tmp_path / "reg"
    first = write_artifact(reg, make_doc(), {"training": {"rows": 10}})
    annotate_manifest(first, "promotion", {"promoted": True, "reason": "no champion yet", "champion_version": None})
    promote(reg, first.name, reason="no champion yet")
    return reg, first.name


def _candidate(reg, champion, *, promoted, cost_weight):
    doc = make_doc()
    doc["policy"]["cost_weight"] = cost_weight
    v = write_artifact(reg, doc, {"parent_version": champion})
    evaluation = {"candidate": {"dr": 0.61, "snips": 0.6, "ess": 41.5}, "champion": {"dr": 0.6},
                  "difference": {"estimator": "dr", "diff": 0.01, "ci_low": -0.02, "ci_high": 0.04}}
    decision = {"promoted": promoted, "reason": "lower bound not above margin 0" if not promoted else "better",
                "champion_version": champion}
    annotate_manifest(v, "promotion", decision)
    annotate_manifest(v, "evaluation", evaluation)
    report_path(reg, v.name).parent.mkdir(exist_ok=True)
    report_path(reg, v.name).write_text(json.dumps({"version": v.name, "decision": decision,
                                                    "ingest": {"ingested": 120, "feedback": 7}}))
    return v.name


def test_registry_versions_and_gate_decisions_are_shown(tmp_path, live):
    reg, first = _registry(tmp_path)
    refused = _candidate(reg, first, promoted=False, cost_weight=0.3)
    router = Router.load(reg, use_numpy=False, reload_interval_ms=50)
    svc = RoutingService(router, FunctionBackend(lambda m, r: "ok"))
    srv = live(svc, token=TOKEN)
    d = json.loads(fetch(srv.base + "/ui/data.json", TOKEN)[2])
    r = d["registry"]
    assert r["root"] == str(reg) and r["current"] == first
    assert [v["version"] for v in r["versions"]] == [refused, first]  # newest first
    new, old = r["versions"]
    assert new["promoted"] is False and "margin" in new["reason"] and not new["serving"]
    assert new["figures"] == {"difference.diff": 0.01, "difference.ci_low": -0.02, "difference.ci_high": 0.04,
                              "candidate.dr": 0.61, "candidate.snips": 0.6, "candidate.ess": 41.5}
    assert old["promoted"] is True and old["serving"] and old["current"]
    assert r["history"][0]["version"] == first and r["history"][0]["action"] == "promote"
    assert d["router"]["artifact_version"] == first and d["router"]["reload_interval_ms"] == 50


def test_a_promotion_is_swapped_in_without_traffic_and_logged(tmp_path, caplog):
    reg, first = _registry(tmp_path)
    svc = RoutingService(Router.load(reg, use_numpy=False, reload_interval_ms=20), FunctionBackend(lambda m, r: "ok"))
    try:
        second = _candidate(reg, first, promoted=True, cost_weight=0.5)
        with caplog.at_level(logging.INFO, logger="zeta.reload"):
            promote(reg, second, reason="better")
            # No request reaches the service: only its timer can notice the new CURRENT.
            assert wait_for(lambda: svc.router.artifact_version == second)
            assert wait_for(lambda: any("swapped in" in r.getMessage() for r in caplog.records))
        line = next(r for r in caplog.records if "swapped in" in r.getMessage())
        assert line.name == "zeta.reload" and line.levelno == logging.INFO
        assert second in line.getMessage() and f"(was {first})" in line.getMessage()
    finally:
        svc.close()
    assert not svc._reload_timer.running  # close() stops the timer


def test_a_refused_reload_is_logged_with_its_reason_and_the_old_version_serves(tmp_path, caplog):
    reg, first = _registry(tmp_path)
    svc = RoutingService(Router.load(reg, use_numpy=False, reload_interval_ms=20), FunctionBackend(lambda m, r: "ok"))
    try:
        bad = _candidate(reg, first, promoted=True, cost_weight=0.5)
        path = reg / "versions" / bad / "router.json"
        path.write_bytes(path.read_bytes().replace(b'"cost_weight": 0.5', b'"cost_weight": 0.9'))
        with caplog.at_level(logging.INFO, logger="zeta.reload"):
            # By hand (set_current would refuse it), in one rename so that no reader sees it half written.
            (reg / "CURRENT.tmp").write_text(bad + "\n")
            os.replace(reg / "CURRENT.tmp", reg / "CURRENT")
            assert wait_for(lambda: svc.router.reload_error is not None)
            assert wait_for(lambda: any("refused" in r.getMessage() for r in caplog.records))
        line = next(r for r in caplog.records if "refused" in r.getMessage())
        assert line.levelno == logging.WARNING and bad in line.getMessage()
        assert "sha256" in line.getMessage() and f"still serving {first}" in line.getMessage()
        assert svc.router.artifact_version == first
    finally:
        svc.close()


def test_no_timer_without_hot_reload():
    svc = RoutingService(Router(None, pool=POOL, use_numpy=False), FunctionBackend(reply))
    assert svc._reload_timer is None
    svc.close()


def test_a_service_dropped_without_close_ends_its_timer(tmp_path):
    reg, _ = _registry(tmp_path)
    svc = RoutingService(Router.load(reg, use_numpy=False, reload_interval_ms=20), FunctionBackend(lambda m, r: "ok"))
    timer = svc._reload_timer
    assert timer.running
    del svc  # the timer holds the service weakly: nothing keeps it, or its thread, alive
    assert wait_for(lambda: not timer.running, timeout=5.0)
