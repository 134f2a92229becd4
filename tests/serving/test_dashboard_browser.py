"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; .ci/run
installs it): the page asks for the token, refuses a wrong one, and once given the right one draws
the numbers ``/ui/data.json`` has after some traffic.  It also takes the README's screenshot: set
``ZETA_WRITE_SCREENSHOT=1`` to write it to docs/dashboard.png (a normal run writes it to a temporary
directory, so that the tests never dirty the checkout)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


def _skip(reason: str):
    if os.environ.get("CI") == "true":  # CI installs both: a skip there means the browser test did not run
        warnings.warn(f"CI: THE DASHBOARD BROWSER TEST DID NOT RUN: {reason}", stacklevel=2)
    pytest.skip(reason, allow_module_level=True)


try:
    from playwright.sync_api import sync_playwright  # noqa: E402
except ImportError:
    sync_playwright = None
if sync_playwright is None:
    _skip("the Python playwright package is missing (the dev extra installs it)")
if not CHROMIUM.exists():
    _skip(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does, when apt is reachable)")

from artifact_docs import make_doc  # noqa: E402
from live_server import Live  # noqa: E402
from router_runtime import BackendError, FunctionBackend, Router, RoutingService, promote, write_artifact  # noqa: E402
from router_runtime.pool import parse_model  # noqa: E402
from router_runtime.registry import annotate_manifest  # noqa: E402
from router_runtime.serving.backends import Finished, TextDelta  # noqa: E402

TOKEN = "browser-secret"
POOL = (parse_model({"name": "a", "capabilities": ["chat"], "size_b": 1.5, "context_length": 4096}),
        parse_model({"name": "b", "capabilities": ["chat", "code"], "size_b": 7, "context_length": 4096}),
        # The cheapest, so that it is tried first when it is a candidate, and fails (see reply).
        parse_model({"name": "c", "capabilities": ["chat"], "size_b": 3, "context_length": 4096,
                     "cost": {"intercept": 0.0, "per_char": 1e-7}}))


def reply(model, req):
    if model.name == "c":
        raise BackendError("c", "out of memory (the fake)")
    time.sleep({"a": 0.004, "b": 0.03}[model.name])
    return [TextDelta("Hello"), TextDelta(" there"), Finished("stop", 4, 2)]


@pytest.fixture
def server(tmp_path):
    reg = tmp_path / "reg"
    first = write_artifact(reg, make_doc(), {"training": {"rows": 1200}})
    annotate_manifest(first, "promotion", {"promoted": True, "reason": "no champion yet: the first candidate is "
                                           "promoted", "champion_version": None})
    promote(reg, first.name, reason="no champion yet")
    doc = make_doc()
    doc["policy"]["cost_weight"] = 0.4
    second = write_artifact(reg, doc, {"parent_version": first.name})
    annotate_manifest(second, "promotion", {"promoted": False, "champion_version": first.name, "reason": (
        f"not better than champion {first.name} with confidence: DR improvement +0.0040 [-0.0110, +0.0190], "
        "lower bound not above margin 0")})
    annotate_manifest(second, "evaluation", {"candidate": {"dr": 0.642, "snips": 0.637, "ess": 88.0},
                                             "difference": {"diff": 0.004, "ci_low": -0.011, "ci_high": 0.019}})
    router = Router.load(reg, pool=POOL, use_numpy=False, reload_interval_ms=1000)
    svc = RoutingService(router, FunctionBackend(reply), cooldown_s=300)
    srv = Live(svc, token=TOKEN)
    yield srv
    srv.stop()
    svc.close()


def traffic(srv):
    for i in range(6):
        assert srv.chat(messages=[{"role": "user", "content": f"What is {i} + {i}?"}])[0] == 200
    for _ in range(3):
        assert srv.chat(model="b", messages=[{"role": "user", "content": "def f(x): return x"}])[0] == 200
    assert srv.chat(zeta={"candidates": ["c", "b"]})[0] == 200  # c fails, b answers: a fallback and a cooldown
    status, body = srv.chat(messages=[{"role": "user", "content": "Name a prime number."}])
    assert status == 200
    assert srv.request("POST", "/v1/feedback", {"decision_id": body["zeta"]["decision_id"], "quality": 1.0})[0] == 200
    return body


def data(srv):
    req = urllib.request.Request(srv.base + "/ui/data.json", headers={"authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def shown(page, key):
    return page.locator(f'[data-k="{key}"]').first.inner_text()


def test_the_dashboard_in_a_real_browser(server, tmp_path):
    last = traffic(server)
    d = data(server)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.base + "/ui")
            assert page.locator("#login").is_visible()  # no token yet: the prompt, no numbers
            assert page.locator('[data-k^="served."]').count() == 0

            page.fill("#token", "not-the-token")
            page.click("#login button")
            page.wait_for_function("document.getElementById('login-msg').textContent.includes('wrong token')")
            assert page.locator("#login").is_visible()

            page.fill("#token", TOKEN)
            page.click("#login button")
            page.wait_for_selector('[data-k="served.a"]')
            assert not page.locator("#login").is_visible()
            for model in ("a", "b"):
                assert float(shown(page, f"served.{model}")) == d["served"][model]
                assert float(shown(page, f"decisions.by_model.{model}")) == d["decisions"]["by_model"][model]
                p50 = d["latency_ms"][model]["p50"]
                assert float(shown(page, f"latency_ms.{model}.p50")) == pytest.approx(p50, abs=0.05)
            assert float(shown(page, "latency_ms.all.p95")) == pytest.approx(d["latency_ms"]["all"]["p95"], abs=0.05)
            assert float(shown(page, "cost.spent")) == pytest.approx(d["cost"]["spent"], abs=5e-5)
            assert float(shown(page, "cost.largest_capable")) == pytest.approx(d["cost"]["largest_capable"], abs=5e-5)
            assert shown(page, "cost.saved_fraction") == f"{100 * d['cost']['saved_fraction']:.1f} %"
            assert float(shown(page, "fallbacks")) == d["fallbacks"] == 1
            assert float(shown(page, "failures.c")) == 1
            assert float(shown(page, f"quality.feedback.{last['model']}")) == 1
            assert shown(page, "recent_decision.model") == last["model"]
            assert page.locator("#decision pre").inner_text().count(last["zeta"]["decision_id"]) >= 1
            registry = page.locator("#registry").inner_text()
            assert "refused" in registry and "lower bound not above margin" in registry and "serving" in registry
            assert page.locator("#timeline svg rect").count() >= 1
            assert errors == []

            out = SCREENSHOT if os.environ.get("ZETA_WRITE_SCREENSHOT") == "1" else tmp_path / "dashboard.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            # A token that stops working (the server restarted with another) brings the prompt back.
            page.evaluate("sessionStorage.setItem('zeta-token', 'rotated')")
            page.reload()
            page.wait_for_function("document.getElementById('login-msg').textContent.includes('wrong token')")
            assert page.locator("#login").is_visible()
        finally:
            browser.close()


def test_a_server_without_a_token_opens_the_dashboard_directly():
    svc = RoutingService(Router(None, pool=POOL, use_numpy=False), FunctionBackend(reply))
    srv = Live(svc)
    try:
        assert srv.chat(model="a")[0] == 200
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = browser.new_page()
                page.goto(srv.base + "/ui")
                page.wait_for_selector('[data-k="served.a"]')
                assert not page.locator("#login").is_visible() and shown(page, "served.a") == "1"
                assert "no registry" in page.locator("#registry").inner_text()
            finally:
                browser.close()
    finally:
        srv.stop()
        svc.close()
