"""The Router: decisions from a real trained artifact, determinism, thread safety, and fallbacks."""

from __future__ import annotations

import shutil
import threading

import pytest

from router_runtime import ContractError, Outcome, Router, load_artifact, parse_outcome_line
from router_runtime.logger import OutcomeLogger

QUERIES = [
    "Write a Python function that merges two sorted lists.",
    "What is the capital of Australia?",
    "Solve for x: 3x + 7 = 22. Show your steps.",
    "Q: There are 3 houses in a row ... Clue(s): 1. The person who ate pizza lives directly left of ...",
    "Traduisez en anglais : « Le chat dort sur le canapé. »",
    "素数とは何ですか？簡単に説明してください。",
]


@pytest.fixture(scope="module")
def router(trained_registry):
    return Router.load(trained_registry, use_numpy=False)


def test_decision_shape(router):
    d = router.decide(QUERIES[0])
    art = router.artifact
    assert d.model in {m.name for m in art.pool}
    assert d.artifact_version == art.version and not d.fallback
    assert d.propensity == 1.0 and d.explored is False
    assert len(d.decision_id) == 32
    # Every chat-capable model of the pool is scored; the embedder cannot serve chat and is excluded.
    assert {s.model for s in d.scores} == {m.name for m in art.pool if m.can("chat")}
    assert d.excluded == {"nomic-embed-text-v1.5": "cannot serve 'chat'"}
    best = d.score(d.model)
    assert best.utility == max(s.utility for s in d.scores)
    for s in d.scores:
        assert 0.0 <= s.quality <= 1.0 and s.cost >= 0.0
        assert s.utility == pytest.approx(s.quality - d.cost_weight * s.cost / art.policy.cost_scale, abs=1e-12)
    assert d.model in d.reason and "utility" in d.reason
    assert d.to_dict()["model"] == d.model


def test_numpy_and_python_paths_identical(trained_registry):
    py = Router.load(trained_registry, use_numpy=False)
    npr = Router.load(trained_registry, use_numpy=True)
    for q in QUERIES:
        a, b = py.decide(q), npr.decide(q)
        assert a.model == b.model
        assert [s.quality for s in a.scores] == [s.quality for s in b.scores]


def test_every_engine_gives_the_same_decisions(trained_registry):
    from router_runtime import available_engines

    engines = [e for e, why_not in available_engines().items() if why_not is None]
    assert "python" in engines and "numpy" in engines
    routers = {e: Router.load(trained_registry, engine=e) for e in engines}
    assert {e: r.engine for e, r in routers.items()} == {e: e for e in engines}
    for q in QUERIES + ["", "x" * 70_000, b"\xff\xfe broken utf-8", None]:
        got = {e: r.decide(q) for e, r in routers.items()}
        ref = got["python"]
        for e, d in got.items():
            assert (d.model, [(s.model, s.quality, s.utility) for s in d.scores]) == \
                (ref.model, [(s.model, s.quality, s.utility) for s in ref.scores]), e


def test_engine_choice_is_validated(trained_registry):
    from router_runtime import MissingDependencyError, available_engines

    assert Router.load(trained_registry).engine == next(e for e, w in available_engines().items() if w is None)
    with pytest.raises(ContractError, match="engine"):
        Router.load(trained_registry, engine="gpu")
    with pytest.raises(ContractError, match="not both"):
        Router.load(trained_registry, engine="python", use_numpy=True)
    missing = [e for e, w in available_engines().items() if w is not None]
    for e in missing:  # e.g. the compiled engine where no C compiler built it
        with pytest.raises(MissingDependencyError, match=e):
            Router.load(trained_registry, engine=e)


def test_an_artifact_the_compiled_engine_refuses_falls_back_under_auto(trained_registry, monkeypatch):
    from router_runtime import compiled

    if not compiled.available():
        pytest.skip(f"compiled engine not built: {compiled.unavailable_reason()}")

    def refuse(*args, **kwargs):
        raise ValueError("integer leaf sums could overflow int64")

    monkeypatch.setattr(compiled, "CompiledScorer", refuse)
    r = Router.load(trained_registry)
    assert r.engine == "numpy" and "overflow" in r.engine_problem
    ref = Router.load(trained_registry, engine="python").decide(QUERIES[0])
    assert [(s.model, s.utility) for s in r.decide(QUERIES[0]).scores] == [(s.model, s.utility) for s in ref.scores]
    with pytest.raises(ContractError, match="compiled engine cannot take"):
        Router.load(trained_registry, engine="compiled")


def test_cost_scale_is_priced_on_a_declared_pool_in_another_unit(trained_registry):
    """The artifact's costs are dollars (the sample's prices); a local pool prices its models in
    milliseconds.  λ stays unit-free: the scale is the most expensive serving model's cost on the
    training data's typical query, so utilities keep their meaning instead of cost swamping quality."""
    from router_runtime import ModelInfo
    from router_runtime.pool import parse_model

    art = load_artifact(trained_registry)
    assert art.policy.typical_chars is not None and art.policy.cost_scale < 0.01  # dollars
    chat = [m for m in art.pool if m.can("chat")][:3]
    local = [parse_model({"name": m.name, "capabilities": list(m.capabilities), "ms_per_prompt_token": 0.1 * (i + 1),
                          "ms_per_token": 5.0 * (i + 1)}) for i, m in enumerate(chat)]
    assert all(m.cost_in_ms for m in local)
    r = Router(art, pool=local, use_numpy=False)
    chars = int(round(art.policy.typical_chars))
    assert r.cost_scale == max(m.expected_cost(chars) for m in local) > 100  # milliseconds
    d = r.decide(QUERIES[1], cost_weight=0.1)
    for s in d.scores:
        assert s.utility == s.quality - 0.1 * s.cost / r.cost_scale
        assert s.quality - 0.1 - 0.01 < s.utility <= s.quality  # at most λ, as documented
    # A sibling with load penalties keeps the base's scale: a penalty must not dilute itself.
    heavier = [ModelInfo(m.name, m.capabilities, m.size_b, m.context_length,
                         type(m.cost)(m.cost.intercept + 10_000.0, m.cost.per_char), m.latency_ms, m.extra)
               for m in local]
    assert r.with_pool(heavier).cost_scale == r.cost_scale
    # Without a declared pool the artifact's own scale; an artifact without typical_chars keeps it too.
    assert Router(art, use_numpy=False).cost_scale == art.policy.cost_scale
    from dataclasses import replace

    old = replace(art, policy=replace(art.policy, typical_chars=None))
    assert Router(old, pool=local, use_numpy=False).cost_scale == art.policy.cost_scale


def test_deterministic_and_order_independent(router):
    names = [m.name for m in router.artifact.pool if m.can("chat")]
    first = router.decide(QUERIES[2], candidates=names)
    again = router.decide(QUERIES[2], candidates=list(reversed(names)))
    assert first.model == again.model
    assert {s.model: s.utility for s in first.scores} == {s.model: s.utility for s in again.scores}


def test_cost_weight_moves_choice_to_cheaper_models(router):
    cheap = router.decide(QUERIES[1], cost_weight=100.0)
    costs = {s.model: s.cost for s in cheap.scores}
    assert cheap.model == min(costs, key=costs.get)
    free = router.decide(QUERIES[1], cost_weight=0.0)
    qual = {s.model: s.quality for s in free.scores}
    assert qual[free.model] == max(qual.values())


def test_kinds_and_candidates(router):
    d = router.decide("embed this sentence", kind="embed")
    assert d.model == "nomic-embed-text-v1.5" and "embed" in d.reason
    code = router.decide(QUERIES[0], kind="code")
    assert all(router.artifact.model(s.model).can("code") for s in code.scores)
    assert "gemma-2-9b-it" in code.excluded
    only = router.decide(QUERIES[1], candidates=["gemma-2-9b-it", "no-such-model"])
    assert only.model == "gemma-2-9b-it" and only.excluded["no-such-model"] == "not in the pool"
    none = router.decide(QUERIES[1], kind="embed", candidates=["gemma-2-9b-it"])
    assert none.model is None and "no model" in none.reason


def test_context_length_routes_long_prompts_away(router):
    long = "word " * 40_000  # ~50k tokens by the 4-chars estimate: above the 8k/32k contexts
    d = router.decide(long)
    assert "exceeds context" in d.excluded["gemma-2-9b-it"]
    assert d.model in {"llama-3.1-8b-instruct", "llama-3.2-3b-instruct", "llama-3.3-70b-instruct",
                       "mixtral-8x22b-instruct-v0.1"}


def test_remembered_eligibility_never_hides_a_context_exclusion(trained_registry):
    r = Router.load(trained_registry)
    long = "word " * 40_000
    for _ in range(2):  # short, long, short again: the same (kind, candidates) key each time
        short = r.decide(QUERIES[1])
        assert not any("exceeds context" in why for why in short.excluded.values())
        d = r.decide(long)
        assert "exceeds context" in d.excluded["gemma-2-9b-it"] and d.model != "gemma-2-9b-it"
        fresh = Router.load(trained_registry).decide(long)
        assert (d.model, dict(d.excluded)) == (fresh.model, dict(fresh.excluded))
    short.excluded["x"] = "a caller mutating its decision"  # must not leak into the next decision
    assert "x" not in r.decide(QUERIES[1]).excluded


@pytest.mark.parametrize("query", [
    "", None, b"\xff\xfe invalid utf-8 \xc3", "\ud800 lone surrogate", "x" * 100_000, "\x00\x01\x1f",
    "🙂" * 1000, "İstanbul ıı ß",
])
def test_odd_queries_never_raise(router, query):
    d = router.decide(query)
    assert d.model is not None and not d.fallback


def test_a_prompt_no_context_can_hold_gets_no_model_and_a_reason(router):
    d = router.decide("x" * 1_000_000)  # ~250k tokens: above every context in the pool
    assert d.model is None and "no model" in d.reason
    assert all("exceeds context" in why for why in d.excluded.values())


def test_bad_arguments_are_the_callers_bug(router):
    with pytest.raises(ContractError, match="cost_weight"):
        router.decide("q", cost_weight=-1)
    with pytest.raises(ContractError, match="cost_weight"):
        router.decide("q", cost_weight=float("nan"))
    with pytest.raises(ContractError, match="query"):
        router.decide(12345)
    with pytest.raises(ContractError, match="kind"):
        router.decide("q", kind="")


def test_threads_get_the_same_decisions(router):
    expected = {q: router.decide(q).model for q in QUERIES}
    errors, mismatches = [], []

    def work():
        try:
            for _ in range(50):
                for q in QUERIES:
                    if router.decide(q).model != expected[q]:
                        mismatches.append(q)
        except Exception as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not mismatches


def test_no_artifact_routes_by_rules_and_says_why(tmp_path, demo_pool):
    r = Router.load(tmp_path / "nothing-here", pool=demo_pool)
    assert r.artifact is None and "ArtifactNotFoundError" in r.problem
    d = r.decide("Write a function in python that reverses a string", kind="chat")
    assert d.fallback and d.artifact_version is None
    assert "rule-based" in d.reason and "ArtifactNotFoundError" in d.reason
    assert r.artifact is None and d.model in {m.name for m in demo_pool if m.can("code")}
    assert r.decide("hello").model  # plain chat: cheapest chat-capable model
    assert r.decide("embed me", kind="embed").model == "nomic-embed-text-v1.5"
    assert Router.load(None).decide("hi").model is None  # no artifact and no pool: says so, no raise


def test_corrupt_artifact_falls_back(tmp_path, trained_registry, demo_pool):
    reg = tmp_path / "reg"
    shutil.copytree(trained_registry, reg)
    version_dir = reg / "versions" / load_artifact(reg).version
    data = (version_dir / "router.json").read_bytes()
    (version_dir / "router.json").write_bytes(data.replace(b'"leaf_values": [', b'"leaf_values": [1.0, ', 1))
    r = Router.load(reg, pool=demo_pool)
    d = r.decide("What is 2 + 2?")
    assert d.fallback and "ArtifactIntegrityError" in d.reason and d.model is not None


def test_scoring_failure_falls_back_instead_of_raising(trained_registry):
    r = Router.load(trained_registry, use_numpy=False)
    art = r.artifact
    leaves = art.scorer._leaves
    art.scorer._leaves = ()  # simulate a bug deep in scoring
    try:
        d = r.decide("What is the capital of France?")
    finally:
        art.scorer._leaves = leaves
    assert d.fallback is True and "scoring failed" in d.reason and d.model is not None


def test_record_writes_a_valid_outcome_line(tmp_path, trained_registry):
    logger = OutcomeLogger(tmp_path / "logs")
    r = Router.load(trained_registry, logger=logger)
    d = r.decide(QUERIES[3])
    rec = r.record(d, Outcome(success=True, latency_ms=812.5, prompt_tokens=120, completion_tokens=40,
                              quality=1.0, quality_source="check"))
    logger.close()
    line = logger.path.read_bytes()
    parsed = parse_outcome_line(line.rstrip(b"\n"))
    assert parsed == rec
    assert parsed.model == d.model and parsed.artifact_version == d.artifact_version
    assert parsed.propensity == 1.0 and parsed.query == QUERIES[3]
    assert set(parsed.scores) == {s.model for s in d.scores}


def test_record_without_query_text_logs_hash_and_features(tmp_path, trained_registry):
    r = Router.load(trained_registry, log_query_text=False)
    d = r.decide("secret customer text")
    rec = r.record(d, Outcome(success=False, error="timeout", latency_ms=30000.0))
    assert rec.query is None and len(rec.query_sha256) == 64
    assert rec.features is not None and len(rec.features) == len(r.artifact.feature_spec.output_names)


def test_decision_ids_are_unique_across_threads_and_forks(trained_registry):
    import os
    import sys

    router = Router.load(trained_registry)
    ids: list[str] = []

    def work():
        ids.extend(router.decide(QUERIES[0]).decision_id for _ in range(500))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == len(ids) == 2000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    if sys.platform.startswith("linux"):  # a pre-fork server: children must not repeat each other's ids
        children = []
        for _ in range(2):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                os.write(w, "".join(router.decide(QUERIES[1]).decision_id for _ in range(50)).encode())
                os._exit(0)
            os.close(w)
            children.append((pid, r))
        seen = set(ids)
        for pid, r in children:
            data = b""
            while chunk := os.read(r, 65536):
                data += chunk
            os.close(r)
            os.waitpid(pid, 0)
            got = {data[i:i + 32].decode() for i in range(0, len(data), 32)}
            assert len(got) == 50 and not got & seen
            seen |= got


# -- issue 11: output length, latency limits, kind inference, ties -----------------------------------
def _local_pool():
    from router_runtime.pool import parse_model

    return (parse_model({"name": "fast", "capabilities": ["chat"], "ms_per_token": 2.0, "ms_per_prompt_token": 0.4}),
            parse_model({"name": "slow", "capabilities": ["chat", "code"], "ms_per_token": 20.0}),
            parse_model({"name": "opaque", "capabilities": ["chat"], "cost": {"intercept": 1.0, "per_char": 0.0}}))


def test_max_tokens_caps_the_output_latency_and_cost_assume():
    r = Router(None, pool=_local_pool())
    q = "x" * 40  # 10 prompt tokens
    full, short = r.decide(q), r.decide(q, max_tokens=8)
    assert full.score("fast").latency_ms == pytest.approx(0.4 * 10 + 2.0 * 256)
    assert short.score("fast").latency_ms == pytest.approx(0.4 * 10 + 2.0 * 8)
    assert short.score("fast").cost == pytest.approx(short.score("fast").latency_ms)  # cost is this machine's ms
    assert r.decide(q, max_tokens=1000).score("slow").latency_ms == pytest.approx(20.0 * 256)  # a cap, not a floor
    assert short.score("opaque").latency_ms is None
    with pytest.raises(ContractError, match="max_tokens"):
        r.decide(q, max_tokens=0)


def test_max_latency_ms_uses_the_per_request_latency_and_says_what_it_could_not_check():
    r = Router(None, pool=_local_pool())
    d = r.decide("hello", max_latency_ms=100, max_tokens=10)  # fast 20 ms, slow 200 ms, opaque unknown
    assert d.excluded["slow"].startswith("expected latency 200 ms above 100 ms")
    assert "fast" not in d.excluded and "opaque" not in d.excluded
    assert "max_latency_ms could not be checked for opaque (no latency model)" in d.reason
    assert "slow" not in r.decide("hello", max_latency_ms=100, max_tokens=4).excluded  # 80 ms fits


def test_kind_none_infers_from_the_text_and_a_given_kind_wins():
    r = Router(None, pool=_local_pool())
    code = r.decide("import numpy as np; fix my script", kind=None)
    assert code.kind == "code" and code.model == "slow" and "kind code inferred from the text" in code.reason
    assert r.decide("import numpy as np", kind="chat").kind == "chat"
    chat = r.decide("Prove that the sum of two even numbers is even", kind=None)
    # No reason-capable model: the inferred kind is routed as chat, and the reason says so.
    assert chat.kind == "chat" and "no reason-capable candidate: routed as chat" in chat.reason


def test_a_quality_tie_is_explained_as_a_cost_decision(trained_registry):
    from router_runtime.pool import parse_model

    base = load_artifact(trained_registry)
    twins = (parse_model({"name": "twin-a", "size_b": 7.0, "cost": {"intercept": 1.0, "per_char": 0.0}}),
             parse_model({"name": "twin-b", "size_b": 7.0, "cost": {"intercept": 2.0, "per_char": 0.0}}))
    d = Router(base, pool=twins).decide(QUERIES[1])
    assert d.score("twin-a").quality == d.score("twin-b").quality  # same descriptors, no outcomes
    assert d.model == "twin-a" and "predicted qualities tie" in d.reason and "came down to cost" in d.reason
    assert d.cost_scale == pytest.approx(2.0) and d.to_dict()["cost_scale"] == d.cost_scale


# -- issue 11: the length model (completion tokens per query and model) ------------------------------
def _length_artifact(long_tokens=400.0, short_tokens=9.0):
    """An artifact over ``fast``/``slow`` whose length model predicts ``long_tokens`` for a query
    with code cues and ``short_tokens`` otherwise, 3 times more for ``slow``."""
    import json
    import math

    from artifact_docs import make_doc, small_spec
    from router_runtime.artifact import parse_router

    spec = small_spec()
    doc = dict(make_doc(spec), version="length-test")
    doc["pool"] = [m.to_json() for m in _local_pool()[:2]]
    doc["quality_model"] = {"kind": "oblivious_trees", "inputs": ["chars", "model__fast", "model__slow"],
                            "tree_depth": [1], "split_input": [2], "split_border": [0.5],
                            "leaf_values": [0.5, 0.6], "scale": 1.0, "bias": 0.0}
    a, b = math.log1p(short_tokens), math.log1p(long_tokens)
    doc["length_model"] = {"kind": "oblivious_trees", "target": "log1p_completion_tokens",
                           "inputs": ["cue_code", "model__slow"], "tree_depth": [1, 1], "split_input": [0, 1],
                           "split_border": [0.5, 0.5], "leaf_values": [a, b, 0.0, math.log(3.0)],
                           "scale": 1.0, "bias": 0.0}
    return parse_router(json.loads(json.dumps(doc)), path=None), doc


def test_the_length_model_sets_the_output_that_latency_and_cost_assume():
    import math

    art, _ = _length_artifact()
    r = Router(art, engine="python")
    q = "hello there"  # 11 chars: prompt 2.75 tokens
    d = r.decide(q)
    fast, slow = d.score("fast"), d.score("slow")
    assert fast.output_tokens == pytest.approx(9.0)
    assert slow.output_tokens == pytest.approx(math.expm1(math.log1p(9.0) + math.log(3.0)))
    assert fast.latency_ms == pytest.approx(0.4 * 11 / 4 + 2.0 * 9.0)
    assert fast.cost == pytest.approx(fast.latency_ms)  # the local cost model: cost is this machine's ms
    assert slow.latency_ms == pytest.approx(20.0 * slow.output_tokens)
    code = r.decide("import os; def main(): pass")
    assert code.score("fast").output_tokens == pytest.approx(400.0)
    assert code.score("fast").latency_ms > d.score("fast").latency_ms
    capped = r.decide("import os; def main(): pass", max_tokens=50)
    assert capped.score("fast").output_tokens == 50.0 and capped.score("slow").output_tokens == 50.0
    assert "capped by max_tokens" in capped.reason and "length model" in d.reason


def test_max_latency_ms_reads_the_predicted_output():
    art, _ = _length_artifact()
    r = Router(art, engine="python")
    # slow: 20 ms x ~29 tokens ~ 580 ms on a short question, 20 ms x ~1200 on code; fast: 18 / 800 ms.
    short = r.decide("hello there", max_latency_ms=1000)
    assert short.excluded == {}
    code = r.decide("import os; def main(): pass", max_latency_ms=1000)
    assert code.excluded["slow"].startswith("expected latency") and code.model == "fast"


def test_without_a_length_model_the_pool_assumption_stays():
    art, doc = _length_artifact()
    del doc["length_model"]
    from router_runtime.artifact import parse_router

    plain = Router(parse_router(doc), engine="python").decide("hello there")
    assert plain.score("fast").output_tokens is None
    assert plain.score("fast").latency_ms == pytest.approx(0.4 * 11 / 4 + 2.0 * 256)


@pytest.mark.parametrize("engine", ["numpy", "compiled"])
def test_the_length_model_gives_identical_decisions_on_every_engine(trained_registry, engine):
    from router_runtime import available_engines

    if available_engines()[engine] is not None:
        pytest.skip(available_engines()[engine])
    art = load_artifact(trained_registry)
    assert art.length is not None  # the sample carries completion_tokens
    pool = [m.with_serving(ms_per_token=20.0, ms_per_prompt_token=0.5) for m in art.pool if m.can("chat")]
    ref, other = Router(art, pool=pool, engine="python"), Router(art, pool=pool, engine=engine)
    assert other.engine == engine
    for q in QUERIES + ["", "import numpy as np\n" * 50]:
        for kw in ({}, {"max_tokens": 32}, {"max_latency_ms": 3000.0}):
            a, b = ref.decide(q, **kw), other.decide(q, **kw)
            assert [s.to_dict() for s in a.scores] == [s.to_dict() for s in b.scores]
            assert a.model == b.model and a.excluded == b.excluded
            assert all(s.output_tokens is not None for s in a.scores)
