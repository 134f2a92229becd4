"""The optional compiled engine (router_runtime._speedups via router_runtime.compiled) is bit-identical
to the pure-Python reference, refuses bad input instead of crashing, and is really built in CI.

Everything but the availability checks skips, with the reason, when the extension is not built here.
"""

from __future__ import annotations

import gc
import json
import math
import os
import struct
import subprocess
import sys
import threading
import tracemalloc
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_runtime import compiled
from router_runtime.artifact import load_artifact
from router_runtime.errors import ContractError, MissingDependencyError
from router_runtime.features import MAX_CODE_POINT, Feature, FeatureSpec, default_feature_spec
from router_runtime.text import ascii_lower
from router_runtime.trees import CandidateScorer, ObliviousEnsemble

from fit_corpus import FIT_CORPUS

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "artifact_format_1"
SHARED_DATA = ROOT.parent / "shared" / "data"
NAN = float("nan")
F = Feature

needs_ext = pytest.mark.skipif(not compiled.available(), reason=f"compiled engine unavailable: {compiled.reason}")


def bits(v: list[float]) -> list[bytes]:
    return [struct.pack("<d", x) for x in v]


def assert_same_features(spec: FeatureSpec, cspec, query) -> None:
    want, got = spec.extract(query), cspec.extract(query)
    assert all(type(x) is float for x in got)
    if bits(want) != bits(got):
        diff = [(n, a, b) for n, a, b in zip(spec.output_names, want, got) if bits([a]) != bits([b])]
        pytest.fail(f"compiled != python for {query!r:.200}: {diff[:5]} (len {len(want)} vs {len(got)})")


def spec_of(*features: Feature, max_chars: int = 65536) -> FeatureSpec:
    return FeatureSpec(tuple(features), max_chars=max_chars)


def hand_fitted(spec: FeatureSpec, corpus, vocab_size: int = 4096) -> FeatureSpec:
    """The spec with every token_buckets vocab fitted like flows.features.fit_feature_spec does (most
    frequent tokens, crc32 buckets), in pure Python: no Polars needed for a parity test."""
    counts = Counter(tok for q in corpus for tok in ascii_lower(q).translate(
        {c: " " for c in range(128) if not (chr(c).isalnum() or c == 95)}).split()
        if tok.isascii() and all(ch.isalnum() or ch == "_" for ch in tok))
    top = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:vocab_size]]
    d = spec.to_json()
    for f in d["features"]:
        if f["op"] == "token_buckets":
            n = f["params"]["n_buckets"]
            f["params"]["vocab"] = {t: zlib.crc32(t.encode()) % n for t in top}
    return FeatureSpec.from_json(d)


DEFAULT = hand_fitted(default_feature_spec(), FIT_CORPUS)
SMALL = hand_fitted(default_feature_spec(max_chars=16), FIT_CORPUS)


# ---------------------------------------------------------------------------------------------------
# availability


def test_extension_is_built_in_ci():
    # CI installs with a compiler: a silently failed (optional) build must fail the suite there.
    if os.environ.get("CI") != "true":
        pytest.skip("only enforced when CI=true")
    assert compiled.available(), compiled.unavailable_reason()


def test_unavailable_engine_says_why_and_refuses_to_construct():
    code = (
        "from router_runtime import compiled, default_feature_spec\n"
        "from router_runtime.errors import MissingDependencyError\n"
        "assert not compiled.available() and 'ZETA_NO_SPEEDUPS' in compiled.unavailable_reason()\n"
        "try:\n"
        "    compiled.CompiledSpec(default_feature_spec())\n"
        "except MissingDependencyError as e:\n"
        "    assert 'compiled engine' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
        "import sys; assert 'numpy' not in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), ZETA_NO_SPEEDUPS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_reason_is_none_exactly_when_available():
    assert (compiled.unavailable_reason() is None) == compiled.available()
    if not compiled.available():
        with pytest.raises(MissingDependencyError):
            compiled.CompiledSpec(DEFAULT)
        with pytest.raises(MissingDependencyError):
            compiled.CompiledScorer(load_artifact(FIXTURE).scorer)


# ---------------------------------------------------------------------------------------------------
# features: hand cases, each op alone with edge-case params

WORD = [[48, 57], [65, 90], [95, 95], [97, 122]]
EDGE_TEXT = [
    "", "a", "A", "aaaa", "aaaaa", "AaAa", "abcabcab", "\x00\x7f\x80\u07ff\u0800\uffff\U00010000\U0010ffff",
    "héllo 日本 😀", "x\u0301", "a1 b_2 ..c-d  é", "abcé日def", "İIı ß SS", "\n\n\n\n    \n        x",
    "$x$\n$", "```py```", "\\frac{1}{2} \\FRAC", "OPTIONS: (A) x", "\ufffd\ufffd", "😀😀😀😀", "\t\r\n \x0b\x0c",
    "The cat SAT on the_mat; caté İthe the", "a" * 5000, "日本" * 3000,
]
CP_EDGES = [0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF]
OP_CASES = [
    (F("c", "char_count", {}),),
    (F("b", "byte_count", {}),),
    (F("d", "count_class", {"ranges": [[48, 57]]}),),
    (F("na", "count_class", {"ranges": [[0x80, MAX_CODE_POINT]]}),),
    (F("all", "count_class", {"ranges": [[0, MAX_CODE_POINT]]}),),
    (F("ovl", "count_class", {"ranges": [[0x60, 0x90], [0x7F, 0x800], [0x7FF, 0x7FF]]}),),
    *[(F("e", "count_class", {"ranges": [[lo, hi]]}),) for lo in CP_EDGES for hi in CP_EDGES if lo <= hi],
    *[(F("r", "count_runs", {"ranges": [[lo, hi]]}),) for lo in CP_EDGES for hi in CP_EDGES if lo <= hi],
    (F("w", "count_runs", {"ranges": WORD}),),
    (F("g", "count_runs", {"ranges": [[97, 122], [0x3B1, 0x3C9], [0x1F600, 0x1F64F]]}),),
    (F("ctl", "count_class", {"ranges": [[0, 8], [0x0B, 0x1F], [0x7F, 0x7F]]}),),
    *[(F("l", "count_literal", {"literal": lit, "ascii_lower": low}),)
      for lit in ("a", "aa", "aaa", "ab", "abcab", "\n", "\n\n", "\n    ", "$", "```", "\\frac", "é", "日本", "😀",
                  "\ufffd", "i", "ss", "\x00")
      for low in (False, True)],
    (F("lc", "count_literal", {"literal": "Aa", "ascii_lower": False}),),
    (F("lc", "count_literal", {"literal": "\\FRAC", "ascii_lower": False}),),
    (F("any", "contains_any", {"literals": ["options:", "(a)", "a)"], "ascii_lower": True}),),
    (F("any", "contains_any", {"literals": ["abc", "ABC", "Aa"], "ascii_lower": False}),),
    (F("any", "contains_any", {"literals": ["embed", "embedding", "日本", "😀"], "ascii_lower": True}),),
    (F("t", "token_buckets", {"n_buckets": 3, "vocab": {"the": 0, "cat": 1, "sat": 1, "a": 2, "_": 2}}),),
    (F("t", "token_buckets", {"n_buckets": 2, "vocab": {}}),),
    (F("t", "token_buckets", {"n_buckets": 6402, "vocab": {"a": 0, "aaaa": 6401, "the_mat": 6400}}),),
    (F("c", "char_count", {}), F("d", "count_class", {"ranges": [[48, 57]]}),
     F("r1", "ratio", {"num": "d", "den": "c"}), F("r2", "ratio", {"num": "c", "den": "d"}),
     F("r3", "ratio", {"num": "d", "den": "d"}), F("l1", "log1p", {"of": "r2"}), F("l2", "log1p", {"of": "l1"})),
]


@needs_ext
@pytest.mark.parametrize("features", OP_CASES, ids=[f"op{i}" for i in range(len(OP_CASES))])
def test_each_op_alone(features):
    for max_chars in (65536, 3):
        spec = spec_of(*features, max_chars=max_chars)
        cspec = compiled.CompiledSpec(spec)
        for q in EDGE_TEXT + [None, b"ab\xffcd \xe6\x97", "x\udfff y\ud800"]:
            assert_same_features(spec, cspec, q)


@needs_ext
def test_default_spec_fitted_on_hand_cases():
    for spec in (DEFAULT, SMALL):
        cspec = compiled.CompiledSpec(spec)
        assert cspec.output_names == spec.output_names
        for q in FIT_CORPUS + EDGE_TEXT:
            assert_same_features(spec, cspec, q)


@needs_ext
def test_committed_fixture_artifact_spec():
    art = load_artifact(FIXTURE)
    cspec = compiled.CompiledSpec(art.feature_spec)
    for q in FIT_CORPUS + EDGE_TEXT + ["import python def capital " * 300]:
        assert_same_features(art.feature_spec, cspec, q)


@needs_ext
def test_none_bytes_surrogates_and_long_queries():
    cspec = compiled.CompiledSpec(DEFAULT)
    nan = cspec.extract(None)
    assert len(nan) == len(DEFAULT.output_names) and bits(nan) == bits(DEFAULT.extract(None))
    for q in (b"", b"ab\xffcd \xe6\x97", bytearray(b"caf\xc3\xa9"), memoryview(b"x\x80y"), b"\xed\xa0\x80",
              "x\udfff y\ud800", "\ud83d\ude00", "a" * 65537, "é" * 70000, "😀" * 65536 + "x",
              ("def f(x):\n    return x\n" * 4000)):
        assert_same_features(DEFAULT, cspec, q)
    long = "Solve 12+3? " * 7000  # 84000 code points, cut at 65536 on both sides
    assert cspec.extract(long) == cspec.extract(long[:65536])


@needs_ext
def test_errors_match_the_reference():
    cspec = compiled.CompiledSpec(DEFAULT)
    for bad in (12, 1.5, ["x"], object()):
        with pytest.raises(TypeError):
            DEFAULT.extract(bad)
        with pytest.raises(TypeError):
            cspec.extract(bad)
    unfitted = compiled.CompiledSpec(default_feature_spec())
    with pytest.raises(ContractError, match="vocab"):
        unfitted.extract("hello")


SPECIAL = "\x00\t\n\r \x7f\x80\xa0\u00e9\u0130\u0131\u00df\u03b1\u0416\u0663\u0905\u3042\u4e2d\uac00\ufffd\uff11\U0001f600\U0010ffff"
ascii_heavy = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=300)
any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=120)
mixed = st.lists(st.one_of(
    ascii_heavy, any_text, st.text(alphabet=st.sampled_from(SPECIAL), max_size=20),
    st.sampled_from(FIT_CORPUS), st.sampled_from(["def ", "IMPORT ", "How Many", "(a)", "\\frac", "```", "\n    ",
                                                   "$", "?", "_", "embedding", "capital of", "aaaa"]),
), max_size=8).map("".join)
query = st.one_of(st.just(""), st.none(), ascii_heavy, any_text, mixed, st.binary(max_size=200),
                  st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.sampled_from("ab"),
                          max_size=10))
HYP = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_ext
@HYP
@given(st.lists(query, min_size=1, max_size=10))
def test_hypothesis_default_spec(queries):
    cspec, csmall = _compiled_default()
    for q in queries:
        assert_same_features(DEFAULT, cspec, q)
        assert_same_features(SMALL, csmall, q)


_CACHE: dict = {}


def _compiled_default():
    if "default" not in _CACHE:
        _CACHE["default"] = (compiled.CompiledSpec(DEFAULT), compiled.CompiledSpec(SMALL))
    return _CACHE["default"]


CP = st.one_of(st.integers(0, 0x7F), st.integers(0x80, 0x3000), st.integers(0, MAX_CODE_POINT), st.sampled_from(CP_EDGES))


@needs_ext
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(CP, st.integers(0, 0x3000) | st.integers(0, 40)), min_size=1, max_size=4),
    st.lists(st.text(alphabet=st.sampled_from(SPECIAL + "abcXYZ019_ -"), min_size=1, max_size=4), min_size=1, max_size=4),
    st.booleans(),
    st.integers(1, 50),
    st.lists(query, min_size=1, max_size=8),
)
def test_hypothesis_random_specs(spans, literals, lower, max_chars, queries):
    ranges = [[lo, min(lo + w, MAX_CODE_POINT)] for lo, w in spans]
    lits = [ascii_lower(s) if lower else s for s in literals]
    spec = spec_of(
        F("chars", "char_count", {}),
        F("bytes", "byte_count", {}),
        F("cls", "count_class", {"ranges": ranges}),
        F("runs", "count_runs", {"ranges": ranges}),
        F("lit", "count_literal", {"literal": lits[0], "ascii_lower": lower}),
        F("lit2", "count_literal", {"literal": lits[-1], "ascii_lower": False}),
        F("any", "contains_any", {"literals": lits, "ascii_lower": lower}),
        F("any2", "contains_any", {"literals": lits, "ascii_lower": not lower and all(ascii_lower(s) == s for s in lits)}),
        F("t", "token_buckets", {"n_buckets": 3, "vocab": {"a": 0, "b": 1, "abc": 2, "xyz": 2, "019": 1, "_": 0}}),
        F("r", "ratio", {"num": "runs", "den": "cls"}),
        F("l", "log1p", {"of": "r"}),
        max_chars=max_chars,
    )
    cspec = compiled.CompiledSpec(spec)
    for q in queries:
        assert_same_features(spec, cspec, q)


def _shared(*parts: str) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data directory not found at {SHARED_DATA}: real-data parity not checked")
    return SHARED_DATA.joinpath(*parts)


@needs_ext
@pytest.mark.slow
def test_every_real_query():
    train = [r["question"] for r in json.loads(_shared("llmrouter_dcrouter", "train.json").read_text())]
    test = [r["question"] for r in json.loads(_shared("llmrouter_dcrouter", "test.json").read_text())]
    profile = [r["query"] for r in json.loads(_shared("routeprofile", "routing_test_data.json").read_text())]
    queries = train + test + profile
    assert len(queries) == 6708
    spec = hand_fitted(default_feature_spec(), train)
    assert len(spec.features[-1].params["vocab"]) == 4096
    cspec = compiled.CompiledSpec(spec)
    for q in queries:
        assert_same_features(spec, cspec, q)


# ---------------------------------------------------------------------------------------------------
# scoring


def _score_inputs(art, part=None):
    part = part or art
    bases = [part.scorer.candidate_base(part.candidate_vector(m)) for m in art.pool]
    return part.scorer, bases


def _assert_same_scores(scorer: CandidateScorer, cscorer, q, bases) -> None:
    want = scorer.score(q, bases)
    packed = cscorer.stack(bases)
    for got in (cscorer.score(q, packed), cscorer.score(q, bases), cscorer.score(tuple(q), list(bases))):
        assert all(type(x) is float for x in got)
        assert bits(got) == bits(want), (q, want, got)
    assert [tuple(b) for b in packed] == [tuple(b) for b in bases]


@needs_ext
def test_scoring_parity_on_the_committed_fixture():
    art = load_artifact(FIXTURE)
    scorer, bases = _score_inputs(art)
    cs = compiled.CompiledScorer(scorer)
    cspec = compiled.CompiledSpec(art.feature_spec)
    for q in FIT_CORPUS + EDGE_TEXT:
        feats = cspec.extract(q)
        _assert_same_scores(scorer, cs, feats, bases)
        assert cs.score(feats, bases) == scorer.score(feats, bases)
    _assert_same_scores(scorer, cs, [NAN] * len(art.feature_spec.output_names), bases)


@needs_ext
@pytest.mark.parametrize("which", ["quality", "length"])
def test_scoring_parity_on_a_trained_artifact(trained_registry, which):
    art = load_artifact(trained_registry)
    # The length model is a second ensemble on the same evaluator: the same guarantees.
    scorer, bases = _score_inputs(art, art.length if which == "length" else None)
    cs = compiled.CompiledScorer(scorer)
    cspec = compiled.CompiledSpec(art.feature_spec)
    n = len(art.feature_spec.output_names)
    queries = FIT_CORPUS + EDGE_TEXT + [None]
    for q in queries:
        feats = cspec.extract(q)
        _assert_same_scores(scorer, cs, feats, bases)
        for k in range(1, len(bases) + 1):  # every prefix of the candidates, in both orders
            _assert_same_scores(scorer, cs, feats, bases[:k])
            _assert_same_scores(scorer, cs, feats, bases[::-1][:k])
    # values exactly at, just above and just below every query threshold, and NaN / inf
    thr = {i: [] for i in range(n)}
    for i, t, _ in scorer._q:
        thr[i].append(t)
    base_q = cspec.extract(FIT_CORPUS[1])
    for i, ts in thr.items():
        for t in ts[:8]:
            for v in (t, math.nextafter(t, math.inf), math.nextafter(t, -math.inf), NAN, math.inf, -math.inf, -0.0):
                q = list(base_q)
                q[i] = v
                _assert_same_scores(scorer, cs, q, bases)
    _assert_same_scores(scorer, cs, [NAN] * n, bases)
    assert cs.score(base_q, cs.stack([])) == [] == scorer.score(base_q, [])


@st.composite
def ensembles(draw):
    n_in = draw(st.integers(1, 6))
    depths = draw(st.lists(st.integers(0, 5), min_size=0, max_size=12))
    n_splits = sum(depths)
    big = draw(st.booleans())
    leaf = st.floats(-1e6, 1e6, allow_nan=False) if big else st.floats(-2, 2, allow_nan=False)
    spec = {
        "inputs": [f"x{i}" for i in range(n_in)],
        "tree_depth": depths,
        "split_input": draw(st.lists(st.integers(0, n_in - 1), min_size=n_splits, max_size=n_splits)),
        "split_border": draw(st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.5, 1e10]), min_size=n_splits,
                                      max_size=n_splits)),
        "leaf_values": draw(st.lists(leaf, min_size=sum(2 ** d for d in depths), max_size=sum(2 ** d for d in depths))),
        "nan_as_true": draw(st.lists(st.sampled_from([f"x{i}" for i in range(n_in)]), unique=True, max_size=n_in)),
        "scale": draw(st.sampled_from([1.0, 0.5, 3.0, -1.25])),
        "bias": draw(st.sampled_from([0.0, 0.1, -7.5])),
    }
    ens = ObliviousEnsemble(spec)
    n_q = draw(st.integers(0, n_in))
    plan = [("q", i) if i < n_q else ("c", i - n_q) for i in range(n_in)]
    return ens, CandidateScorer(ens, plan), n_q, n_in - n_q


value = st.one_of(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.5, 1e10, NAN, math.inf, -math.inf, -0.0]),
                  st.floats(allow_nan=True))


@needs_ext
@settings(max_examples=300, deadline=None)
@given(ensembles(), st.data())
def test_hypothesis_scoring_on_random_ensembles(built, data):
    ens, scorer, n_q, n_c = built
    cs = compiled.CompiledScorer(scorer)
    cands = data.draw(st.lists(st.lists(value, min_size=n_c, max_size=n_c), max_size=5))
    bases = [scorer.candidate_base(c) for c in cands]
    for _ in range(3):
        q = data.draw(st.lists(value, min_size=n_q, max_size=n_q))
        _assert_same_scores(scorer, cs, q, bases)
        # and the full evaluation agrees too (the scorer's own invariant)
        for c, got in zip(cands, cs.score(q, cs.stack(bases))):
            assert bits([got]) == bits([ens.predict(q + c)])


# ---------------------------------------------------------------------------------------------------
# bad input raises, never crashes


@needs_ext
def test_bad_feature_plans_are_refused():
    from router_runtime import _speedups, text

    good = [(0,), (2, [(48, 57)]), (4, b"ab", False), (5, (b"x", b"yz"), True), (6, 2, {b"ab": 1}), (7, 0, 1), (8, 0)]
    _speedups.FeaturePlan(good, 10, text.as_text)
    bad = [
        [(9,)], [(-1,)], [("x",)], [()], ["op"], [(0, 1)], [(2,)], [(2, [])], [(2, [(5, 4)])], [(2, [(0, 0x110000)])],
        [(2, [(-1, 3)])], [(2, [(1, 2, 3)])], [(2, [(1.0, 2)])], [(2, [(True, 2)])], [(4, "ab", False)],
        [(4, b"", False)], [(4, b"a", 1)], [(5, (), False)], [(5, [b"a"], False)], [(5, (b"a", ""), False)],
        [(6, 0, {})], [(6, 2, {b"ab": 2})], [(6, 2, {b"ab": -1})], [(6, 2, {"ab": 0})], [(6, 2, {b"a b": 0})],
        [(6, 2, {b"AB": 0})], [(6, 2, {b"": 0})], [(6, 2, [])], [(6, 2, {b"a": 1.0})], [(6, 1 << 30, {})],
        [(7, 0, 0)], [(0,), (7, 0, 1)], [(0,), (7, 0, 5)], [(0,), (7, -1, 0)], [(6, 2, {}), (7, 0, 1)],
        [(0,), (8, 1)], [(8, 0)], [(0,), (8, "0")],
    ]
    for ops in bad:
        with pytest.raises((TypeError, ValueError)):
            _speedups.FeaturePlan(ops, 10, text.as_text)
    for args in (([], 0, text.as_text), ([], 10, None), (None, 10, text.as_text), ({}, 10, text.as_text)):
        with pytest.raises((TypeError, ValueError)):
            _speedups.FeaturePlan(*args)


@needs_ext
def test_bad_scorers_and_bases_are_refused():
    from router_runtime import _speedups

    ok = dict(q_splits=[(0, 0.5, -math.inf)], contrib=[((0, 1),)], sizes=[2, 1], offsets=[0, 2],
              leaves=[1, 2, 3], unit=1.0, scale=1.0, bias=0.0)
    sc = _speedups.Scorer(**ok)
    assert sc.score([1.0], [(0, 2)]) == [5.0] and sc.score([0.0], [(0, 2)]) == [4.0]
    bad = [
        dict(sizes=[2]), dict(offsets=[0, 1]), dict(offsets=[1, 3]), dict(sizes=[3, 1], leaves=[1, 2, 3, 4]),
        dict(sizes=[2, 2]), dict(leaves=[1, 2]), dict(leaves=[1, 2, 3, 4]), dict(leaves=[1, 2.0, 3]),
        dict(leaves=[2 ** 63, 0, 0]), dict(leaves=[2 ** 62, 2 ** 62, 2 ** 62]), dict(q_splits=[]),
        dict(q_splits=[(-1, 0.5, 0.0)]), dict(q_splits=[(0, "x", 0.0)]), dict(q_splits=[(0, 0.5)]),
        dict(contrib=[((2, 1),)]), dict(contrib=[((0, 2),)]), dict(contrib=[((0, 3),)]), dict(contrib=[((0, 0),)]),
        dict(contrib=[((0, 1), (0, 1))]), dict(contrib=[((1, 1),)]), dict(contrib=[(0, 1)]), dict(contrib=[[(0, 1)]]),
        dict(unit=math.inf), dict(bias=math.nan), dict(sizes=[2, 0]), dict(sizes=[1 << 17, 1]),
    ]
    for over in bad:
        with pytest.raises((TypeError, ValueError)):
            _speedups.Scorer(**{**ok, **over})
    for bases in ([(0,)], [(0, 2, 0)], [(2, 2)], [(1, 2)], [(-1, 2)], [(0, 3)], [(0, 2 ** 70)], [("0", 2)], [None], 5,
                  [(0.0, 2)]):
        with pytest.raises((TypeError, ValueError)):
            sc.score([1.0], bases)
        with pytest.raises((TypeError, ValueError)):
            sc.stack(bases)
    for q in ([], None, ["x"], 3):
        with pytest.raises((TypeError, ValueError)):
            sc.score(q, [(0, 2)])
    other = _speedups.Scorer(**ok)
    with pytest.raises(ValueError, match="another scorer"):
        sc.score([1.0], other.stack([(0, 2)]))
    with pytest.raises(TypeError):
        sc.score([1.0])
    with pytest.raises(TypeError):
        _speedups.PackedBases()
    packed = sc.stack([(0, 2)])
    assert len(packed) == 1 and packed[0] == (0, 2)
    with pytest.raises(IndexError):
        packed[1]


@needs_ext
def test_python_code_that_mutates_its_inputs_during_conversion_cannot_crash():
    from router_runtime import _speedups

    sc = _speedups.Scorer([(0, 0.5, 0.0), (1, 0.5, 0.0)], [((0, 1),), ((0, 2),)], [4], [0], [1, 2, 3, 4],
                          1.0, 1.0, 0.0)
    q: list = []

    class Evil(float):
        pass

    class Shrink:
        def __float__(self):
            q.clear()
            return 1.0

    q[:] = [Shrink(), 1.0]
    with pytest.raises(ValueError):
        sc.score(q, [(0,)])
    bases: list = []

    class ShrinkIndex:
        def __index__(self):
            bases.clear()
            return 0

    bases[:] = [[ShrinkIndex()], [0]]
    try:
        sc.score([1.0, 1.0], bases)
    except ValueError:
        pass
    assert sc.score([Evil(1.0), 1.0], [(0,)]) == [4.0]


def _compiled_fixture():
    """The committed fixture artifact with its compiled scorer, packed bases, and DEFAULT compiled."""
    art = load_artifact(FIXTURE)
    cs = compiled.CompiledScorer(art.scorer)
    _, bases = _score_inputs(art)
    return art, compiled.CompiledSpec(DEFAULT), cs, bases, cs.stack(bases)


@needs_ext
def test_threads_share_compiled_objects():
    art, cspec, cs, bases, packed = _compiled_fixture()
    afeats = compiled.CompiledSpec(art.feature_spec).extract
    want = {q: (DEFAULT.extract(q), art.scorer.score(art.feature_spec.extract(q), bases)) for q in FIT_CORPUS}
    errors = []

    def work():
        try:
            for _ in range(200):
                for q in FIT_CORPUS:
                    if bits(cspec.extract(q)) != bits(want[q][0]) or cs.score(afeats(q), packed) != want[q][1]:
                        errors.append(q)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@needs_ext
def test_no_leaks_over_many_calls():
    art, cspec, cs, bases, packed = _compiled_fixture()
    qs = FIT_CORPUS + ["é" * 2000, "a" * 70000, b"\xff\xfe", None, "x\ud800"]
    feats = compiled.CompiledSpec(art.feature_spec).extract("def import")

    def burst(n):
        for i in range(n):
            cspec.extract(qs[i % len(qs)])
            cs.score(feats, packed)
            cs.score(feats, bases)
            cs.stack(bases)
            try:
                cs.score([1.0], bases)
            except ValueError:
                pass

    burst(2000)  # warm caches (freelists, interned objects)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        burst(20000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes still allocated after 20000 calls"


def test_a_stale_in_place_build_is_refused():
    from types import SimpleNamespace

    if not (ROOT / "router_runtime" / "_speedups.c").exists():
        pytest.skip("no C source next to the package")
    why = compiled._stale_source(SimpleNamespace(SOURCE_SHA256="0" * 64))
    assert why is not None and "stale build" in why
    assert compiled._stale_source(SimpleNamespace(SOURCE_SHA256="")) is None  # built without the hash
