"""Pool serving fields (validation, the local cost model by hand), the TOML writer and the in-place
updater that `zeta calibrate` uses."""

from __future__ import annotations

import math
import os
import stat
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_runtime import ContractError, ModelInfo, dump_pool, load_pool, update_pool_file
from router_runtime.pool import LinearCost, parse_model, resolve_gguf

LOCAL = {"name": "coder", "capabilities": ["chat", "code"], "gguf": "models/coder.gguf",
         "ms_per_prompt_token": 0.4, "ms_per_token": 20.0, "load_ms": 1500.0, "concurrency": 2}


def test_local_cost_model_by_hand():
    m = parse_model(LOCAL)
    # 256 expected completion tokens x 20 ms = 5120 ms; 0.4 ms per prompt token / 4 chars a token = 0.1 ms a char
    assert m.cost == LinearCost(5120.0, 0.1) and m.latency_ms == m.cost
    assert m.cost_in_ms and m.expected_cost(400) == pytest.approx(5160.0)
    assert (m.gguf, m.ms_per_prompt_token, m.ms_per_token, m.load_ms, m.concurrency) == (
        "models/coder.gguf", 0.4, 20.0, 1500.0, 2)
    # Serving fields stay in extra: pools and artifacts written before them read as they did.
    assert m.extra["gguf"] == "models/coder.gguf" and parse_model(m.to_json()) == m


def test_embed_only_model_costs_its_prompt_only():
    m = parse_model({"name": "e", "capabilities": ["embed"], "ms_per_prompt_token": 0.2})
    assert m.cost == LinearCost(0.0, 0.05)


def test_completion_tokens_shape_the_local_cost_model():
    m = parse_model({**LOCAL, "completion_tokens": 10})
    assert m.cost.intercept == 200.0 and m.cost_in_ms
    again = parse_model(m.to_json())
    assert again == m and again.cost_in_ms


def test_declared_cost_wins_and_is_not_in_ms():
    m = parse_model({**LOCAL, "cost": {"intercept": 0.001, "per_char": 0.0}})
    assert m.cost == LinearCost(0.001, 0.0) and not m.cost_in_ms and m.latency_ms == LinearCost(5120.0, 0.1)


def test_with_serving_rederives_a_derived_cost_and_keeps_a_declared_one():
    m = parse_model(LOCAL).with_serving(ms_per_token=10.0, load_ms=None)
    assert m.cost == LinearCost(2560.0, 0.1) and m.load_ms is None and m.cost_in_ms
    declared = parse_model({**LOCAL, "cost": {"intercept": 1.0, "per_char": 0.0}}).with_serving(ms_per_token=1.0)
    assert declared.cost == LinearCost(1.0, 0.0) and declared.latency_ms == LinearCost(256.0, 0.1)
    with pytest.raises(ContractError) as e:
        parse_model(LOCAL).with_serving(size_b=3)
    assert "not a serving field" in str(e.value)


def test_resolve_gguf_is_relative_to_the_pool_folder(tmp_path):
    m = parse_model(LOCAL)
    assert resolve_gguf(m, tmp_path) == tmp_path / "models" / "coder.gguf"
    assert resolve_gguf(parse_model({"name": "x", "gguf": "/abs/x.gguf"}), tmp_path) == type(tmp_path)("/abs/x.gguf")
    assert resolve_gguf(parse_model({"name": "x"}), tmp_path) is None


@pytest.mark.parametrize("body,field,words", [
    ({"gguf": ""}, "m.gguf", ("non-empty path",)),
    ({"gguf": 3}, "m.gguf", ("non-empty path",)),
    ({"ms_per_token": -1}, "m.ms_per_token", (">= 0",)),
    ({"ms_per_prompt_token": "fast"}, "m.ms_per_prompt_token", ("finite number",)),
    ({"load_ms": float("nan")}, "m.load_ms", ("finite number",)),
    ({"concurrency": 0}, "m.concurrency", ("integer >= 1",)),
    ({"concurrency": 1.5}, "m.concurrency", ("integer >= 1",)),
    ({"concurrency": True}, "m.concurrency", ("integer >= 1",)),
    ({"memory_mb": 0}, "m.memory_mb", ("> 0",)),
    ({"chat_template": " "}, "m.chat_template", ("Jinja",)),
    ({"llama_options": 3}, "m.llama_options", ("table",)),
    ({"llama_options": {"n_threads": [1]}}, "m.llama_options.n_threads", ("string, number or boolean",)),
    ({"llama_options": {"n_ctx": 9}}, "m.llama_options.n_ctx", ("context_length",)),
])
def test_serving_field_refusals(body, field, words):
    with pytest.raises(ContractError) as e:
        parse_model({"name": "x", **body}, where="m")
    assert e.value.field == field and all(w in str(e.value) for w in words)


def test_model_built_in_code_is_validated_too():
    with pytest.raises(ContractError) as e:
        ModelInfo("x", extra={"concurrency": -2})
    assert e.value.field == "x.concurrency"


def test_dump_pool_round_trips(tmp_path):
    pool = (parse_model(LOCAL), parse_model({"name": "emb \"quoted\"", "capabilities": ["embed"], "size_b": 4,
                                             "input_price": 0.02,
                                             "llama_options": {"n_threads": 2, "flash_attn": True}}),
            parse_model({"name": "plain", "context_length": 4096,
                         "chat_template": "{% for m in messages %}\n{% endfor %}"}))
    p = tmp_path / "pool.toml"
    p.write_text(dump_pool(pool), encoding="utf-8")
    again = load_pool(p)
    assert again == pool and [m.extra for m in again] == [m.extra for m in pool]
    # A cost derived from the local cost model is not written: calibrating later moves it.
    assert "cost" not in tomllib.loads(dump_pool(pool[:1]))["models"][0]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1), st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_dump_pool_escapes_any_text(name, ms):
    if not name.strip():
        name = "x" + name
    m = parse_model({"name": name, "gguf": name, "ms_per_token": ms})
    assert parse_model(tomllib.loads(dump_pool([m]))["models"][0]) == m


POOL_WITH_COMMENTS = """\
# my models
[[models]]
name = "coder"          # the 7B
capabilities = ["chat",
                "code"]
gguf = "coder.gguf"
ms_per_token = 99.0     # old guess

# the embedder
[[models]]
name = "embedder"
capabilities = ["embed"]
gguf = "emb.gguf"

[[models]]
name = "untouched"
"""


def test_update_pool_file_keeps_comments_and_layout(tmp_path):
    p = tmp_path / "pool.toml"
    p.write_text(POOL_WITH_COMMENTS, encoding="utf-8")
    os.chmod(p, 0o640)
    update_pool_file(p, {"coder": {"ms_per_token": 12.5, "load_ms": 800.0},
                         "embedder": {"ms_per_prompt_token": 0.05, "load_ms": 300.0}})
    text = p.read_text(encoding="utf-8")
    assert "# my models" in text and '# the 7B' in text and "# the embedder" in text
    assert "ms_per_token = 12.5\n" in text and "old guess" not in text
    coder, emb, untouched = load_pool(p)
    assert (coder.ms_per_token, coder.load_ms, coder.capabilities) == (12.5, 800.0, ("chat", "code"))
    assert (emb.ms_per_prompt_token, emb.load_ms) == (0.05, 300.0) and untouched.extra == {}
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    # The new keys sit inside their own table (before the comment of the next one).
    assert text.index("load_ms = 800.0") < text.index("# the embedder")


def test_update_pool_file_crlf(tmp_path):
    p = tmp_path / "pool.toml"
    p.write_bytes(b'[[models]]\r\nname = "a"\r\n')
    update_pool_file(p, {"a": {"load_ms": 1.0}})
    assert p.read_bytes() == b'[[models]]\r\nname = "a"\r\nload_ms = 1.0\r\n'


@pytest.mark.parametrize("text,updates,words", [
    ('[[models]]\nname = "a"\n', {"b": {"load_ms": 1.0}}, ("no model named 'b'",)),
    ('[[models]]\nname = "a"\n', {"a": {"cost": {"intercept": 1}}}, ("scalar",)),
    # a key inside an inline table cannot be edited line by line: refused, file untouched
    ('models = [{ name = "a", load_ms = 3.0 }]\n', {"a": {"load_ms": 1.0}}, ("[[models]]",)),
    ('[[models]]\nname = "a"\nload_ms = """\n2"""\n', {"a": {"load_ms": 1.0}}, ("safely",)),
])
def test_update_pool_file_refuses_what_it_cannot_do_safely(tmp_path, text, updates, words):
    p = tmp_path / "pool.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ContractError) as e:
        update_pool_file(p, updates)
    assert all(w in str(e.value) for w in words), str(e.value)
    assert p.read_text(encoding="utf-8") == text
    assert [x.name for x in tmp_path.iterdir()] == ["pool.toml"]  # no temp file left behind


def test_load_penalty_math():
    from router_runtime.serving import with_load_penalty

    m = parse_model(LOCAL)
    p = with_load_penalty(m)
    assert p.cost == LinearCost(5120.0 + 1500.0, 0.1) and p.latency_ms == LinearCost(6620.0, 0.1)
    usd = parse_model({**LOCAL, "cost": {"intercept": 0.001, "per_char": 0.0}, "load_cost": 0.002})
    assert with_load_penalty(usd).cost == LinearCost(0.003, 0.0)
    assert math.isclose(with_load_penalty(usd).latency_ms.intercept, 6620.0)
    assert with_load_penalty(parse_model({"name": "x"})) is not None


def test_a_misspelt_key_in_a_pool_file_is_refused_with_the_nearest_name(tmp_path):
    p = tmp_path / "pool.toml"
    p.write_text('[[models]]\nname = "a"\ncapabilites = ["chat", "code"]\n')
    with pytest.raises(ContractError) as e:
        load_pool(p)
    assert "models[0].capabilites" in str(e.value) and "did you mean 'capabilities'" in str(e.value)


def test_a_misspelt_top_level_key_is_refused(tmp_path):
    p = tmp_path / "pool.toml"
    p.write_text('judeg = "a"\n[[models]]\nname = "a"\n')
    with pytest.raises(ContractError, match="did you mean 'judge'"):
        load_pool(p)


def test_descriptor_fields_are_accepted_and_kept(tmp_path):
    p = tmp_path / "pool.toml"
    p.write_text('[[models]]\nname = "a"\nfamily = "qwen2.5"\nquantization = "Q4_K_M"\nbenchmark_score = 0.7\n')
    (m,) = load_pool(p)
    assert m.extra == {"family": "qwen2.5", "quantization": "Q4_K_M", "benchmark_score": 0.7}


# -- pool settings (the judge) -------------------------------------------------------------------

POOL_WITH_JUDGE = '''judge = "small"

[[models]]
name = "small"
capabilities = ["chat"]

[[models]]
name = "embedder"
capabilities = ["embed"]
'''


def test_pool_settings_name_the_judge_and_leave_the_pool_as_it_was(tmp_path):
    from router_runtime.pool import PoolSettings, load_pool_settings

    path = tmp_path / "pool.toml"
    path.write_text(POOL_WITH_JUDGE)
    assert load_pool_settings(path) == PoolSettings(judge="small")
    assert [m.name for m in load_pool(path)] == ["small", "embedder"]
    path.write_text(POOL_WITH_JUDGE.replace('judge = "small"\n', ""))
    assert load_pool_settings(path).judge is None


@pytest.mark.parametrize("text,field,words", [
    (POOL_WITH_JUDGE.replace('"small"\n\n[[', '"missing"\n\n[[', 1), "judge", "not a model of the pool"),
    (POOL_WITH_JUDGE.replace('judge = "small"', 'judge = "embedder"'), "judge", "only embeds"),
    (POOL_WITH_JUDGE.replace('judge = "small"', "judge = 3"), "judge", "must be the name of a model"),
    # Written below a [[models]] header, TOML makes it a key of that model: say where it belongs.
    (POOL_WITH_JUDGE.replace('judge = "small"\n', "") + 'judge = "small"\n', "models[1].judge", "top-level key"),
])
def test_pool_settings_refuse_a_bad_judge(tmp_path, text, field, words):
    from router_runtime.pool import load_pool_settings

    path = tmp_path / "pool.toml"
    path.write_text(text)
    with pytest.raises(ContractError) as e:
        load_pool_settings(path)
    assert e.value.field == field and words in str(e.value) and str(path) in str(e.value)
