"""`zeta serve` for real: two GGUF models from PyPI (SmolLM2-135M-Instruct with its chat template, Gemma 3
270M as a base model) through llama-cpp-python, the server started by the CLI as a subprocess on a free
loopback port, driven by the official openai client.  A third pool model points at a corrupt GGUF: a
real load failure, so the fallback path is exercised without a fake.  The outcome log the server wrote
is then ingested by the pipeline's reader: every line valid, nothing quarantined.

Kept small: n_ctx 512/1024, a handful of generated tokens per request.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from llama_models import gemma3_path, require_llama_cpp, smollm2_path, zeta_serve

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-7f3a"
SMOL_COST = {"ms_per_prompt_token": 0.05, "ms_per_token": 5.0, "load_ms": 100.0}
POOL_TOML = """\
# Integration pool: two real models and one corrupt file (a real load failure for the fallback tests).
[[models]]
name = "smollm2"
capabilities = ["chat", "code", "reason"]
size_b = 0.135
context_length = 512
gguf = "{smol}"
ms_per_prompt_token = 0.05
ms_per_token = 5.0
load_ms = 100.0
llama_options = {{ n_threads = 2 }}

[[models]]
name = "gemma3"
capabilities = ["chat", "embed"]
size_b = 0.27
context_length = 1024
gguf = "{gemma}"
ms_per_prompt_token = 0.1
ms_per_token = 10.0
load_ms = 400.0
llama_options = {{ n_threads = 2 }}

[[models]]
name = "broken-14b"
capabilities = ["chat", "reason"]
size_b = 14.0
context_length = 512
gguf = "broken.gguf"     # relative to this file; not a loadable model
ms_per_token = 100.0
"""


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory):
    require_llama_cpp()
    d = tmp_path_factory.mktemp("pool")
    smol, gemma = smollm2_path(), gemma3_path(tmp_path_factory.mktemp("gguf"))
    (d / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"not a model" * 10)
    p = d / "pool.toml"
    p.write_text(POOL_TOML.format(smol=smol, gemma=gemma), encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def server(pool_file, tmp_path_factory):
    """The real server: `python -m flows.cli serve POOL` on 127.0.0.1 and a random free port."""
    logs = tmp_path_factory.mktemp("outcome-logs")
    cmd = [str(pool_file), "--log-dir", str(logs), "--artifact", str(tmp_path_factory.mktemp("no-artifact") / "none"),
           "--token", TOKEN, "--cooldown-s", "600", "--timeout-s", "120", "--log-level", "warning"]
    out = tmp_path_factory.mktemp("server-out") / "server.log"
    with zeta_serve(cmd, out, root=ROOT) as (base, proc):
        yield {"base": base, "logs": logs, "out": out, "proc": proc}


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=server["base"] + "/v1", api_key=TOKEN, timeout=120, max_retries=0)


def get(server, path, token=TOKEN):
    req = urllib.request.Request(server["base"] + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read().decode()
        return json.loads(body) if r.headers.get("content-type", "").startswith("application/json") else body


def chat(client, content, **kw):
    raw = client.chat.completions.with_raw_response.create(
        messages=[{"role": "user", "content": content}], **{"model": "auto", "max_tokens": 8, "temperature": 0, **kw})
    return raw.parse(), json.loads(raw.headers["x-zeta-decision"])


def test_models_are_the_pool_plus_auto(client):
    assert [m.id for m in client.models.list()] == ["auto", "smollm2", "gemma3", "broken-14b"]


def test_chat_auto_routes_to_the_cheapest_capable_model(client, server):
    loaded_before = get(server, "/health")["models"]["smollm2"]["loaded"] > 0
    resp, h = chat(client, "What is the capital of France?")
    assert resp.model == "smollm2" and isinstance(resp.choices[0].message.content, str)
    assert resp.choices[0].message.content.strip() and resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage.prompt_tokens > 0 and 0 < resp.usage.completion_tokens <= 8
    assert h["model"] == "smollm2" and h["routed"] and set(h["scores"]) == {"smollm2", "gemma3", "broken-14b"}
    assert h["artifact_version"] is None and "rule-based" in h["reason"] and h["explored"] is False
    assert h["cost_weight"] == 0.0 and h["decision_id"] in resp.id
    # The load penalty: a model not loaded yet costs its load time more (local cost model, in ms);
    # the output it assumes (256 tokens) is capped by the request's max_tokens (8).
    chars = len("What is the capital of France?")
    base = SMOL_COST["ms_per_token"] * 8 + SMOL_COST["ms_per_prompt_token"] / 4 * chars
    want = base if loaded_before else base + SMOL_COST["load_ms"]
    assert h["scores"]["smollm2"]["cost"] == pytest.approx(want, rel=1e-5)
    _, h2 = chat(client, "What is the capital of France?")
    assert h2["scores"]["smollm2"]["cost"] == pytest.approx(base, rel=1e-5)  # loaded now


def test_streamed_chat(client):
    with client.chat.completions.with_streaming_response.create(
            model="auto", messages=[{"role": "user", "content": "Count to five."}], max_tokens=12, temperature=0,
            stream=True, stream_options={"include_usage": True}) as resp:
        h = json.loads(resp.headers["x-zeta-decision"])
        chunks = list(resp.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert h["model"] == "smollm2" and text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_embeddings_route_to_the_embed_capable_model(client):
    raw = client.embeddings.with_raw_response.create(model="auto", input=["routing local models", "bananas"])
    resp, h = raw.parse(), json.loads(raw.headers["x-zeta-decision"])
    assert resp.model == "gemma3" and h["kind"] == "embed" and list(h["scores"]) == ["gemma3"]
    vecs = [d.embedding for d in resp.data]  # the client asked for base64 and decoded it
    assert len(vecs) == 2 and len(vecs[0]) == 640 and vecs[0] != vecs[1]
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vecs)
    floats = client.embeddings.create(model="gemma3", input="bananas", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vecs[1], abs=1e-5)


def test_named_model_bypasses_routing_and_base_model_gets_the_plain_template(client, server):
    resp, h = chat(client, "The capital of France is", model="gemma3")
    assert resp.model == "gemma3" and not h["routed"] and "routing bypassed" in h["reason"]
    assert get(server, "/health")["models"]["gemma3"]["chat_format"] == "plain"
    assert get(server, "/health")["models"]["smollm2"]["chat_format"] == "jinja"


def test_completions_endpoint(client):
    raw = client.completions.with_raw_response.create(model="gemma3", prompt="The capital of France is",
                                                      max_tokens=3, temperature=0)
    resp = raw.parse()
    assert resp.model == "gemma3" and resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 3


def test_forced_failure_falls_back_and_leaves_the_pool(client, server):
    # kind "reason" picks the largest reason-capable model by rule: broken-14b, whose GGUF cannot load.
    resp, h = chat(client, "Why is the sky blue?", extra_body={"zeta": {"kind": "reason"}})
    assert resp.model == "smollm2" and h["fallback_from"] == "broken-14b"
    assert [a["model"] for a in h["attempts"]] == ["broken-14b", "smollm2"]
    assert "failed to load" in h["attempts"][0]["error"] and h["decision_id"].endswith("-fb1")
    health = get(server, "/health")
    assert health["status"] == "degraded" and "failed to load" in health["models"]["broken-14b"]["unavailable"]
    assert "failed to load" in health["models"]["broken-14b"]["last_error"]
    # a corrupt file fails the same way every time: out of the pool until it changes, and the router says why
    resp2, h2 = chat(client, "Why is the sky blue?", extra_body={"zeta": {"kind": "reason"}})
    assert h2["attempts"] == [{"model": "smollm2", "error": None}]
    assert "until its file changes" in h2["excluded"]["broken-14b"]


def test_per_request_cost_weight_and_latency_limit(client):
    # 8 output tokens: smollm2 (loaded by now) about 5 x 8 = 40 ms, gemma3 at least 10 x 8 = 80 ms.
    _, h = chat(client, "hi", extra_body={"zeta": {"cost_weight": 0.7, "max_latency_ms": 60}})
    assert h["cost_weight"] == 0.7 and "expected latency" in h["excluded"]["gemma3"] and h["model"] == "smollm2"


def test_truncation_and_invalid_json_are_recorded(client, server):
    _, h = chat(client, "Give a JSON object with a key a.", max_tokens=3, response_format={"type": "json_object"})
    rec = find_record(server, h["decision_id"])
    assert rec["success"] is False and rec["quality"] == 0.0 and rec["quality_source"] == "check"
    assert "truncated at max_tokens" in rec["error"] and "invalid JSON" in rec["error"]
    _, h = chat(client, "Tell me a long story.", max_tokens=2)
    rec = find_record(server, h["decision_id"])
    assert rec["success"] is True and rec["error"] == "truncated at max_tokens" and rec["completion_tokens"] == 2


def test_feedback_records_explicit_quality(client, server):
    _, h = chat(client, "Name a colour.")
    out = client.post("/feedback", cast_to=object, body={"decision_id": h["decision_id"], "quality": 0.8})
    assert out["recorded"] and out["model"] == "smollm2"
    lines = wait_for(server, h["decision_id"], count=2)
    assert [(r["quality"], r["quality_source"]) for r in lines] == [(None, None), (0.8, "user")]


def test_the_answer_text_is_logged_for_the_judge(client, server):
    resp, h = chat(client, "Name a colour.")
    rec = find_record(server, h["decision_id"])
    assert rec["success"] and rec["response"] == resp.choices[0].message.content and rec["response"]
    assert "response_truncated" not in rec  # written only when set: 8 tokens are far below the cap


def test_bad_requests_are_openai_errors(client, server):
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}], temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server["base"] + "/v1", api_key="wrong", max_retries=0).models.list()


def test_concurrent_requests_share_one_instance_safely(client, server):
    results, errors = [], []

    def one(i):
        try:
            results.append(chat(client, f"Say the number {i}.", model="smollm2")[0])
        except Exception as exc:  # collected: the assertion below shows it
            errors.append(exc)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4 and all(r.choices[0].message.content for r in results)
    m = get(server, "/health")["models"]["smollm2"]
    assert m["loaded"] == 1 and m["busy"] == 0  # concurrency 1: queued, never shared


def test_a_client_that_leaves_mid_stream_frees_the_model(client, server):
    with client.chat.completions.with_streaming_response.create(
            model="smollm2", messages=[{"role": "user", "content": "Write a long poem."}], max_tokens=200,
            stream=True) as resp:
        it = iter(resp.parse())
        next(it)
        next(it)
    # concurrency 1: a leaked instance would make this wait until its timeout
    resp, _ = chat(client, "Hi", model="smollm2", extra_body={"zeta": {"timeout_ms": 60000}})
    assert resp.choices[0].message.content
    deadline = time.monotonic() + 30
    while get(server, "/health")["models"]["smollm2"]["busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(server, "/health")["models"]["smollm2"]["busy"] == 0


def test_metrics_are_prometheus_text(server):
    text = get(server, "/metrics")
    for needle in ('zeta_decisions_total{kind="chat",model="smollm2",route="auto"}',
                   'zeta_request_duration_seconds_bucket{model="smollm2",le="+Inf"}',
                   'zeta_fallbacks_total{from_model="broken-14b",to_model="smollm2"} 1',
                   'zeta_artifact_info{version="none"} 1', 'zeta_model_loaded{mode="chat",model="smollm2"} 1',
                   'zeta_ttft_seconds_count{model="smollm2"}',
                   'zeta_quality_signals_total{model="smollm2",signal="truncated"}'):
        assert needle in text, needle


def all_lines(server) -> list[dict]:
    out = []
    for f in sorted(Path(server["logs"]).glob("*.jsonl")):
        out += [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
    return out


def wait_for(server, decision_id: str, count: int = 1) -> list[dict]:
    """The lines of one decision_id: the server writes records on a background thread, just after
    answering, so a test that reads the log right away may have to wait a moment."""
    deadline = time.monotonic() + 10
    while True:
        recs = [r for r in all_lines(server) if r["decision_id"] == decision_id]
        if len(recs) >= count or time.monotonic() > deadline:
            assert len(recs) >= count, f"{len(recs)} record(s) for {decision_id}, wanted {count}"
            return recs
        time.sleep(0.02)


def find_record(server, decision_id: str) -> dict:
    return wait_for(server, decision_id)[0]


def test_zz_the_outcome_log_ingests_without_a_quarantined_line(client, server):
    _, h = chat(client, "One more question?")
    wait_for(server, h["decision_id"])  # written in order: every earlier line is on disk too
    from flows.logs import read_outcome_logs

    got = read_outcome_logs(server["logs"], known_models={"smollm2", "gemma3", "broken-14b"})
    assert got.quarantined == []
    raw = all_lines(server)
    feedback = [r for r in raw if r["quality_source"] == "user"]
    # Feedback lines repeat their answer's decision_id: they are feedback on its record, not duplicates.
    assert len(got.records) == len(raw) - len(feedback) and got.feedback == len(feedback) >= 1
    assert got.duplicates == 0 and got.feedback_unmatched == 0
    by_id = {r.decision_id: r for r in got.records}
    assert all(by_id[f["decision_id"]].quality_source == "user" for f in feedback)
    kinds = {(r.request_kind, r.model, r.success) for r in got.records}
    assert ("embed", "gemma3", True) in kinds and ("reason", "broken-14b", False) in kinds
    fb = [r for r in got.records if r.fallback_from == "broken-14b"]
    assert fb and all(r.model == "smollm2" and r.propensity == 1.0 for r in fb)
    assert all(r.latency_ms is not None and r.query for r in got.records)
