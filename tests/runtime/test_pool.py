"""The model pool file (router_runtime.pool): loading, the cost model derived from prices, and the
refusals, each naming the field."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from artifact_docs import raises
from router_runtime.errors import ContractError
from router_runtime.pool import CHARS_PER_TOKEN, LinearCost, load_pool, parse_model


POOL_TOML = """
[[models]]
name = "qwen-0.5b"
capabilities = ["chat", "code"]
size_b = 0.5
context_length = 32768
cost = { intercept = 0.0001, per_char = 2e-7 }
latency_ms = { intercept = 50.0, per_char = 0.01 }
gguf = "models/qwen.gguf"

[[models]]
name = "llama-8b"
size_b = 8
input_price = 0.2
output_price = 0.6

[[models]]
name = "embedder"
capabilities = ["embed"]
input_price = 0.02
completion_tokens = 0
"""


def write_pool(tmp_path, text) -> Path:
    p = tmp_path / "pool.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_load_pool(tmp_path):
    pool = load_pool(write_pool(tmp_path, POOL_TOML))
    assert [m.name for m in pool] == ["qwen-0.5b", "llama-8b", "embedder"]
    q, llama, emb = pool
    assert q.capabilities == ("chat", "code") and q.can("code") and not q.can("embed")
    assert q.size_b == 0.5 and q.context_length == 32768
    assert q.cost == LinearCost(0.0001, 2e-7) and q.latency_ms == LinearCost(50.0, 0.01)
    assert q.extra == {"gguf": "models/qwen.gguf"}
    assert llama.capabilities == ("chat",) and llama.latency_ms is None
    assert q.to_json()["gguf"] == "models/qwen.gguf"
    assert parse_model(q.to_json()) == q


def test_prices_derive_the_cost_model_by_hand(tmp_path):
    llama, emb = load_pool(write_pool(tmp_path, POOL_TOML))[1:]
    # 0.2 per 1M prompt tokens at 4 chars a token: 0.2 / 1e6 / 4 = 5e-8 per char.
    # 0.6 per 1M output tokens x 256 expected output tokens = 1.536e-4 per call.
    assert CHARS_PER_TOKEN == 4.0
    assert math.isclose(llama.cost.per_char, 5e-8, rel_tol=1e-12)
    assert math.isclose(llama.cost.intercept, 1.536e-4, rel_tol=1e-12)
    # a 1,000-char query: 250 prompt tokens -> 250 * 0.2e-6 = 5e-5; plus 1.536e-4 -> 2.036e-4
    assert math.isclose(llama.expected_cost(1000), 2.036e-4, rel_tol=1e-12)
    # completion_tokens = 0: no output part; 0.02 / 1e6 / 4 = 5e-9 per char
    assert emb.cost.intercept == 0.0 and math.isclose(emb.cost.per_char, 5e-9, rel_tol=1e-12)
    assert math.isclose(emb.expected_cost(4000), 2e-5, rel_tol=1e-12)


def test_explicit_cost_wins_over_prices():
    m = parse_model({"name": "x", "cost": {"intercept": 1.0, "per_char": 0.0}, "input_price": 9.0})
    assert m.cost == LinearCost(1.0, 0.0)


def test_cost_fallbacks_without_a_cost_model():
    assert parse_model({"name": "x", "size_b": 3}).expected_cost(100) == 3.0
    assert parse_model({"name": "x"}).expected_cost(100) == 1.0
    assert LinearCost(-5.0, 0.0).at(10) == 0.0  # never a negative cost


def test_pool_invalid_toml(tmp_path):
    exc = raises(ContractError, lambda: load_pool(write_pool(tmp_path, "[[models]\nname = 'x'")), "pool",
                 "invalid TOML")
    assert exc.source and "pool.toml" in str(exc)


def test_pool_not_utf8(tmp_path):
    p = tmp_path / "pool.toml"
    p.write_bytes(b'[[models]]\nname = "caf\xe9"\n')
    raises(ContractError, lambda: load_pool(p), "pool", "invalid TOML")


@pytest.mark.parametrize("text", ["", "title = 'x'", "models = []", "models = 3"])
def test_pool_without_models(tmp_path, text):
    raises(ContractError, lambda: load_pool(write_pool(tmp_path, text)), "models", "at least one")


def test_pool_duplicate_names(tmp_path):
    text = '[[models]]\nname = "a"\n[[models]]\nname = "b"\n[[models]]\nname = "a"\n'
    raises(ContractError, lambda: load_pool(write_pool(tmp_path, text)), "models", "duplicate", "'a'")


@pytest.mark.parametrize("body,field,words", [
    ('name = "a"\nsize_b = -1', "models[0].size_b", (">= 0", "-1")),
    ('name = "a"\ncapabilities = "chat"', "models[0].capabilities", ("non-empty list",)),
    ('name = "a"\ncapabilities = []', "models[0].capabilities", ("non-empty list",)),
    ('name = "a"\ncapabilities = ["chat", 3]', "models[0].capabilities", ("non-empty list",)),
    ('name = "a"\ncapabilities = ["chat", ""]', "models[0].capabilities", ("non-empty list",)),
    ('name = ""', "models[0].name", ("non-empty string",)),
    ('name = 3', "models[0].name", ("non-empty string",)),
    ('size_b = 1', "models[0].name", ("non-empty string",)),
    ('name = "a"\ncontext_length = 0', "models[0].context_length", ("positive integer",)),
    ('name = "a"\ncontext_length = 1.5', "models[0].context_length", ("positive integer",)),
    ('name = "a"\ncost = 3', "models[0].cost", ("intercept and per_char",)),
    ('name = "a"\ncost = { intercept = 1.0 }', "models[0].cost", ("both intercept and per_char",)),
    ('name = "a"\ninput_price = -0.5', "models[0].input_price", (">= 0",)),
    ('name = "a"\nsize_b = nan', "models[0].size_b", ("finite number",)),
    ('name = "a"\nsize_b = true', "models[0].size_b", ("finite number",)),
])
def test_pool_model_refusals(tmp_path, body, field, words):
    exc = raises(ContractError, lambda: load_pool(write_pool(tmp_path, "[[models]]\n" + body + "\n")), field, *words)
    assert exc.field == field
