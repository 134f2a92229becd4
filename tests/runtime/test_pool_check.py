"""`zeta validate`'s checks (router_runtime.pool_check): a good pool, a misspelt key, a missing or
unreadable model file, a memory budget too small, a corrupt artifact, pool models the artifact does
not know, capabilities and latency coverage."""

from __future__ import annotations

import json

import pytest

from llama_models import smollm2_path
from router_runtime.pool_check import Finding, check_pool, findings_summary


def _pool(tmp_path, body: str):
    p = tmp_path / "pool.toml"
    p.write_text(body, encoding="utf-8")
    return p


def _levels(findings, level):
    return [f for f in findings if f.level == level]


def _good_pool(tmp_path, extra_model: str = "") -> str:
    gguf = smollm2_path()  # a real GGUF file (tests/requirements-models.txt)
    return _pool(tmp_path, f"""
[aliases]
"auto:cheap" = {{ cost_weight = 1.0 }}

[[models]]
name = "a"
capabilities = ["chat"]
gguf = "{gguf}"
context_length = 2048
ms_per_prompt_token = 0.2
ms_per_token = 5.0

[[models]]
name = "b"
capabilities = ["chat", "code"]
gguf = "{gguf}"
context_length = 2048
latency_ms = {{ intercept = 300.0, per_char = 0.01 }}
cost = {{ intercept = 0.001, per_char = 2e-6 }}
{extra_model}""")


def test_a_good_pool_and_its_artifact_have_no_error(tmp_path, vdir):
    f = check_pool(_good_pool(tmp_path), artifact=vdir, memory_budget_mb=4096)
    assert not _levels(f, "error") and not _levels(f, "warning"), [x.line() for x in f]
    by = {(x.subject, x.level) for x in f}
    assert {("pool", "ok"), ("artifact", "ok"), ("a", "ok"), ("b", "ok"), ("memory", "ok"), ("latency", "ok")} <= by
    assert any(x.subject == "aliases" and "auto:cheap" in x.message for x in f)
    s = findings_summary(f)
    assert s["ok"] is True and s["errors"] == 0 and json.loads(json.dumps(s)) == s


def test_a_misspelt_key_is_an_error_with_the_loaders_suggestion(tmp_path):
    p = _pool(tmp_path, '[[models]]\nname = "a"\ncapabilites = ["chat"]\n')
    (err,) = _levels(check_pool(p), "error")
    assert err.subject == "models[0].capabilites" and "did you mean 'capabilities'" in err.message
    assert findings_summary(check_pool(p))["ok"] is False


def test_an_alias_to_a_model_not_in_the_pool_is_an_error(tmp_path):
    p = _pool(tmp_path, '[aliases]\n"auto:fast" = { candidates = ["a", "gone"] }\n\n[[models]]\nname = "a"\n')
    (err,) = _levels(check_pool(p), "error")
    assert err.subject.startswith("aliases.auto:fast") and "gone" in err.message


def test_a_missing_an_unreadable_and_a_non_gguf_model_file_are_errors(tmp_path):
    (tmp_path / "notes.gguf").write_text("not a model")
    p = _pool(tmp_path, '[[models]]\nname = "a"\ngguf = "missing.gguf"\n\n'
                        '[[models]]\nname = "b"\ngguf = "notes.gguf"\n\n'
                        '[[models]]\nname = "c"\ngguf = "."\n')
    errors = {x.subject: x.message for x in _levels(check_pool(p), "error")}
    assert "no such file" in errors["a.gguf"] and str(tmp_path / "missing.gguf") in errors["a.gguf"]
    assert "not a GGUF file" in errors["b.gguf"]
    assert "directory" in errors["c.gguf"]


def test_the_memory_budget_and_context_are_checked(tmp_path):
    p = _good_pool(tmp_path, '\n[[models]]\nname = "c"\nmemory_mb = 9000\ncapabilities = ["chat"]\n')
    f = check_pool(p, memory_budget_mb=2000)
    errors = {x.subject: x.message for x in _levels(f, "error")}
    assert "more than the whole memory budget of 2000 MB" in errors["c"]
    warnings = [x.message for x in _levels(f, "warning") if x.subject == "c"]
    assert any("no context_length" in w for w in warnings)
    assert any(x.subject == "c" and "no gguf path" in x.message for x in f)
    (nobudget,) = [x for x in check_pool(p) if x.subject == "memory"]
    assert nobudget.level == "warning" and "no memory budget" in nobudget.message


def test_a_corrupt_artifact_is_an_error(tmp_path, vdir):
    doc = (vdir / "router.json").read_bytes()
    (vdir / "router.json").write_bytes(doc.replace(b'"cost_weight": 0.1', b'"cost_weight": 0.2'))
    (err,) = _levels(check_pool(_good_pool(tmp_path), artifact=vdir, memory_budget_mb=4096), "error")
    assert err.subject == "artifact" and "sha256" in err.message.lower()
    (err,) = _levels(check_pool(_good_pool(tmp_path), artifact=tmp_path / "nowhere"), "error")
    assert err.subject == "artifact" and "no artifact here" in err.message


def test_a_pool_model_unknown_to_the_artifact_is_scored_cold_and_said_so(tmp_path, vdir):
    p = _good_pool(tmp_path, '\n[[models]]\nname = "new"\ncapabilities = ["chat"]\n')
    f = check_pool(p, artifact=vdir, memory_budget_mb=4096)
    cold = [x for x in f if x.subject == "new" and "scored cold" in x.message]
    assert len(cold) == 1 and cold[0].level == "warning"
    assert "no size_b and no context_length" in cold[0].message
    (latency,) = [x for x in f if x.subject == "latency"]
    assert latency.level == "warning" and "cannot be checked for new" in latency.message
    assert not _levels(f, "error")


def test_a_capability_the_trained_quality_model_never_saw_is_said(tmp_path, trained_registry):
    from conftest import SAMPLE

    p = _pool(tmp_path, (SAMPLE / "pool.toml").read_text() + '\n[[models]]\nname = "agent-7b"\n'
                        'capabilities = ["chat", "tools"]\nsize_b = 7.0\ncontext_length = 32768\n')
    f = check_pool(p, artifact=trained_registry)
    assert not _levels(f, "error")
    caps = [x for x in f if x.subject == "capabilities"]
    assert [x.level for x in caps] == ["warning"]
    assert "'tools' (agent-7b) was not in the training pool" in caps[0].message
    cold = [x.subject for x in f if "scored cold" in x.message]
    assert cold == ["nomic-embed-text-v1.5", "agent-7b"]  # the sample has no outcomes of the embedder


def test_a_cold_model_is_said_to_be_scored_from_what_the_prior_reads(tmp_path, trained_registry):
    """The sample's prior (chosen on its 8 models) reads name words and size: a new Llama is scored from
    its shared word and its size, and the finding says so, as a decision's reason would."""
    from conftest import SAMPLE

    p = _pool(tmp_path, (SAMPLE / "pool.toml").read_text() + '\n[[models]]\nname = "llama-4-8b-instruct"\n'
                        'capabilities = ["chat"]\nsize_b = 8.0\ncontext_length = 32768\n')
    (cold,) = [x for x in check_pool(p, artifact=trained_registry) if x.subject == "llama-4-8b-instruct"]
    assert cold.level == "warning" and "descriptor prior" in cold.message, cold.message
    assert "name words llama" in cold.message, cold.message


def test_an_artifact_model_missing_from_the_pool_is_noted(tmp_path, vdir):
    p = _pool(tmp_path, '[[models]]\nname = "a"\ncapabilities = ["chat"]\n')
    f = check_pool(p, artifact=vdir)
    assert any(x.level == "ok" and "not in this pool (never routed to): b" in x.message for x in f)
    assert any(x.level == "warning" and "'code'" in x.message and "no capable model" in x.message for x in f)


def test_finding_lines_are_one_per_finding():
    assert Finding("warning", "x", "y").line() == "warning x: y"
    with pytest.raises(Exception):
        Finding("ok", "x", "y").level = "error"  # frozen


def test_the_ggufs_trained_context_is_read_and_a_longer_declared_one_is_a_warning(tmp_path):
    from router_runtime.pool_check import gguf_context_length

    gguf = smollm2_path()
    # llama.cpp reads the same metadata key: Llama(..., vocab_only=True).metadata["llama.context_length"]
    assert gguf_context_length(gguf) == 8192
    assert gguf_context_length(tmp_path / "absent.gguf") is None
    (tmp_path / "cut.gguf").write_bytes(gguf.read_bytes()[:40])  # metadata cut short
    assert gguf_context_length(tmp_path / "cut.gguf") is None
    p = _pool(tmp_path, f'[[models]]\nname = "a"\ngguf = "{gguf}"\ncontext_length = 32768\n')
    (w,) = [x for x in check_pool(p) if x.subject == "a" and x.level == "warning"]
    assert "context_length 32768 is above the 8192 tokens the GGUF was trained for" in w.message
    p = _pool(tmp_path, f'[[models]]\nname = "a"\ngguf = "{gguf}"\ncontext_length = 8192\n')
    assert not [x for x in check_pool(p) if x.subject == "a" and x.level != "ok"]
