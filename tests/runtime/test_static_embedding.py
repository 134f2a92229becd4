"""The ``static_embedding`` op: pure Python == compiled plan == Polars, bit for bit; its params are
checked one by one at construction; an unfitted op refuses to extract on every engine.

Tables are seeded random int8 (``tests/static_table.py``), not the real embedding model.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.features import feature_exprs, feature_matrix, fit_feature_spec
from router_runtime import compiled
from router_runtime.errors import ContractError
from router_runtime.features import MAX_STATIC_DIMS, MAX_STATIC_VOCAB, Feature, FeatureSpec, default_feature_spec

from fit_corpus import FIT_CORPUS
from static_table import sample_queries, sample_vocab, static_params, tokens_of, with_static

F = Feature
NAN = float("nan")
needs_ext = pytest.mark.skipif(not compiled.available(), reason=f"compiled engine unavailable: {compiled.reason}")

VOCAB = ["the", "cat", "sat", "on", "mat", "x_1", "42", "_", "def", "return", "a", "zz_not_in_text"]
PARAMS = static_params(VOCAB, dims=7, seed=1)


def bits(v) -> list[bytes]:
    return [struct.pack("<d", float(x)) for x in v]


def spec_of(*features: Feature, max_chars: int = 65536) -> FeatureSpec:
    return FeatureSpec(tuple(features), max_chars=max_chars)


def reference(params: dict, text: str) -> list[float]:
    """The contract written out plainly: integer sums of the rows of in-vocab tokens, then
    (float(s[d]) * scale[d]) / n."""
    dims = params["dims"]
    raw = base64.b64decode(params["table"])
    row = {t: [b - 256 if b >= 128 else b for b in raw[i * dims:(i + 1) * dims]] for i, t in enumerate(params["vocab"])}
    hits = [row[t] for t in tokens_of(text) if t in row]
    if not hits:
        return [0.0] * dims
    return [(float(sum(r[d] for r in hits)) * params["scale"][d]) / len(hits) for d in range(dims)]


def engines_of(spec: FeatureSpec):
    """(name, extract) for every interpreter of the spec: Python, the compiled plan when built, Polars."""
    out = [("python", spec.extract)]
    if compiled.available():
        out.append(("compiled", compiled.CompiledSpec(spec).extract))
    return out


def assert_all_agree(spec: FeatureSpec, queries) -> None:
    frame = feature_matrix(queries, spec)
    assert frame.columns == list(spec.output_names)
    ext = engines_of(spec)
    for q, row in zip(queries, frame.rows(), strict=True):
        want = spec.extract(q)
        assert bits(row) == bits(want), f"polars != python for {q!r:.200}"
        for name, extract in ext[1:]:
            assert bits(extract(q)) == bits(want), f"{name} != python for {q!r:.200}"


# ---------------------------------------------------------------------------------------------------
# meaning


def test_output_names_and_values_follow_the_contract():
    spec = spec_of(F("chars", "char_count", {}), F("emb", "static_embedding", PARAMS))
    assert spec.output_names == ("chars",) + tuple(f"emb__{d}" for d in range(7))
    assert not spec.needs_fit
    for q in ["The cat SAT on the_mat; the cat", "THE THE the", "nothing here", "", "x_1 42 _ a", "caté İthe the"]:
        got = spec.extract(q)[1:]
        assert bits(got) == bits(reference(PARAMS, q)), q
        assert all(type(x) is float for x in got)
    assert spec.extract("nothing here")[1:] == [0.0] * 7  # n == 0: zeros, not NaN
    assert all(math.isnan(x) for x in spec.extract(None))
    assert_all_agree(spec, ["The cat SAT on the_mat; the cat", "", None, "nothing", "a " * 500])


def test_polars_eager_select_and_lazy_agree():
    import polars as pl
    from polars.testing import assert_frame_equal

    from flows.features import add_features

    spec = spec_of(F("chars", "char_count", {}), F("emb", "static_embedding", PARAMS))
    df = pl.DataFrame({"query": ["the cat the", None, "", "nothing", "x_1 " * 40]}, schema={"query": pl.String})
    names = list(spec.output_names)
    eager = df.with_columns(feature_exprs(spec)).select(names)
    assert_frame_equal(df.select(feature_exprs(spec)), eager, check_exact=True)
    assert_frame_equal(df.lazy().select(feature_exprs(spec)).collect(), eager, check_exact=True)
    assert_frame_equal(add_features(df.lazy(), spec).collect().select(names), eager, check_exact=True)
    assert_frame_equal(df.slice(1, 3).select(feature_exprs(spec)), eager.slice(1, 3), check_exact=True)


def test_tokens_are_cut_at_max_chars_like_every_op():
    spec = spec_of(F("emb", "static_embedding", PARAMS), max_chars=5)
    assert bits(spec.extract("the cat")) == bits(reference(PARAMS, "the c"))  # "c" is not "cat"
    assert bits(spec.extract("cat the")) == bits(reference(PARAMS, "cat t"))
    assert_all_agree(spec, ["the cat", "cat the", "the", "thecat", None])


@pytest.mark.parametrize("max_chars", [1, 2, 7, 8, 1000, 65536])
def test_sums_are_exact_with_the_most_tokens_a_text_can_hold(max_chars):
    # One-character tokens one character apart: (max_chars + 1) // 2 of them, each row at an int8
    # extreme: the largest sums any text can produce (the Python engine packs lanes by that bound).
    p = static_params(["a", "b", "c"], dims=5, seed=4)
    spec = spec_of(F("emb", "static_embedding", p), max_chars=max_chars)
    texts = [("a " * max_chars)[:max_chars], ("b " * max_chars)[:max_chars], ("a b " * max_chars)[:max_chars],
             ("c" * max_chars)]
    assert tokens_of(texts[0]) == ["a"] * ((max_chars + 1) // 2)
    for q in texts:
        assert bits(spec.extract(q)) == bits(reference(p, q[:max_chars])), q[:20]
    assert_all_agree(spec, texts)


def test_repeats_around_the_compiled_plans_lane_flush():
    # the C plan adds four dims per 64-bit word and flushes the 16-bit lanes every 257 tokens
    p = static_params(["a", "b", "c"], dims=9, seed=6)
    spec = spec_of(F("emb", "static_embedding", p))
    texts = [w * k for k in (1, 256, 257, 258, 513, 514, 515, 1029) for w in ("a ", "b ", "a b c ")]
    for q in texts[:6]:
        assert bits(spec.extract(q)) == bits(reference(p, q))
    assert_all_agree(spec, texts)


def test_two_tables_in_one_spec_keep_their_own_sums():
    p1, p2 = static_params(VOCAB, dims=5, seed=8), static_params(VOCAB[::-1], dims=MAX_STATIC_DIMS, seed=9)
    spec = spec_of(F("e1", "static_embedding", p1), F("chars", "char_count", {}), F("e2", "static_embedding", p2))
    for q in ("_", "the cat the", "a " * 300):
        v = spec.extract(q)
        assert bits(v[:5]) == bits(reference(p1, q)) and bits(v[6:]) == bits(reference(p2, q))
    assert_all_agree(spec, ["_", "the cat the", "a " * 300, None, ""])


@pytest.mark.parametrize("max_chars", [(1 << 25) - 2, (1 << 25) - 1, 1 << 25, 1 << 30])
def test_huge_max_chars_on_polars_side(max_chars):
    # Polars packs n into the sums while a text can hold under 2**24 tokens; past that it sums n apart
    spec = spec_of(F("emb", "static_embedding", PARAMS), max_chars=max_chars)
    assert_all_agree(spec, ["The cat SAT on the_mat; the cat", "", None, "nothing", "a " * 500])


def test_an_empty_vocab_gives_zeros():
    raw = b""
    p = {"dims": 3, "vocab": [], "table": "", "scale": [1.0, 2.0, 3.0], "sha256": hashlib.sha256(raw).hexdigest()}
    spec = spec_of(F("emb", "static_embedding", p))
    assert spec.extract("the cat") == [0.0, 0.0, 0.0]
    assert_all_agree(spec, ["the cat", "", None])


def test_a_ratio_cannot_read_a_multi_output_feature_even_with_one_dim():
    p = static_params(["a"], dims=1)
    with pytest.raises(ContractError) as e:
        spec_of(F("c", "char_count", {}), F("emb", "static_embedding", p), F("r", "ratio", {"num": "emb", "den": "c"}))
    assert e.value.field == "features[2].params.num"


def test_json_round_trip_keeps_the_table_and_the_values():
    spec = with_static(fit_feature_spec(default_feature_spec(n_buckets=8), FIT_CORPUS, min_count=1), PARAMS)
    back = FeatureSpec.from_json(spec.to_json())
    assert back == spec and back.to_json() == spec.to_json()
    for q in FIT_CORPUS:
        assert bits(back.extract(q)) == bits(spec.extract(q))


def test_the_spec_owns_its_table():
    params = copy.deepcopy(PARAMS)
    spec = spec_of(F("emb", "static_embedding", params))
    before = spec.extract("the cat")
    params["scale"][0] = 99.0
    params["vocab"][0] = "dog"
    assert bits(spec.extract("the cat")) == bits(before)


# ---------------------------------------------------------------------------------------------------
# parity: Python == compiled == Polars

IN_VOCAB = st.sampled_from(VOCAB + ["The", "THE", "Cat", "X_1", "DEF"])
SEP = st.sampled_from([" ", "  ", "\n", ".", ",", "-", "é", "日本", "\u0301", "\x00", "😀", "İ", "\ufffd", "(", ""])
chunk = st.one_of(
    st.lists(st.tuples(IN_VOCAB, SEP).map("".join), max_size=20).map("".join),  # in-vocab tokens, repeats
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),  # any Unicode
    st.text(alphabet=st.sampled_from("the cat x_1 THE 42 _ abcxyz"), max_size=60),  # near-misses ("thecat")
)
text = st.lists(chunk, max_size=6).map("".join)
query = st.one_of(
    st.none(), st.just(""), text,
    text.map(lambda s: s.encode("utf-8")),
    st.binary(max_size=40),  # non-UTF-8 bytes
    st.tuples(text, st.binary(max_size=8)).map(lambda t: t[0].encode() + t[1]),
    text.map(lambda s: s + "\ud800 the"),  # a lone surrogate
)
HYP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPEC = with_static(fit_feature_spec(default_feature_spec(n_buckets=16), FIT_CORPUS, min_count=1), PARAMS)
SPEC_CUT = spec_of(F("emb", "static_embedding", PARAMS), F("tok", "token_buckets", {"n_buckets": 3, "vocab": {"the": 0, "cat": 1}}),
                   F("emb2", "static_embedding", static_params(VOCAB[::-1], dims=MAX_STATIC_DIMS, seed=5)), max_chars=24)


@HYP
@given(st.lists(query, min_size=1, max_size=20))
def test_hypothesis_parity_with_the_default_spec(queries):
    assert_all_agree(SPEC, queries)


@HYP
@given(st.lists(query, min_size=1, max_size=20))
def test_hypothesis_parity_past_max_chars_two_tables(queries):
    assert_all_agree(SPEC_CUT, queries)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(IN_VOCAB, SEP).map("".join), min_size=1, max_size=8).map("".join).filter(bool))
def test_hypothesis_parity_on_text_longer_than_the_default_max_chars(piece):
    long = (piece * (65536 // len(piece) + 2))[:65536 + 50]
    assert_all_agree(SPEC, [long, long[:65536]])
    assert bits(SPEC.extract(long)) == bits(SPEC.extract(long[:65536]))


def test_parity_on_the_committed_sample_queries():
    queries = sample_queries()
    spec = with_static(fit_feature_spec(default_feature_spec(), queries), static_params(sample_vocab(3000), dims=32, seed=2))
    assert_all_agree(spec, queries)
    # the table is really hit: most sample queries have a nonzero embedding
    nonzero = sum(any(v != 0.0 for v in spec.extract(q)[-32:]) for q in queries)
    assert nonzero > 0.9 * len(queries)


# ---------------------------------------------------------------------------------------------------
# malformed params: a ContractError naming the feature and the field


def _with(**changes) -> dict:
    p = copy.deepcopy(PARAMS)
    p.update(changes)
    return p


def _retabled(raw: bytes, **changes) -> dict:
    return _with(table=base64.b64encode(raw).decode(), sha256=hashlib.sha256(raw).hexdigest(), **changes)


RAW = base64.b64decode(PARAMS["table"])
BAD = [
    (_with(dims=0), "dims"),
    (_with(dims=MAX_STATIC_DIMS + 1), "dims"),
    (_with(dims=7.0), "dims"),
    (_with(dims=True), "dims"),
    (_with(vocab="the cat"), "vocab"),
    (_with(vocab={"the": 0}), "vocab"),
    (_with(vocab=["the", "Cat"] + VOCAB[2:]), "vocab[1]"),
    (_with(vocab=["the", "c t"] + VOCAB[2:]), "vocab[1]"),
    (_with(vocab=["the", ""] + VOCAB[2:]), "vocab[1]"),
    (_with(vocab=["the", 3] + VOCAB[2:]), "vocab[1]"),
    (_with(vocab=["the", "caté"] + VOCAB[2:]), "vocab[1]"),
    (_with(vocab=VOCAB[:-1] + ["the"]), f"vocab[{len(VOCAB) - 1}]"),  # duplicate
    (_with(vocab=VOCAB[:-1]), "table"),  # one token fewer than the table's rows: wrong length
    (_retabled(RAW[:-1]), "table"),  # wrong length, hash matching
    (_retabled(RAW + RAW[:7]), "table"),
    (_with(table=PARAMS["table"][:-4] + "!!!!"), "table"),  # not base64
    (_with(table=PARAMS["table"].rstrip("=")), "table") if PARAMS["table"].endswith("=") else
    (_with(table=PARAMS["table"] + "A"), "table"),  # unpadded / bad padding
    (_with(table=base64.urlsafe_b64encode(b"\xfb\xff" * 42).decode()), "table"),  # url-safe alphabet
    (_with(table=" " + PARAMS["table"]), "table"),
    (_with(table=list(RAW)), "table"),
    (_with(table=None), "table"),
    (_with(sha256="0" * 64), "sha256"),  # mismatch: a corrupted or edited table
    (_with(sha256=PARAMS["sha256"].upper()), "sha256"),
    (_with(sha256=PARAMS["sha256"][:-1]), "sha256"),
    (_with(sha256=None), "sha256"),
    (_with(scale=PARAMS["scale"][:-1]), "scale"),
    (_with(scale=None), "scale"),
    (_with(scale=PARAMS["scale"][:-1] + [NAN]), "scale[6]"),
    (_with(scale=[float("inf")] + PARAMS["scale"][1:]), "scale[0]"),
    (_with(scale=["1.0"] + PARAMS["scale"][1:]), "scale[0]"),
    (_with(scale=[True] + PARAMS["scale"][1:]), "scale[0]"),
    ({"dims": 2, "vocab": None, "table": "AAAA", "scale": None, "sha256": None}, "table"),  # unfitted but a table
    ({"dims": 2, "vocab": None, "table": None, "scale": [1.0, 1.0], "sha256": None}, "scale"),
    ({"dims": 2, "vocab": None, "table": None, "scale": None, "sha256": "0" * 64}, "sha256"),
]


@pytest.mark.parametrize("params,field", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_malformed_params_are_refused_with_the_feature_and_field_named(params, field):
    for build in (lambda: spec_of(F("emb", "static_embedding", params)),
                  lambda: FeatureSpec.from_json({"version": 1, "max_chars": 100, "features": [
                      {"name": "emb", "op": "static_embedding", "params": params}]})):
        with pytest.raises(ContractError) as e:
            build()
        assert type(e.value) is ContractError
        assert e.value.field == f"features[0].params.{field}", str(e.value)
        assert "'emb'" in str(e.value)


def test_missing_and_extra_params_are_refused():
    p = copy.deepcopy(PARAMS)
    del p["sha256"]
    with pytest.raises(ContractError, match="sha256"):
        spec_of(F("emb", "static_embedding", p))
    with pytest.raises(ContractError, match="extra"):
        spec_of(F("emb", "static_embedding", _with(extra=1)))


def test_vocab_size_is_bounded():
    vocab = [f"t{i}" for i in range(MAX_STATIC_VOCAB + 1)]
    raw = bytes(len(vocab))
    p = {"dims": 1, "vocab": vocab, "table": base64.b64encode(raw).decode(), "scale": [1.0],
         "sha256": hashlib.sha256(raw).hexdigest()}
    with pytest.raises(ContractError) as e:
        spec_of(F("emb", "static_embedding", p))
    assert e.value.field == "features[0].params.vocab" and str(MAX_STATIC_VOCAB) in str(e.value)
    # the bound itself is accepted, and works on every engine
    p = static_params(vocab[:MAX_STATIC_VOCAB], dims=1, seed=3)
    spec = spec_of(F("emb", "static_embedding", p))
    assert_all_agree(spec, ["t0 t65535 t1", "t65536"])


# ---------------------------------------------------------------------------------------------------
# unfitted


UNFITTED = {"dims": 4, "vocab": None, "table": None, "scale": None, "sha256": None}


def test_unfitted_op_refuses_to_extract_on_every_engine():
    spec = spec_of(F("chars", "char_count", {}), F("emb", "static_embedding", UNFITTED))
    assert spec.needs_fit and spec.output_names[1:] == tuple(f"emb__{d}" for d in range(4))
    for name, extract in engines_of(spec):
        for q in ("hello", None):
            with pytest.raises(ContractError, match="static_embedding feature is not fitted") as e:
                extract(q)
            assert e.value.field == "features[1].params.vocab", name
    with pytest.raises(ContractError, match="not fitted"):
        feature_exprs(spec)
    assert FeatureSpec.from_json(spec.to_json()) == spec


# ---------------------------------------------------------------------------------------------------
# the compiled plan refuses what it cannot take exactly (the Python engine then serves)


@needs_ext
def test_compiled_plan_refuses_bad_static_descriptions():
    from router_runtime import _speedups, text

    good = (9, 2, {b"ab": 0, b"c": 1}, b"\x01\x02\x03\x04", (0.5, -1.0))
    _speedups.FeaturePlan([good], 10, text.as_text)
    bad = [
        (9, 0, {}, b"", (1.0,)), (9, 65, {}, b"", (1.0,) * 65), (9, 2, {b"ab": 0}, b"\x01\x02\x03", (1.0, 1.0)),
        (9, 2, {b"ab": 0}, b"\x01\x02\x03\x04", (1.0, 1.0)), (9, 2, {b"ab": 0, b"c": 2}, b"\x01\x02\x03\x04", (1.0, 1.0)),
        (9, 2, {b"AB": 0, b"c": 1}, b"\x01\x02\x03\x04", (1.0, 1.0)), (9, 2, {b"ab": 0, b"c": 1}, "\x01\x02\x03\x04", (1.0, 1.0)),
        (9, 2, {b"ab": 0, b"c": 1}, b"\x01\x02\x03\x04", (1.0,)), (9, 2, {b"ab": 0, b"c": 1}, b"\x01\x02\x03\x04", (1.0, NAN)),
        (9, 2, {b"ab": 0, b"c": 1}, b"\x01\x02\x03\x04", (1.0, "x")), (9, 2, [b"ab", b"c"], b"\x01\x02\x03\x04", (1.0, 1.0)),
        (9, 2, {b"ab": 0, b"c": 1}, b"\x01\x02\x03\x04"),
    ]
    for d in bad:
        with pytest.raises((TypeError, ValueError)):
            _speedups.FeaturePlan([d], 10, text.as_text)
    # a ratio may not read a static_embedding output
    with pytest.raises(ValueError):
        _speedups.FeaturePlan([(9, 1, {b"a": 0}, b"\x01", (1.0,)), (0,), (7, 0, 1)], 10, text.as_text)


@pytest.mark.slow
def test_parity_on_the_real_data_sets_with_a_full_size_table():
    import json
    from collections import Counter
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip(f"shared data directory not found at {shared}")
    train = [r["question"] for r in json.loads((shared / "llmrouter_dcrouter" / "train.json").read_text())]
    test = [r["question"] for r in json.loads((shared / "llmrouter_dcrouter" / "test.json").read_text())]
    profile = [r["query"] for r in json.loads((shared / "routeprofile" / "routing_test_data.json").read_text())]
    counts = Counter(t for q in train for t in tokens_of(q))
    vocab = sorted(counts, key=lambda t: (-counts[t], t))
    assert len(vocab) == 17_816  # the size the issue 12 study measured: the bench's table size
    spec = with_static(fit_feature_spec(default_feature_spec(), train), static_params(vocab, dims=32, seed=11))
    assert_all_agree(spec, train + test + profile)


@needs_ext
def test_compiled_plans_with_tables_free_their_memory():
    import gc
    import tracemalloc

    from router_runtime import _speedups, text

    spec = spec_of(F("emb", "static_embedding", static_params(sample_vocab(2000), dims=32, seed=12)))
    (d,) = compiled._describe(spec)
    bad = d[:4] + ((1.0,) * 31 + (NAN,),)  # refused after the table was allocated

    def burst(n):
        for _ in range(n):
            plan = _speedups.FeaturePlan([d], 1000, text.as_text)
            plan.extract("the cat " * 50)
            with pytest.raises(ValueError):
                _speedups.FeaturePlan([d, bad], 1000, text.as_text)

    burst(20)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        burst(300)  # each plan holds ~600 KB: a leak would show as hundreds of MB
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 256 * 1024, f"{grown} bytes still allocated after 300 plans"
