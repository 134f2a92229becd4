"""Feature specs: the pure-Python and the Polars interpreters agree bit for bit, and specs validate.

Hand-computed cases pin each op's meaning on both interpreters; Hypothesis and the two real data
sets check parity; the JSON contract's refusals are checked one by one.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from flows.features import POLARS_OPS, add_features, feature_exprs, feature_matrix, fit_feature_spec
from router_runtime.errors import ContractError, SchemaVersionError, UnknownOpError
from router_runtime.features import (
    OPS,
    PYTHON_OPS,
    Feature,
    FeatureSpec,
    default_feature_spec,
)
from router_runtime.text import as_text, ascii_lower

from fit_corpus import FIT_CORPUS

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NAN = float("nan")


# ---------------------------------------------------------------------------------------------------
# helpers


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def python_rows(spec: FeatureSpec, queries) -> list[list[float]]:
    return [spec.extract(q) for q in queries]


def assert_parity(spec: FeatureSpec, queries, frame: pl.DataFrame | None = None) -> None:
    """Python vectors == Polars rows bit for bit; names the first differing query and feature."""
    frame = feature_matrix(queries, spec) if frame is None else frame
    assert frame.columns == list(spec.output_names)
    assert all(dt == pl.Float64 for dt in frame.dtypes)
    for q, py, row in zip(queries, python_rows(spec, queries), frame.rows(), strict=True):
        assert len(py) == len(spec.output_names)
        for name, a, b in zip(spec.output_names, py, row, strict=True):
            if bits(a) != bits(b):
                pytest.fail(f"feature {name!r}: python {a!r} != polars {b!r} for query {q!r:.300}")


def polars_three_ways(spec: FeatureSpec, queries) -> pl.DataFrame:
    """Eager with_columns, eager select and lazy collect must give identical frames; returns one."""
    df = pl.DataFrame({"query": [as_text(q) for q in queries]}, schema={"query": pl.String})
    names = list(spec.output_names)
    eager = df.with_columns(feature_exprs(spec)).select(names)
    selected = df.select(feature_exprs(spec))
    lazy = df.lazy().select(feature_exprs(spec)).collect()
    assert_frame_equal(eager, selected, check_exact=True)
    assert_frame_equal(eager, lazy, check_exact=True)
    # the public helpers too (they go through the lazy engine)
    assert_frame_equal(add_features(df, spec).select(names), eager, check_exact=True)
    assert_frame_equal(add_features(df.lazy(), spec).collect().select(names), eager, check_exact=True)
    assert_frame_equal(feature_matrix(queries, spec), eager, check_exact=True)
    return eager


def same_vector(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(bits(float(a)) == bits(float(b)) for a, b in zip(got, want))


def spec_of(*features: Feature, max_chars: int = 65536) -> FeatureSpec:
    return FeatureSpec(tuple(features), max_chars=max_chars)


F = Feature
WORD = [[48, 57], [65, 90], [95, 95], [97, 122]]
CHARS = F("chars", "char_count", {})
DIGITS = F("digits", "count_class", {"ranges": [[48, 57]]})


# ---------------------------------------------------------------------------------------------------
# the op registries


def test_both_interpreters_implement_exactly_the_closed_op_set():
    assert OPS == {
        "char_count", "byte_count", "count_class", "count_runs", "count_literal", "contains_any",
        "token_buckets", "static_embedding", "ratio", "log1p",
    }
    assert set(PYTHON_OPS) == OPS
    assert set(POLARS_OPS) == OPS


def test_runtime_features_import_only_the_standard_library():
    code = (
        "import sys, router_runtime.features as f; f.default_feature_spec(); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('polars', 'numpy', 'pyarrow', 'flows')); "
        "assert not bad, bad"
    )
    root = str(Path(__file__).resolve().parents[2])
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={**os.environ, "PYTHONPATH": root})


def test_default_spec_uses_every_op_and_has_the_documented_shape():
    spec = default_feature_spec()
    # static_embedding is opt-in: its table comes from an embedding model, and an older runtime
    # refuses a spec that has it (UnknownOpError)
    assert {f.op for f in spec.features} == OPS - {"static_embedding"}
    scalar = [f for f in spec.features if f.op != "token_buckets"]
    assert 40 <= len(scalar) <= 60
    (tok,) = [f for f in spec.features if f.op == "token_buckets"]
    assert tok.name == "tok" and tok.params == {"n_buckets": 64, "vocab": None}
    assert spec.output_names[-64:] == tuple(f"tok__{i}" for i in range(64))
    assert len(set(spec.output_names)) == len(spec.output_names) == len(scalar) + 64
    assert spec.needs_fit


# ---------------------------------------------------------------------------------------------------
# hand-computed cases: (features, max_chars, query, expected vector), checked on both interpreters

CASES = [
    # lengths are code points / UTF-8 bytes
    ((CHARS,), 65536, "héllo 日本 😀", [10.0]),
    ((CHARS,), 65536, "x\u0301", [2.0]),  # a combining mark is its own code point
    ((F("b", "byte_count", {}),), 65536, "héllo 日本 😀", [18.0]),
    ((F("b", "byte_count", {}),), 65536, "", [0.0]),
    # count_class: only the listed code points (not Arabic-Indic or fullwidth digits)
    ((DIGITS,), 65536, "a1b22 \u0663 \uff11", [3.0]),
    ((F("greek", "count_class", {"ranges": [[0x370, 0x3FF]]}),), 65536, "αβγ abc Ω", [4.0]),
    ((F("mix", "count_class", {"ranges": [[0x3B1, 0x3B1], [48, 57], [0x1F600, 0x1F64F]]}),), 65536, "1α2β😀", [4.0]),
    ((F("ctl", "count_class", {"ranges": [[0, 8], [0x0B, 0x1F], [0x7F, 0x7F]]}),), 65536,
     "\x00a\x1c\x1d\t\n\x7f\x80", [4.0]),
    ((F("na", "count_class", {"ranges": [[0x80, 0x10FFFF]]}),), 65536, "aé日😀\x80", [4.0]),
    ((F("sur", "count_class", {"ranges": [[0xD800, 0xDFFF]]}),), 65536, "a\ud800b", [0.0]),  # as_text: U+FFFD
    # overlapping classes share ASCII code points ("=" is in both)
    ((F("code", "count_class", {"ranges": [[61, 61], [40, 41]]}), F("math", "count_class", {"ranges": [[43, 43], [61, 61]]})),
     65536, "x = (a+b) == c", [5.0, 4.0]),
    # count_runs: maximal runs
    ((F("words", "count_runs", {"ranges": WORD}),), 65536, "a1 b_2 ..c-d  é", [4.0]),
    ((F("words", "count_runs", {"ranges": WORD}),), 65536, "abcé日def", [2.0]),  # non-ASCII separates
    ((F("words", "count_runs", {"ranges": WORD}),), 65536, "", [0.0]),
    ((F("gr", "count_runs", {"ranges": [[0x3B1, 0x3C9]]}),), 65536, "αβ x γ", [2.0]),
    ((F("gr", "count_runs", {"ranges": [[97, 122], [0x3B1, 0x3C9]]}),), 65536, "abαβ-cγ δ", [3.0]),
    ((F("gr", "count_runs", {"ranges": [[97, 122], [0x3B1, 0x3C9]]}),), 65536, "ab-c d", [3.0]),  # ASCII text
    # count_literal: non-overlapping, leftmost first; ASCII-only lower-casing
    ((F("aa", "count_literal", {"literal": "aa", "ascii_lower": False}),), 65536, "aaaaa", [2.0]),
    ((F("ab", "count_literal", {"literal": "ab", "ascii_lower": True}),), 65536, "ABab aB", [3.0]),
    ((F("ab", "count_literal", {"literal": "ab", "ascii_lower": False}),), 65536, "ABab aB", [1.0]),
    ((F("i", "count_literal", {"literal": "i", "ascii_lower": True}),), 65536, "İIı", [1.0]),  # only I -> i
    ((F("ss", "count_literal", {"literal": "ss", "ascii_lower": True}),), 65536, "ß SS", [1.0]),
    ((F("ind", "count_literal", {"literal": "\n    ", "ascii_lower": False}),), 65536, "a\n    b\n        c", [2.0]),
    ((F("d", "count_literal", {"literal": "$", "ascii_lower": False}),), 65536, "$x$\n$", [3.0]),
    ((F("e_acute", "count_literal", {"literal": "é", "ascii_lower": True}),), 65536, "éÉé", [2.0]),
    # contains_any
    ((F("mc", "contains_any", {"literals": ["options:", "(a)"], "ascii_lower": True}),), 65536, "OPTIONS: x", [1.0]),
    ((F("mc", "contains_any", {"literals": ["options:", "(a)"], "ascii_lower": True}),), 65536, "option (b)", [0.0]),
    ((F("mc", "contains_any", {"literals": ["abc"], "ascii_lower": False}),), 65536, "ABC", [0.0]),
    ((F("mc", "contains_any", {"literals": ["embed", "embedding"], "ascii_lower": True}),), 65536, "Embeddings", [1.0]),
    ((F("mc", "contains_any", {"literals": ["日本"], "ascii_lower": False}),), 65536, "に日本語", [1.0]),
    # token_buckets: runs of [a-z0-9_] after ASCII lower-casing; unknown tokens count nowhere
    ((F("t", "token_buckets", {"n_buckets": 3, "vocab": {"the": 0, "cat": 1, "sat": 1}}),), 65536,
     "The cat SAT on the_mat; caté İthe the", [3.0, 3.0, 0.0]),
    ((F("t", "token_buckets", {"n_buckets": 2, "vocab": {}}),), 65536, "the cat", [0.0, 0.0]),
    ((F("t", "token_buckets", {"n_buckets": 2, "vocab": {"a": 1}}),), 65536, "a a  a\na", [0.0, 4.0]),
    # ratio: 0.0 when the denominator is 0
    ((CHARS, DIGITS, F("r", "ratio", {"num": "digits", "den": "chars"})), 65536, "a1b2", [4.0, 2.0, 0.5]),
    ((CHARS, DIGITS, F("r", "ratio", {"num": "digits", "den": "chars"})), 65536, "", [0.0, 0.0, 0.0]),
    ((CHARS, DIGITS, F("r", "ratio", {"num": "chars", "den": "digits"})), 65536, "abc", [3.0, 0.0, 0.0]),
    ((CHARS, DIGITS, F("r", "ratio", {"num": "chars", "den": "digits"})), 65536, "a1b", [3.0, 1.0, 3.0]),
    # log1p
    ((CHARS, F("l", "log1p", {"of": "chars"})), 65536, "abc", [3.0, math.log1p(3.0)]),
    ((CHARS, F("l", "log1p", {"of": "chars"})), 65536, "", [0.0, 0.0]),
    # max_chars cuts code points, not bytes, before every op
    ((CHARS, F("b", "byte_count", {}), DIGITS), 3, "12345", [3.0, 3.0, 3.0]),
    ((CHARS, F("b", "byte_count", {})), 3, "😀😀😀😀", [3.0, 12.0]),
    ((F("t", "token_buckets", {"n_buckets": 1, "vocab": {"ab": 0}}),), 4, "ab abc ab", [1.0]),
    ((F("t", "token_buckets", {"n_buckets": 1, "vocab": {"ab": 0}}),), 2, "abc", [1.0]),  # cut makes "ab"
    ((F("words", "count_runs", {"ranges": WORD}),), 5, "ab cd ef", [2.0]),
    # what as_text does: undecodable bytes and lone surrogates are U+FFFD on both sides
    ((CHARS, F("b", "byte_count", {})), 65536, b"ab\xffcd", [5.0, 7.0]),
    ((CHARS, F("b", "byte_count", {})), 65536, "a\ud800b", [3.0, 5.0]),
]


@pytest.mark.parametrize("features,max_chars,query,expected", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_hand_computed_case_on_both_interpreters(features, max_chars, query, expected):
    spec = spec_of(*features, max_chars=max_chars)
    got = spec.extract(query)
    assert same_vector(got, expected), f"python {got} != expected {expected}"
    frame = polars_three_ways(spec, [query])
    assert same_vector(list(frame.row(0)), expected), f"polars {frame.row(0)} != expected {expected}"


def test_invalid_utf8_and_lone_surrogates_equal_their_replacement_strings():
    spec = fitted_small_spec()
    assert same_vector(spec.extract(b"ab\xffcd \xe6\x97"), spec.extract("ab\ufffdcd \ufffd"))
    assert same_vector(spec.extract("x\udfff y\ud800"), spec.extract("x\ufffd y\ufffd"))
    assert same_vector(spec.extract(bytearray(b"caf\xc3\xa9")), spec.extract("café"))
    assert_parity(spec, [b"ab\xffcd", "x\udfff y\ud800", None])


def test_missing_query_is_all_nan_on_both_sides():
    spec = fitted_small_spec()
    py = spec.extract(None)
    assert len(py) == len(spec.output_names) and all(math.isnan(x) for x in py)
    frame = polars_three_ways(spec, [None, "abc", None])
    assert_frame_equal(feature_matrix(pl.Series("q", [None, "abc", None], dtype=pl.String), spec), frame, check_exact=True)
    for i in (0, 2):
        assert all(isinstance(x, float) and math.isnan(x) for x in frame.row(i))
    assert not any(math.isnan(x) for x in frame.row(1))
    assert_parity(spec, [None, "abc", None], frame)


def test_token_buckets_beyond_6400_buckets():
    # the Polars side writes bucket numbers >= 6400 with two private-use "digits"
    spec = spec_of(F("t", "token_buckets", {"n_buckets": 6402, "vocab": {"a": 0, "b": 1, "c": 6400, "d": 6401, "e": 1}}))
    want = [0.0] * 6402
    want[0], want[1], want[6400], want[6401] = 1.0, 3.0, 2.0, 1.0
    assert same_vector(spec.extract("a b c d e e c"), want)
    frame = feature_matrix(["a b c d e e c", "c c d", "", None], spec)
    assert same_vector(list(frame.row(0)), want)
    assert_parity(spec, ["a b c d e e c", "c c d", "", None], frame)


def test_extract_returns_floats_in_output_order():
    spec = spec_of(CHARS, DIGITS, F("t", "token_buckets", {"n_buckets": 2, "vocab": {"x": 1}}))
    assert spec.output_names == ("chars", "digits", "t__0", "t__1")
    v = spec.extract("x 1 x")
    assert v == [5.0, 1.0, 0.0, 2.0] and all(type(x) is float for x in v)
    with pytest.raises(TypeError):
        spec.extract(12)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# fitting



def fitted_small_spec(max_chars: int = 65536) -> FeatureSpec:
    return fit_feature_spec(default_feature_spec(max_chars=max_chars), pl.Series(FIT_CORPUS), min_count=1)


def test_fit_picks_most_frequent_tokens_ties_by_token_and_crc32_buckets():
    spec = spec_of(CHARS, F("t", "token_buckets", {"n_buckets": 8, "vocab": None}),
                   F("u", "token_buckets", {"n_buckets": 3, "vocab": None}))
    assert spec.needs_fit
    queries = pl.Series(["b a zz", "A b c", "c", "d", None, "B"])
    fitted = fit_feature_spec(spec, queries, vocab_size=2, min_count=2)
    assert not fitted.needs_fit and spec.needs_fit  # the input spec is unchanged
    # counts: b 3, a 2, c 2, zz 1, d 1 -> top 2 are b, then a (a < c breaks the tie)
    vocab_t = fitted.features[1].params["vocab"]
    assert list(vocab_t) == ["b", "a"]
    assert vocab_t == {tok: zlib.crc32(tok.encode()) % 8 for tok in ("b", "a")}
    assert fitted.features[2].params["vocab"] == {tok: zlib.crc32(tok.encode()) % 3 for tok in ("b", "a")}
    assert fitted.features[0] == spec.features[0]
    # min_count excludes singletons; vocab_size bounds the size
    assert list(fit_feature_spec(spec, queries, vocab_size=10, min_count=2).features[1].params["vocab"]) == ["b", "a", "c"]
    assert len(fit_feature_spec(spec, queries, vocab_size=10, min_count=1).features[1].params["vocab"]) == 5
    # deterministic, and what it fits is what extraction sees (truncated, lower-cased)
    assert fit_feature_spec(spec, queries, vocab_size=2).to_json() == fitted.to_json()
    cut = fit_feature_spec(spec_of(F("t", "token_buckets", {"n_buckets": 2, "vocab": None}), max_chars=4),
                           pl.Series(["ab cd", "AB cd"]), min_count=1)
    assert list(cut.features[0].params["vocab"]) == ["ab", "c"]  # "cd" lies beyond max_chars


def test_fit_leaves_a_spec_without_token_features_alone():
    spec = spec_of(CHARS, DIGITS)
    assert not spec.needs_fit
    assert fit_feature_spec(spec, pl.Series(["abc"])) == spec


def test_unfitted_token_buckets_refuse_to_extract_on_both_sides():
    spec = default_feature_spec()
    with pytest.raises(ContractError) as e:
        spec.extract("hello")
    assert e.value.field == f"features[{len(spec.features) - 1}].params.vocab"
    with pytest.raises(ContractError):
        spec.extract(None)
    with pytest.raises(ContractError):
        feature_exprs(spec)


# ---------------------------------------------------------------------------------------------------
# JSON contract


def test_json_round_trip_of_default_and_fitted_specs():
    for spec in (default_feature_spec(), fitted_small_spec(), fitted_small_spec(max_chars=17)):
        d = json.loads(json.dumps(spec.to_json()))
        assert set(d) == {"version", "max_chars", "features", "routed_text"}
        back = FeatureSpec.from_json(d)
        assert back == spec and back.to_json() == spec.to_json()
        assert back.output_names == spec.output_names and back.max_chars == spec.max_chars
        if not spec.needs_fit:
            q = "Round trip: def f(x): return x ** 2 # 日本"
            assert same_vector(back.extract(q), spec.extract(q))


def test_spec_owns_its_params():
    params = {"n_buckets": 2, "vocab": {"a": 0}}
    spec = spec_of(F("t", "token_buckets", params))
    params["vocab"]["b"] = 1
    spec.to_json()["features"][0]["params"]["vocab"]["c"] = 1
    assert spec.features[0].params["vocab"] == {"a": 0}
    assert spec.extract("a b c") == [1.0, 0.0]
    # tuples are accepted and stored as JSON lists
    assert spec_of(F("d", "count_class", {"ranges": ((48, 57),)})).features[0].params == {"ranges": [[48, 57]]}


def _spec_json(*features: dict, version=1, max_chars=100) -> dict:
    return {"version": version, "max_chars": max_chars, "features": list(features)}


def _feat(name, op, **params):
    return {"name": name, "op": op, "params": params}


REFUSALS = [
    # (spec json, error class, field)
    (_spec_json(_feat("a", "char_count"), _feat("b", "regex", pattern="\\w+")), UnknownOpError, "features[1].op"),
    (_spec_json(_feat("a", "char_count"), version=2), SchemaVersionError, "version"),
    (_spec_json(_feat("a", "char_count"), version="1"), SchemaVersionError, "version"),
    (_spec_json(_feat("a", "char_count"), version=True), SchemaVersionError, "version"),
    ({"max_chars": 5, "features": []}, SchemaVersionError, "version"),
    ({"version": 1, "features": []}, ContractError, "max_chars"),
    (_spec_json(max_chars=0), ContractError, "max_chars"),
    (_spec_json(_feat("a", "count_literal", ascii_lower=False)), ContractError, "features[0].params.literal"),
    (_spec_json(_feat("a", "count_literal", literal="x")), ContractError, "features[0].params.ascii_lower"),
    (_spec_json(_feat("a", "count_literal", literal="x", ascii_lower="yes")), ContractError,
     "features[0].params.ascii_lower"),
    (_spec_json(_feat("a", "count_literal", literal="", ascii_lower=False)), ContractError, "features[0].params.literal"),
    (_spec_json(_feat("a", "count_literal", literal="Ab", ascii_lower=True)), ContractError, "features[0].params.literal"),
    (_spec_json(_feat("a", "count_literal", literal="x", ascii_lower=False, extra=1)), ContractError,
     "features[0].params.extra"),
    (_spec_json(_feat("a", "contains_any", literals="abc", ascii_lower=False)), ContractError,
     "features[0].params.literals"),
    (_spec_json(_feat("a", "contains_any", literals=["a", 3], ascii_lower=False)), ContractError,
     "features[0].params.literals[1]"),
    (_spec_json(_feat("a", "count_class", ranges=[[5, 3]])), ContractError, "features[0].params.ranges[0]"),
    (_spec_json(_feat("a", "count_class", ranges=[[1, 0x110000]])), ContractError, "features[0].params.ranges[0]"),
    (_spec_json(_feat("a", "count_class", ranges=[[48.0, 57]])), ContractError, "features[0].params.ranges[0]"),
    (_spec_json(_feat("a", "count_runs", ranges=[])), ContractError, "features[0].params.ranges"),
    (_spec_json(_feat("a", "token_buckets", n_buckets=0, vocab=None)), ContractError, "features[0].params.n_buckets"),
    (_spec_json(_feat("a", "token_buckets", n_buckets=2, vocab={"x": 2})), ContractError, "features[0].params.vocab.x"),
    (_spec_json(_feat("a", "token_buckets", n_buckets=2, vocab={"X y": 0})), ContractError, "features[0].params.vocab"),
    (_spec_json(_feat("a", "token_buckets", n_buckets=2, vocab=[])), ContractError, "features[0].params.vocab"),
    (_spec_json(_feat("a", "char_count"), _feat("a", "byte_count")), ContractError, "features[1].name"),
    (_spec_json(_feat("t", "token_buckets", n_buckets=2, vocab=None), _feat("t__1", "char_count")), ContractError,
     "features[1].name"),
    (_spec_json(_feat("Bad-Name", "char_count")), ContractError, "features[0].name"),
    (_spec_json(_feat("r", "ratio", num="a", den="b"), _feat("a", "char_count"), _feat("b", "byte_count")),
     ContractError, "features[0].params.num"),
    (_spec_json(_feat("a", "char_count"), _feat("r", "ratio", num="a", den="r")), ContractError, "features[1].params.den"),
    (_spec_json(_feat("l", "log1p", of="nope")), ContractError, "features[0].params.of"),
    (_spec_json(_feat("t", "token_buckets", n_buckets=2, vocab=None), _feat("l", "log1p", of="t")), ContractError,
     "features[1].params.of"),
    # a one-bucket token_buckets still has no output named after the feature
    (_spec_json(_feat("t", "token_buckets", n_buckets=1, vocab=None), _feat("l", "log1p", of="t")), ContractError,
     "features[1].params.of"),
    (_spec_json({"name": "a", "op": "char_count"}), ContractError, "features[0].params"),
    (_spec_json({"name": "a", "params": {}}), ContractError, "features[0].op"),
    (_spec_json(_feat("a", "char_count")) | {"extra": 1}, ContractError, "extra"),
    ([], ContractError, "feature_spec"),
]


@pytest.mark.parametrize("d,exc,field", REFUSALS, ids=[f"refusal{i}" for i in range(len(REFUSALS))])
def test_from_json_refuses_with_the_field_named(d, exc, field):
    with pytest.raises(exc) as e:
        FeatureSpec.from_json(d)
    assert type(e.value) is exc
    assert e.value.field == field, str(e.value)


def test_unknown_op_names_the_feature():
    with pytest.raises(UnknownOpError, match="'fancy'.*'regex'"):
        FeatureSpec.from_json(_spec_json(_feat("fancy", "regex", pattern="x")))


def test_direct_construction_validates_too():
    with pytest.raises(ContractError):
        FeatureSpec((F("a", "count_literal", {"literal": "x"}),))
    with pytest.raises(SchemaVersionError):
        FeatureSpec((CHARS,), version=2)


# ---------------------------------------------------------------------------------------------------
# Hypothesis parity, bit for bit (one Polars run per generated batch)

SPECIAL = (
    "\u0301\u0308\u20dd"  # combining marks
    "\u0663\u0966\u09e7\uff11\U0001d7d9"  # Nd digits of other scripts
    "\x1c\x1d\x1e\x1f\x00\x01\x08\x0b\x0c\x7f\x85\xa0\u2028\u2029\u3000\ufeff\ufffd"  # separators, controls
    "İıßſKÅΣς"  # case-mapping traps
    "😀🎉🤖🫠👍🏽\u200d❤️"  # emoji (one above U+1FAFF: U+1FB00 below)
    "\U0001fb00\U0001f2ff\U0001f300\U0001faff"
    "\xbf\xc0\u024f\u0250\u036f\u0370\u03ff\u0400\u04ff\u0500\u05ff\u0600\u06ff\u0700"  # class edges
    "\u08ff\u0900\u097f\u0980\u303f\u3040\u30ff\u3100\u33ff\u3400\u4dbf\u4dc0\u4dff\u4e00\u9fff\ua000"
    "\uabff\uac00\ud7af\ud7b0\ud7ff\ue000\U0010ffff"
    "αβγ日本語한국어Привет مرحبا नमस्ते"
)
CODE = [
    "def f(x):\n    return x + 1\n", "```python\n", "```", "#include <stdio.h>", "public static void main",
    "console.log(a);", "{", "}", "[", "]", "(", ")", ";", "=", "==", "<", ">", "_", "__init__", "class A:",
    "import os", "\n    ", "\t", "function () {}", "x_1", "Write a program", "IMPLEMENT",
]
MATH = [
    "\\frac{1}{2}", "$x^2$", "$", "+", "-", "*", "/", "^", "%", "=", "how many", "How Much", "Solve",
    "calculate", "probability", "sum of", "3.14", "1,000", "42", "(a)", "a)", "A.", "Options:", "choices:",
    "Answer Choices", "?", "¿", "¡",
]
WORDS = [
    "the", "The", "THE", "cat", "who ", "When ", "where ", "which ", "what year", "capital of", "clue", "puzzle",
    "step by step", "if and only if", "lives directly", "write", "essay", "story", "poem", "summarize",
    "translate", "embed", "embedding", "vector", "similarity", "foo_bar", "x_1", "42", " ", "  ", "\n", "\n\n",
    ".", ",", ":", "!", "é", "caf", "İstanbul",
]

any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
special_text = st.text(alphabet=st.sampled_from(SPECIAL), max_size=40)
newline_dollar = st.text(alphabet=st.sampled_from("\n$ a\r\t"), max_size=40).map(lambda s: s + "$")
chunk = st.one_of(
    any_text, special_text, st.sampled_from(CODE), st.sampled_from(MATH), st.sampled_from(WORDS), newline_dollar,
)
query = st.one_of(
    st.just(""),
    st.none(),
    any_text,
    special_text,
    st.lists(chunk, max_size=12).map("".join),
    newline_dollar,
    st.lists(st.sampled_from(CODE + MATH + WORDS), max_size=30).map(" ".join),
)
batch = st.lists(query, min_size=1, max_size=25)

DEFAULT_FITTED = fitted_small_spec()
SMALL_CHARS = fitted_small_spec(max_chars=16)
HYP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYP
@given(batch)
def test_hypothesis_parity_default_spec(queries):
    assert_parity(DEFAULT_FITTED, queries)


@HYP
@given(batch)
def test_hypothesis_parity_small_max_chars(queries):
    assert_parity(SMALL_CHARS, queries)


@settings(max_examples=15, deadline=None)
@given(st.lists(chunk, min_size=1, max_size=6).map("".join).filter(bool), st.integers(1, 3))
def test_hypothesis_parity_beyond_default_max_chars(piece, extra):
    # longer than 65536 code points: both sides must cut at the same code point
    n = 65536 // len(piece) + extra
    long = (piece * n)[: 65536 + extra * 7]
    assert len(long) > 65536
    assert_parity(DEFAULT_FITTED, [long, long[:65536], long[::-1]])
    assert same_vector(DEFAULT_FITTED.extract(long), DEFAULT_FITTED.extract(long[:65536]))


@settings(max_examples=60, deadline=None)
@given(batch)
def test_hypothesis_three_polars_ways_agree(queries):
    frame = polars_three_ways(DEFAULT_FITTED, queries)
    assert_parity(DEFAULT_FITTED, queries, frame)


EDGES = [0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xD800, 0xDFFF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF]
code_point = st.one_of(
    st.integers(0, 0x7F), st.integers(0x80, 0x3000), st.integers(0, 0x10FFFF), st.sampled_from(EDGES),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(code_point, st.integers(0, 0x3000) | st.integers(0, 40)), min_size=1, max_size=4),
    st.lists(st.text(alphabet=st.sampled_from(SPECIAL + "abcXYZ019_ -"), min_size=1, max_size=3), min_size=1, max_size=3),
    st.booleans(),
    batch,
)
def test_hypothesis_parity_random_specs(spans, literals, lower, queries):
    ranges = [[lo, min(lo + w, 0x10FFFF)] for lo, w in spans]
    lits = [ascii_lower(s) if lower else s for s in literals]
    spec = spec_of(
        CHARS,
        F("cls", "count_class", {"ranges": ranges}),
        F("runs", "count_runs", {"ranges": ranges}),
        F("lit", "count_literal", {"literal": lits[0], "ascii_lower": lower}),
        F("any", "contains_any", {"literals": lits, "ascii_lower": lower}),
        F("r", "ratio", {"num": "runs", "den": "cls"}),
        F("l", "log1p", {"of": "cls"}),
        max_chars=40,
    )
    assert_parity(spec, queries)


# ---------------------------------------------------------------------------------------------------
# parity on every query of the real data sets


def _shared(*parts: str) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data directory not found at {SHARED_DATA}: real-data parity not checked")
    return SHARED_DATA.joinpath(*parts)


@pytest.mark.slow
def test_parity_on_real_queries():
    train = [r["question"] for r in json.loads(_shared("llmrouter_dcrouter", "train.json").read_text())]
    test = [r["question"] for r in json.loads(_shared("llmrouter_dcrouter", "test.json").read_text())]
    profile = [r["query"] for r in json.loads(_shared("routeprofile", "routing_test_data.json").read_text())]
    assert len(train) + len(test) == 6108 and len(profile) == 600
    spec = fit_feature_spec(default_feature_spec(), pl.Series(train))
    assert len(spec.features[-1].params["vocab"]) == 4096
    queries = train + test + profile
    frame = feature_matrix(queries, spec)
    assert_parity(spec, queries, frame)
    # the real data does exercise the features (a parity test over all-zero columns proves little)
    totals = frame.sum()
    for name in ("words", "digits", "code_syms", "cue_code", "cue_math", "cue_mc", "tok__0", "tok__63", "log_chars"):
        assert totals[name][0] > 0, name
