"""Issue 11 through the real server: `zeta serve` with a trained artifact in front of the two small GGUF
models, driven by the official openai client.  What a decision reads (the last user turn), what it
expects of the output (max_tokens), and what the header says about it."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from llama_models import gemma3_path, require_llama_cpp, smollm2_path, zeta_serve
from test_llama_server import TOKEN

ROOT = Path(__file__).resolve().parents[2]
POOL_TOML = """\
[[models]]
name = "smollm2"
capabilities = ["chat", "code", "reason"]
size_b = 0.135
context_length = 2048
gguf = "{smol}"
ms_per_prompt_token = 0.05
ms_per_token = 5.0
load_ms = 100.0
llama_options = {{ n_threads = 2 }}

[[models]]
name = "gemma3"
capabilities = ["chat", "embed"]
size_b = 0.27
context_length = 2048
gguf = "{gemma}"
ms_per_prompt_token = 0.1
ms_per_token = 10.0
load_ms = 400.0
llama_options = {{ n_threads = 2 }}
"""
QUESTION = "What is the capital of France?"
SYSTEM = "You are a careful, friendly assistant who answers in one short sentence. " * 20  # ~1.4 K chars
HISTORY = [{"role": "user", "content": "Fix this:\n```python\ndef f(x): return x\n```"},
           {"role": "assistant", "content": "def f(x):\n    return x + 1"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_registry):
    require_llama_cpp()
    d = tmp_path_factory.mktemp("pool")
    pool = d / "pool.toml"
    pool.write_text(POOL_TOML.format(smol=smollm2_path(), gemma=gemma3_path(tmp_path_factory.mktemp("gguf"))),
                    encoding="utf-8")
    logs = tmp_path_factory.mktemp("logs")
    cmd = [str(pool), "--log-dir", str(logs), "--artifact", str(trained_registry), "--token", TOKEN,
           "--timeout-s", "120", "--log-level", "warning"]
    out = d / "server.log"
    with zeta_serve(cmd, out, root=ROOT) as (base, proc):
        yield {"base": base, "logs": logs}


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=server["base"] + "/v1", api_key=TOKEN, timeout=120, max_retries=0)


def ask(client, messages, *, max_tokens=2, **zeta):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=messages, max_tokens=max_tokens, temperature=0.0,
        extra_body={"zeta": zeta} if zeta else None)
    return json.loads(raw.headers["x-zeta-decision"])


def test_same_last_question_same_decision_with_or_without_what_came_before(client, server):
    alone = ask(client, [{"role": "user", "content": QUESTION}])
    assert alone["artifact_version"] is not None and alone["kind"] == "chat"
    for before in ([{"role": "system", "content": SYSTEM}], HISTORY, [{"role": "system", "content": SYSTEM}, *HISTORY]):
        h = ask(client, [*before, {"role": "user", "content": QUESTION}])
        assert h["model"] == alone["model"] and h["kind"] == alone["kind"]
        assert {m: s["quality"] for m, s in h["scores"].items()} == {m: s["quality"] for m, s in alone["scores"].items()}
        assert h["context_chars"] > alone["context_chars"] == len(QUESTION)
    # The log holds the routed text as the query and the whole length beside it.
    urllib.request.urlopen(server["base"] + "/health", timeout=5).close()
    time.sleep(0.5)  # records are written by a background thread within ~10 ms
    recs = [json.loads(x) for f in sorted(server["logs"].glob("*.jsonl")) for x in f.read_text().splitlines()]
    ours = [r for r in recs if r["query"] == QUESTION]
    assert len(ours) >= 4 and sorted({r["context_chars"] for r in ours})[0] == len(QUESTION)
    assert max(r["context_chars"] for r in ours) > len(SYSTEM)


def test_header_carries_cost_scale_and_a_true_reason_on_a_quality_tie(client):
    h = ask(client, [{"role": "user", "content": QUESTION}])
    assert h["cost_scale"] > 0
    q = {m: s["quality"] for m, s in h["scores"].items()}
    # Neither pool model had outcomes in training: scored from descriptors alike, so cost decided.
    if len(set(q.values())) == 1:
        assert "came down to cost" in h["reason"]
    s = h["scores"][h["model"]]
    assert s["utility"] == pytest.approx(s["quality"] - h["cost_weight"] * s["cost"] / h["cost_scale"], rel=1e-4)


def test_kind_is_inferred_from_the_text_and_the_client_still_wins(client):
    h = ask(client, [{"role": "user", "content": "Write a Python function that reverses a list."}])
    assert h["kind"] == "code" and "inferred" in h["reason"] and set(h["scores"]) == {"smollm2"}
    assert h["excluded"] == {"gemma3": "cannot serve 'code'"}
    assert ask(client, [{"role": "user", "content": "Write a Python function."}], kind="chat")["kind"] == "chat"


def test_max_tokens_changes_the_expected_latency(client):
    short = ask(client, [{"role": "user", "content": QUESTION}], max_tokens=2)
    longer = ask(client, [{"role": "user", "content": QUESTION}], max_tokens=12)
    for model, ms_per_token in (("smollm2", 5.0), ("gemma3", 10.0)):
        # the same load state in both (the second request is answered by the model the first loaded)
        gap = longer["scores"][model]["latency_ms"] - short["scores"][model]["latency_ms"]
        assert gap == pytest.approx(ms_per_token * (12 - 2), rel=1e-4)


def test_max_latency_ms_excludes_a_model_predicted_too_slow(client):
    # 4 output tokens: smollm2 5 x 4 = 20 ms, gemma3 10 x 4 = 40 ms (+ the prompt, + a load penalty).
    h = ask(client, [{"role": "user", "content": QUESTION}], max_tokens=4, max_latency_ms=30, cost_weight=0.0)
    assert h["model"] == "smollm2"
    assert "gemma3" in h["excluded"] and "expected latency" in h["excluded"]["gemma3"]
