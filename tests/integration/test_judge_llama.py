"""`zeta judge` for real: SmolLM2-135M-Instruct judges answers that Gemma 3 270M (and SmolLM2 itself)
really gave, through the same LlamaBackend as `zeta serve`, with the rubric's grammar constraining its
output; then `zeta judge --validate` on a few RouteProfile answers of known quality.

A 135M judge's verdicts are noise: these tests check the mechanism (every verdict parses because the
grammar allows nothing else, label lines read back as judge labels, self-grading is skipped, the
agreement report is written) and print the measured agreement, asserting nothing about its size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import shared_data
from llama_models import gemma3_path, require_llama_cpp, smollm2_path
from router_runtime import GenerationRequest, LlamaBackend, OutcomeRecord
from router_runtime.pool import parse_model
from router_runtime.records import parse_outcome_line

from flows.cli import main
from flows.judge.rubric import PAIRWISE, SINGLE
from flows.judge.selection import label_of

POOL = """\
judge = "smollm2"

[[models]]
name = "smollm2"
capabilities = ["chat"]
context_length = 4096
gguf = "{smol}"
llama_options = {{ n_threads = 2 }}

[[models]]
name = "gemma3"
capabilities = ["chat"]
context_length = 1024
gguf = "{gemma}"
llama_options = {{ n_threads = 2 }}
"""
QUESTIONS = ["What is the capital of France?", "What is 12 times 3?", "Name a primary colour."]


@pytest.fixture(scope="module")
def answered(tmp_path_factory):
    """A pool file and a log of real answers: each question answered by both models."""
    require_llama_cpp()
    root = tmp_path_factory.mktemp("judge")
    smol, gemma = smollm2_path(), gemma3_path(root / "gguf")
    pool = root / "pool.toml"
    pool.write_text(POOL.format(smol=smol, gemma=gemma))
    models = {m: parse_model({"name": m, "capabilities": ["chat"], "gguf": str(p), "context_length": 1024})
              for m, p in (("smollm2", smol), ("gemma3", gemma))}
    backend = LlamaBackend(list(models.values()), n_threads=2)
    logs = root / "logs"
    logs.mkdir()
    try:
        with open(logs / "outcomes-real.jsonl", "w", encoding="utf-8") as f:
            for i, q in enumerate(QUESTIONS):
                for name, m in models.items():
                    req = GenerationRequest("chat", messages=({"role": "user", "content": q},), max_tokens=24,
                                            temperature=0.0)
                    text = "".join(getattr(e, "text", "") for e in backend.generate(m, req)).strip() or "(no answer)"
                    f.write(OutcomeRecord(decision_id=f"real-{i}-{name}", ts="2026-01-01T00:00:00Z",
                                          candidates=tuple(models), model=name, propensity=0.5, success=True,
                                          query=q, extra={"response": text}).to_line())
    finally:
        backend.close()
    return pool, logs


def test_real_judge_grades_real_answers_into_label_lines(prefect_harness, answered, capsys):
    pool, logs = answered
    assert main(["judge", "--logs", str(logs), "--pool", str(pool), "--threads", "2", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    print("single:", json.dumps({k: s[k] for k in ("graded", "failures", "skipped_self", "judge_calls", "by_model")}))
    assert (s["judge"], s["graded"], s["failures"], s["skipped_self"]) == ("smollm2", 3, 0, 3)
    assert s["judge_calls"] == 3   # the grammar leaves nothing to retry
    for raw in Path(s["labels_file"]).read_bytes().splitlines():
        line = parse_outcome_line(raw)
        meta = label_of(line)
        assert line.model == "gemma3" and line.quality_source == "judge"
        assert meta["raw"] == f'{{"score": {meta["score"]}}}' and line.quality == (meta["score"] - 1) / 4
        assert (meta["rubric_version"], meta["rubric_sha256"]) == (SINGLE.version, SINGLE.sha256)


def test_real_judge_pairwise_including_itself(prefect_harness, answered, capsys, tmp_path):
    pool, logs = answered
    mine = tmp_path / "logs"
    mine.mkdir()
    (mine / "outcomes-real.jsonl").write_bytes((logs / "outcomes-real.jsonl").read_bytes())
    assert main(["judge", "--logs", str(mine), "--pool", str(pool), "--pairwise", "--include-self", "--max", "2",
                 "--threads", "2", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    print("pairwise:", json.dumps({k: s[k] for k in ("groups", "graded", "inconsistent", "failures", "by_model")}))
    assert s["groups"] == 2 and s["judge_calls"] == 4 and s["failures"] == s["inconsistent"]
    assert s["graded"] == 2 * (2 - s["inconsistent"])
    if s["labels_file"]:
        for raw in Path(s["labels_file"]).read_bytes().splitlines():
            meta = label_of(parse_outcome_line(raw))
            assert meta["rubric_version"] == PAIRWISE.version and meta["mode"] == "pairwise"


def test_real_judge_validation_on_routeprofile(answered, tmp_path, capsys):
    pool, _ = answered
    source = shared_data("routeprofile")
    reg = tmp_path / "registry"
    assert main(["judge", "--validate", str(source), "--format", "routeprofile", "--pool", str(pool),
                 "--judge", "smollm2", "--max", "8", "--seed", "1", "--registry", str(reg), "--threads", "2",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    print("validation:", json.dumps(r["agreement"]), "failures", r["failures"])
    assert (r["sampled"], r["graded"] + r["failures"]) == (8, 8) and r["agreement"]["n"] == r["graded"]
    assert json.loads(Path(r["report"]).read_text())["agreement"] == r["agreement"]
