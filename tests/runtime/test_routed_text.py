"""The routed-text contract: what a decision reads from a conversation, its version inside the feature
spec, and parity of the conversation features between the runtime and the Polars pipeline."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_runtime import ContractError, FeatureSpec, Router, SchemaVersionError, default_feature_spec
from router_runtime.artifact import parse_router
from router_runtime.routed_text import (
    CODE_CUES,
    LEGACY_SOURCE,
    SOURCES,
    RoutedText,
    from_text,
    has_code,
    infer_kind,
    routed_text,
)

QUESTION = "What is the capital of France?"
SYSTEM = {"role": "system", "content": "You are a careful assistant. " * 50}
CODE_TURNS = [{"role": "user", "content": "Fix this:\n```python\ndef f(x): return x\n```"},
              {"role": "assistant", "content": "Here: def f(x): return x + 1"}]


def test_last_user_turn_is_the_routed_text_and_the_rest_are_features():
    msgs = [SYSTEM, *CODE_TURNS, {"role": "user", "content": QUESTION}]
    rt = routed_text(msgs)
    whole = "\n".join(m["content"] for m in msgs)
    assert rt.text == QUESTION
    assert (rt.turns, rt.system_chars, rt.history_code, rt.context_chars) == (2, len(SYSTEM["content"]), True,
                                                                              len(whole))
    assert rt.features() == {"turns": 2.0, "system_chars": float(len(SYSTEM["content"])), "history_code": 1.0,
                             "context_chars": float(len(whole))}
    conv = routed_text(msgs, "conversation")
    assert conv.text == whole and conv.features() == rt.features()


def test_code_in_the_routed_turn_itself_is_not_history():
    rt = routed_text([{"role": "user", "content": "hello"}, {"role": "user", "content": "import os"}])
    assert rt.text == "import os" and not rt.history_code and rt.turns == 2


def test_a_conversation_without_a_user_turn_routes_on_all_of_it():
    rt = routed_text([{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Sure"}])
    assert rt.text == "Be brief.\nSure" and rt.turns == 0 and rt.system_chars == 9 and not rt.history_code


def test_prompts_are_their_own_routed_text_and_bad_sources_are_refused():
    assert from_text("abc") == RoutedText("abc", 1, 0, False, 3)
    with pytest.raises(ContractError, match="routed_text.source"):
        routed_text([], "first_turn")
    with pytest.raises(ContractError, match="routed_text.source"):
        default_feature_spec(routed_text="everything")


def test_spec_versioning_old_specs_read_the_whole_conversation():
    d = default_feature_spec().to_json()
    assert d["routed_text"] == {"version": 1, "source": "last_user_turn"}
    old = {k: v for k, v in d.items() if k != "routed_text"}  # written before the contract
    assert FeatureSpec.from_json(old).routed_text == LEGACY_SOURCE == "conversation"
    for bad, err in (({"version": 2, "source": "conversation"}, SchemaVersionError),
                     ({"version": 1, "source": "nope"}, ContractError),
                     ({"version": 1, "source": "conversation", "x": 1}, ContractError), ("conversation", ContractError)):
        with pytest.raises(err, match="routed_text"):
            FeatureSpec.from_json(dict(d, routed_text=bad))


def test_kind_inference_reads_the_routed_text():
    assert infer_kind("Write a Python program to sort") == ("code", "code cue 'python'")
    assert infer_kind("Solve for x step by step: 2x = 4")[0] == "reason"
    assert infer_kind(QUESTION) == ("chat", "no code or reasoning cue")
    assert infer_kind("Now, what is the capital of Peru?") == ("chat", "no code or reasoning cue")
    assert has_code("IMPORT numpy") and not has_code(QUESTION)


def _router_from(reg, *, legacy: bool) -> Router:
    from router_runtime import load_artifact

    art = load_artifact(reg)
    if not legacy:
        return Router(art, engine="python")
    path = art.path + "/router.json"
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    del doc["feature_spec"]["routed_text"]
    return Router(parse_router(doc), engine="python")


def test_same_last_question_same_decision_whatever_came_before(trained_registry):
    # Quality only (λ = 0): the model reads the whole conversation, so a long one rightly costs more
    # (per prompt character) and may tip a close cost trade-off; the predicted qualities must not move.
    r = _router_from(trained_registry, legacy=False)
    alone = r.decide(r.routed_text([{"role": "user", "content": QUESTION}]), cost_weight=0.0)
    for before in ([SYSTEM], CODE_TURNS, [SYSTEM, *CODE_TURNS]):
        d = r.decide(r.routed_text([*before, {"role": "user", "content": QUESTION}]), cost_weight=0.0)
        assert d.query == QUESTION and d.model == alone.model
        assert {s.model: s.quality for s in d.scores} == {s.model: s.quality for s in alone.scores}
        assert d.context_chars > alone.context_chars == len(QUESTION)
    # An artifact from before the contract reads the whole conversation: the old behaviour.
    old = _router_from(trained_registry, legacy=True)
    assert old.routed_text_source == "conversation"
    long = old.decide(old.routed_text([SYSTEM, {"role": "user", "content": QUESTION}]))
    assert long.query.startswith(SYSTEM["content"])
    assert {s.model: s.quality for s in long.scores} != {s.model: s.quality for s in alone.scores}


def test_record_logs_the_routed_text_and_the_full_length(trained_registry):
    r = Router.load(trained_registry, engine="python")
    from router_runtime import Outcome

    d = r.decide(r.routed_text([SYSTEM, {"role": "user", "content": QUESTION}]))
    rec = r.record(d, Outcome(success=True))
    assert rec.query == QUESTION and rec.context_chars == len(SYSTEM["content"]) + 1 + len(QUESTION)


# -- parity with the pipeline ---------------------------------------------------------------------
_roles = st.sampled_from(["system", "developer", "user", "assistant"])
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40) | st.sampled_from(
    [c.upper() for c in CODE_CUES] + list(CODE_CUES) + ["", "Plain words."])
_messages = st.lists(st.fixed_dictionaries({"role": _roles, "content": _text | st.none()}), max_size=6)


def _polars_rows(convs, source):
    pl = pytest.importorskip("polars")
    from flows.routed_text import add_routed_text

    struct = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    df = pl.DataFrame({"messages": convs}, schema={"messages": struct})
    eager = add_routed_text(df, source=source)
    lazy = add_routed_text(df.lazy(), source=source).collect()
    assert eager.equals(lazy)
    return eager.to_dicts()


def _runtime_row(msgs, source):
    rt = routed_text(msgs, source)
    return {"query": rt.text, **rt.features()}


@settings(max_examples=150, deadline=None)
@given(st.lists(_messages, min_size=1, max_size=8), st.sampled_from(SOURCES))
def test_conversation_features_match_the_pipeline(convs, source):
    got = _polars_rows(convs, source)
    for msgs, row in zip(convs, got):
        want = _runtime_row(msgs, source)
        assert {k: row[k] for k in want} == want, msgs
