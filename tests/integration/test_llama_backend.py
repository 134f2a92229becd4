"""The runtime embedded in a service without the server, on real GGUF models: RoutingService over the
llama.cpp backend (memory budget, exact context fit, timeouts, prompt formats) and `zeta calibrate`."""

from __future__ import annotations

import json
import shutil

import time

import pytest

from llama_models import gemma3_path, require_llama_cpp, smollm2_path
from router_runtime import (ContractError, GenerationRequest, LlamaBackend, OutcomeLogger, RouteOptions, Router,
                            RoutingService, ServingError, load_pool)
from router_runtime.pool import parse_model

HELLO = GenerationRequest("chat", messages=({"role": "user", "content": "Say hello."},), max_tokens=4, temperature=0)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    require_llama_cpp()
    return {"smol": smollm2_path(), "gemma": gemma3_path(tmp_path_factory.mktemp("gguf"))}


def pool(paths, **over):
    smol = {"name": "smollm2", "capabilities": ["chat"], "gguf": str(paths["smol"]), "context_length": 256,
            "ms_per_token": 5.0, "memory_mb": 100.0}
    gemma = {"name": "gemma3", "capabilities": ["chat", "embed"], "gguf": str(paths["gemma"]), "context_length": 2048,
             "ms_per_token": 10.0, "memory_mb": 250.0}
    smol.update(over.get("smollm2", {}))
    gemma.update(over.get("gemma3", {}))
    return (parse_model(smol), parse_model(gemma))


def test_embedded_service_answers_and_logs(paths, tmp_path):
    p = pool(paths)
    svc = RoutingService(Router(None, pool=p, logger=OutcomeLogger(tmp_path)), LlamaBackend(p))
    try:
        c = svc.complete(HELLO)
        assert c.model == "smollm2" and c.text.strip() and c.completion_tokens <= 4
        o = c.outcome
        assert o.latency_ms > 0 and 0 < o.ttft_ms <= o.latency_ms and o.prompt_tokens == c.prompt_tokens
        s = svc.stream(HELLO)
        assert "".join(d.text for d in s).strip() and s.result.model == "smollm2"
    finally:
        svc.close()  # flushes the background record writer, then unloads the models
    recs = [json.loads(x) for f in tmp_path.glob("*.jsonl") for x in f.read_text().splitlines()]
    assert [r["decision_id"] for r in recs] == [c.decision_id, s.result.decision_id]


def test_memory_budget_unloads_the_least_recently_used_model(paths):
    p = pool(paths)
    backend = LlamaBackend(p, memory_budget_mb=300.0)   # 100 + 250 MB do not fit together
    try:
        list(backend.generate(p[0], HELLO))
        assert backend.loaded_models("chat") == {"smollm2"}
        list(backend.generate(p[1], HELLO))
        assert backend.loaded_models("chat") == {"gemma3"} and backend.status()["smollm2"]["unloads"] == 1
        assert backend.memory_in_use_mb() == 250.0
        list(backend.generate(p[0], HELLO))
        assert backend.loaded_models("chat") == {"smollm2"}
        with pytest.raises(Exception) as e:
            list(LlamaBackend(p, memory_budget_mb=50.0).generate(p[1], HELLO))
        assert "memory budget" in str(e.value)
    finally:
        backend.close()


def test_exact_token_count_routes_a_prompt_away_from_a_small_context(paths):
    p = pool(paths)
    svc = RoutingService(Router(None, pool=p), LlamaBackend(p))
    # 300 emoji: the 4-chars-a-token estimate says ~75 tokens (fits 256); the tokenizer says far more.
    text = "\U0001F600" * 300
    try:
        n = svc.backend.count_tokens(p[0], text)
        assert n > 256
        c = svc.complete(GenerationRequest("chat", messages=({"role": "user", "content": text},), max_tokens=2))
        assert c.model == "gemma3" and "does not fit the context of 256" in c.decision.excluded["smollm2"]
        with pytest.raises(ServingError) as e:
            svc.complete(GenerationRequest("chat", messages=({"role": "user", "content": text},)),
                         RouteOptions(model="smollm2"))
        assert e.value.code == "context_length_exceeded"
    finally:
        svc.backend.close()


def _released(backend, name, timeout=30.0) -> bool:
    """The timed-out generation stops on its own thread at its next token and gives the instance back."""
    end = time.monotonic() + timeout
    while backend.status()[name]["busy"] and time.monotonic() < end:
        time.sleep(0.02)
    return backend.status()[name]["busy"] == 0


def test_a_real_timeout_cools_the_model_down(paths):
    p = pool(paths)
    svc = RoutingService(Router(None, pool=p), LlamaBackend(p), max_hops=0, timeout_s=0.001)
    try:
        with pytest.raises(ServingError) as e:
            svc.complete(GenerationRequest("chat", messages=HELLO.messages, max_tokens=50),
                         RouteOptions(model="smollm2"))
        assert e.value.status == 504 and "smollm2" in svc.cooling_down()
        assert _released(svc.backend, "smollm2")
    finally:
        svc.backend.close()


def test_a_client_timeout_does_not(paths):
    p = pool(paths)
    svc = RoutingService(Router(None, pool=p), LlamaBackend(p), max_hops=0)
    try:
        with pytest.raises(ServingError) as e:
            svc.complete(GenerationRequest("chat", messages=HELLO.messages, max_tokens=50),
                         RouteOptions(model="smollm2", timeout_s=0.001))
        assert e.value.status == 504 and svc.cooling_down() == {}
        assert e.value.attempts[0].error.startswith("client:")
        assert _released(svc.backend, "smollm2")
    finally:
        svc.backend.close()


def test_prompt_formats_from_the_pool(paths):
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "<|im_start|>assistant\n")
    p = pool(paths, smollm2={"chat_template": template}, gemma3={"chat_template": "chatml"})
    backend = LlamaBackend(p)
    try:
        ev = list(backend.generate(p[0], HELLO))
        assert backend.chat_format("smollm2") == "jinja" and ev[-1].prompt_tokens > 0
        ev = list(backend.generate(p[1], HELLO))
        assert backend.chat_format("gemma3") == "named" and ev[-1].completion_tokens <= 4
    finally:
        backend.close()


def test_backend_refuses_bad_pools(paths, tmp_path):
    with pytest.raises(ContractError) as e:
        LlamaBackend([parse_model({"name": "x"})])
    assert "gguf" in str(e.value)
    with pytest.raises(ContractError) as e:
        LlamaBackend([parse_model({"name": "x", "gguf": str(tmp_path / "missing.gguf")})])
    assert "no such file" in str(e.value)
    with pytest.raises(ContractError) as e:
        LlamaBackend(pool(paths, smollm2={"llama_options": {"n_thread": 2}}))
    assert e.value.field == "smollm2.llama_options.n_thread"


CALIBRATE_POOL = """\
# my local models
[[models]]
name = "smollm2"
capabilities = ["chat"]
gguf = "smol.gguf"        # next to this file
context_length = 256
ms_per_token = 999.0      # a guess, replaced by the measurement

[[models]]
name = "no-file"
capabilities = ["chat"]
"""


def test_calibrate_writes_measured_numbers_back(paths, tmp_path, capsys):
    shutil.copy(paths["smol"], tmp_path / "smol.gguf")
    pool_path = tmp_path / "pool.toml"
    pool_path.write_text(CALIBRATE_POOL, encoding="utf-8")
    from flows.cli import main

    assert main(["calibrate", str(pool_path), "--prompt-tokens", "32", "--gen-tokens", "4", "--repeats", "1",
                 "--max-rounds", "2", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert set(dry["smollm2"]) == {"load_ms", "ms_per_prompt_token", "ms_per_token", "rounds", "stable", "spread",
                                   "warning"}
    assert dry["smollm2"]["rounds"] == 2  # two rounds to compare, at most --max-rounds
    assert isinstance(dry["smollm2"]["stable"], bool)
    assert set(dry["smollm2"]["spread"]) == {"load_ms", "ms_per_prompt_token", "ms_per_token"}
    assert all(x >= 1.0 for x in dry["smollm2"]["spread"].values())
    assert pool_path.read_text(encoding="utf-8") == CALIBRATE_POOL  # dry run: untouched
    assert main(["calibrate", str(pool_path), "--prompt-tokens", "32", "--gen-tokens", "4", "--repeats", "1",
                 "--max-rounds", "2"]) == 0
    assert "written to" in capsys.readouterr().out
    text = pool_path.read_text(encoding="utf-8")
    assert "# my local models" in text and "# next to this file" in text and "999.0" not in text
    smol = load_pool(pool_path)[0]
    assert smol.load_ms > 0 and smol.ms_per_prompt_token > 0 and smol.ms_per_token > 0
    assert smol.cost_in_ms and smol.cost.intercept == pytest.approx(256 * smol.ms_per_token)
