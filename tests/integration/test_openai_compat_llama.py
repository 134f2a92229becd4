"""OpenAI compatibility on a real model: `zeta serve` (the CLI, as a subprocess) in front of SmolLM2-135M
through llama-cpp-python, driven by the official openai client.  llama.cpp's sampling knobs must really
reach the sampler (top_k, seed, logit_bias change or fix the tokens), a json_schema response must
follow its schema, a forced tool call must be its function's JSON, and a pool-file alias must route.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llama_models import require_llama_cpp, smollm2_path, zeta_serve
from test_llama_server import TOKEN

ROOT = Path(__file__).resolve().parents[2]
POOL_TOML = """\
[[models]]
name = "smollm2"
capabilities = ["chat", "tools"]
context_length = 512
gguf = "{smol}"
ms_per_prompt_token = 0.05
ms_per_token = 5.0
llama_options = {{ n_threads = 2 }}

[aliases]
"auto:best" = {{ cost_weight = 0.0, timeout_ms = 60000 }}
"""
Q = [{"role": "user", "content": "Name a fruit that is red."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_llama_cpp()
    d = tmp_path_factory.mktemp("compat")
    pool = d / "pool.toml"
    pool.write_text(POOL_TOML.format(smol=smollm2_path()), encoding="utf-8")
    cmd = [str(pool), "--log-dir", str(d / "logs"), "--artifact", str(d / "none"), "--token", TOKEN,
           "--log-level", "warning"]
    out = d / "server.log"
    with zeta_serve(cmd, out, root=ROOT) as (base, proc):
        yield base


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=server + "/v1", api_key=TOKEN, timeout=120, max_retries=0)


def say(client, **kw):
    r = client.chat.completions.create(model="smollm2", messages=Q, max_tokens=6, **kw)
    return r.choices[0].message.content


def test_sampling_knobs_reach_llama_cpp(client):
    greedy = say(client, temperature=0)
    assert greedy.strip()
    # top_k 1 leaves one candidate token: a hot temperature and two seeds still give the greedy text.
    hot = [say(client, temperature=1.5, seed=s, extra_body={"top_k": 1, "min_p": 0.0, "repeat_penalty": 1.0})
           for s in (1, 2)]
    assert hot == [greedy, greedy]
    # seed fixes the draw: the same seed twice at a normal temperature is the same text.
    a, b = (say(client, temperature=0.9, seed=42, extra_body={"top_k": 40}) for _ in range(2))
    assert a == b
    # logit_bias -100 on the greedy answer's first token: the model must start otherwise.
    from llama_cpp import Llama

    vocab = Llama(model_path=str(smollm2_path()), vocab_only=True, verbose=False)
    first = vocab.tokenize(greedy.encode("utf-8"), add_bos=False, special=False)[0]
    banned = say(client, temperature=0, logit_bias={str(first): -100})
    assert banned.strip() and vocab.tokenize(banned.encode("utf-8"), add_bos=False, special=False)[0] != first


def test_json_schema_output_follows_the_schema(client):
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
              "required": ["answer"], "additionalProperties": False}
    r = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Is the sky blue? Answer in JSON."}], max_tokens=24,
        temperature=0, response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}})
    assert r.choices[0].finish_reason == "stop"
    value = json.loads(r.choices[0].message.content)
    assert set(value) == {"answer"} and value["answer"] in ("yes", "no")


def test_a_forced_tool_call_on_a_real_model(client):
    tool = {"type": "function", "function": {"name": "pick_color", "parameters": {
        "type": "object", "properties": {"color": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["color"], "additionalProperties": False}}}
    r = client.chat.completions.create(model="auto:best", messages=[{"role": "user", "content": "Pick red."}],
                                       tools=[tool], max_tokens=24, temperature=0,
                                       tool_choice={"type": "function", "function": {"name": "pick_color"}})
    (call,) = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "pick_color"
    assert json.loads(call.function.arguments)["color"] in ("red", "green", "blue")
