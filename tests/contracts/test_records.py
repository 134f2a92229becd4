"""OutcomeRecord v1 (router_runtime.records): round trips, defaults, and every refusal.

Each refusal checks the exact exception class and that the message names the field and the problem.
"""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_runtime.errors import ContractError, SchemaVersionError
from router_runtime.records import (
    MAX_LINE_BYTES,
    OUTCOME_SCHEMA_VERSION,
    QUALITY_SOURCES,
    RESPONSE_MAX_CHARS,
    OutcomeRecord,
    cap_response,
    parse_outcome,
    parse_outcome_line,
)

KNOWN_FIELDS = {
    "schema_version", "decision_id", "ts", "artifact_version", "query", "query_sha256", "request_kind",
    "candidates", "model", "propensity", "scores", "explored", "fallback_from", "latency_ms", "ttft_ms",
    "prompt_tokens", "completion_tokens", "success", "error", "quality", "quality_source", "features", "cost",
    "context_chars", "sticky",
}
# Added after v1's first release: written only when set, so a record without them is its old line.
LATE_FIELDS = {"response", "response_truncated", "shadow_of", "label"}
FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


def base(**over) -> dict:
    d = {
        "schema_version": 1,
        "decision_id": "d-1",
        "ts": "2026-01-02T03:04:05Z",
        "query": "What is 2+2?",
        "candidates": ["a", "b"],
        "model": "a",
        "propensity": 0.5,
        "success": True,
    }
    d.update(over)
    return d


def line_of(d: dict) -> str:
    return json.dumps(d, ensure_ascii=False) + "\n"


def refused(thing, cls, field, *words, known_models=None):
    """Parse ``thing`` (dict -> parse_outcome, str/bytes -> parse_outcome_line); expect exactly ``cls``."""
    with pytest.raises(ContractError) as ei:
        if isinstance(thing, dict):
            parse_outcome(thing, known_models=known_models)
        else:
            parse_outcome_line(thing, known_models=known_models)
    exc = ei.value
    assert type(exc) is cls, f"expected {cls.__name__}, got {type(exc).__name__}: {exc}"
    assert exc.field == field, str(exc)
    msg = str(exc)
    assert field in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    return exc


def without(key: str) -> dict:
    d = base()
    del d[key]
    return d


# -- round trips -----------------------------------------------------------------------------------

def full_record(**over) -> OutcomeRecord:
    kw = dict(
        decision_id="dec-42", ts="2026-03-04T05:06:07.123456+00:00", artifact_version="20260101T000000Z-deadbeef",
        query="Résumé: 日本語 and emoji 🎉 \"quoted\"\nsecond line\ttab \u2028 sep", request_kind="code",
        candidates=("small", "big", "mid"), model="big", propensity=0.25,
        scores={"small": 0.1, "big": 0.9, "mid": None}, explored=True, fallback_from="small",
        latency_ms=123.5, ttft_ms=12.0, prompt_tokens=10, completion_tokens=0, success=False,
        error="timeout", quality=0.0, quality_source="judge", features=(1.0, 0.0, 2.5), cost=0.003,
        context_chars=2048, sticky=True,
    )
    kw.update(over)
    return OutcomeRecord(**kw)


def test_full_record_round_trips_exactly():
    rec = full_record()
    line = rec.to_line()
    assert line.endswith("\n") and line.count("\n") == 1  # one JSONL line, newline in the query escaped
    assert "日本語" in line and "🎉" in line  # non-ASCII stays readable
    back = parse_outcome_line(line)
    assert back == rec
    assert back.to_line() == line
    assert back.query == rec.query
    assert isinstance(back.candidates, tuple) and isinstance(back.features, tuple)


def test_round_trip_from_bytes_and_without_newline():
    rec = full_record()
    assert parse_outcome_line(rec.to_line().encode("utf-8")) == rec
    assert parse_outcome_line(rec.to_line().rstrip("\n")) == rec


def test_fields_are_written_in_documented_order():
    d = json.loads(full_record().to_line())
    assert list(d)[:2] == ["schema_version", "decision_id"]
    assert set(d) == KNOWN_FIELDS


def test_record_built_with_lists_equals_its_round_trip():
    # A record built in code with lists (the natural thing to pass) must equal what parsing gives back.
    rec = OutcomeRecord(decision_id="x", ts="2026-01-01T00:00:00Z", query="q", candidates=["a", "b"],
                        model="b", propensity=1, success=True, features=[1, 2], latency_ms=3)
    back = parse_outcome_line(rec.to_line())
    assert back == rec
    assert back.to_line() == rec.to_line()


def test_unknown_fields_are_kept_in_extra_and_written_back():
    d = base(future_field={"nested": [1, 2, "x"]}, query_id="q-7", zzz=None)
    rec = parse_outcome_line(line_of(d))
    assert rec.extra == {"future_field": {"nested": [1, 2, "x"]}, "query_id": "q-7", "zzz": None}
    out = json.loads(rec.to_line())
    assert out["future_field"] == {"nested": [1, 2, "x"]} and out["query_id"] == "q-7" and "zzz" in out
    again = parse_outcome_line(rec.to_line())
    assert again.extra == rec.extra and again == rec


def test_extra_passed_in_code_is_written_and_cannot_shadow_known_fields():
    rec = OutcomeRecord(decision_id="x", ts="2026-01-01T00:00:00Z", query="q", candidates=("a",), model="a",
                        propensity=1.0, success=True, extra={"query_id": "7", "model": "evil"})
    out = json.loads(rec.to_line())
    assert out["query_id"] == "7" and out["model"] == "a"


def test_defaults_for_optional_fields():
    rec = parse_outcome(base())
    assert rec.schema_version == OUTCOME_SCHEMA_VERSION == 1
    assert rec.artifact_version is None and rec.query_sha256 is None
    assert rec.request_kind == "chat"
    assert rec.scores == {} and rec.explored is False and rec.fallback_from is None
    assert rec.latency_ms is None and rec.ttft_ms is None
    assert rec.prompt_tokens is None and rec.completion_tokens is None
    assert rec.error is None and rec.quality is None and rec.quality_source is None
    assert rec.features is None and rec.cost is None and rec.context_chars is None and rec.extra == {}
    # explicit nulls mean the same as absent
    nulls = base(request_kind=None, scores=None, explored=None, latency_ms=None, quality=None)
    assert parse_outcome(nulls) == rec


def test_query_sha256_alone_is_enough():
    sha = hashlib.sha256("secret".encode()).hexdigest()
    d = base(query_sha256=sha)
    del d["query"]
    rec = parse_outcome(d)
    assert rec.query is None and rec.query_sha256 == sha


def test_propensity_one_and_edges_are_accepted():
    assert parse_outcome(base(propensity=1.0)).propensity == 1.0
    assert parse_outcome(base(propensity=1)).propensity == 1.0
    assert parse_outcome(base(propensity=5e-324)).propensity == 5e-324
    assert parse_outcome(base(quality=0, quality_source="check")).quality == 0.0
    assert parse_outcome(base(quality=1.0, quality_source="user")).quality == 1.0
    assert parse_outcome(base(latency_ms=0, ttft_ms=0.0, cost=0, prompt_tokens=0)).latency_ms == 0.0
    for ts in ("2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:05.5Z"):
        assert parse_outcome(base(ts=ts)).ts == ts


def test_known_models_accepts_known():
    assert parse_outcome(base(), known_models={"a", "b"}).model == "a"


# -- refusals: required fields ----------------------------------------------------------------------

@pytest.mark.parametrize("key", ["decision_id", "ts", "candidates", "model", "propensity", "success"])
def test_missing_required_field(key):
    refused(without(key), ContractError, key, "missing")
    refused(line_of(without(key)), ContractError, key, "missing")


@pytest.mark.parametrize("key", ["decision_id", "ts", "model", "propensity", "success"])
def test_null_required_field(key):
    refused(base(**{key: None}), ContractError, key, "null")


def test_missing_schema_version_is_a_schema_version_error():
    refused(without("schema_version"), SchemaVersionError, "schema_version", "missing")


@pytest.mark.parametrize("v", [2, 0, "1", 1.0, 1.5, True, None, [1]])
def test_unknown_schema_version(v):
    refused(base(schema_version=v), SchemaVersionError, "schema_version", "unknown version", repr(v))
    refused(line_of(base(schema_version=v)), SchemaVersionError, "schema_version", "unknown version")


def test_code_built_record_with_other_schema_version_is_refused():
    with pytest.raises(SchemaVersionError):
        full_record(schema_version=2)


# -- refusals: types --------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value,words", [
    ("propensity", "0.5", ("must be a number", "str")),
    ("propensity", True, ("must be a number", "bool")),
    ("latency_ms", "12", ("must be a number",)),
    ("cost", False, ("must be a number", "bool")),
    ("quality", [0.5], ("must be a number",)),
    ("success", 1, ("true or false", "1")),
    ("success", "true", ("true or false",)),
    ("explored", 0, ("true or false",)),
    ("decision_id", 7, ("must be a string", "int")),
    ("ts", 1700000000, ("must be a string",)),
    ("model", ["a"], ("must be a string",)),
    ("query", 5, ("must be a string",)),
    ("request_kind", 3, ("must be a string",)),
    ("error", {}, ("must be a string",)),
    ("prompt_tokens", 1.0, ("integer",)),
    ("prompt_tokens", True, ("integer",)),
    ("completion_tokens", "3", ("integer",)),
    ("scores", [0.5], ("must be an object",)),
    ("features", "1,2", ("list of finite numbers",)),
    ("features", [1, True], ("list of finite numbers",)),
])
def test_wrong_types(key, value, words):
    refused(base(**{key: value}), ContractError, key, *words)


@pytest.mark.parametrize("cands", [["a", 1], "ab", [], ["a", ""], {"a": 1}, None])
def test_bad_candidates(cands):
    refused(base(candidates=cands), ContractError, "candidates", "non-empty list")


def test_bad_score_value_names_the_model():
    refused(base(scores={"a": "high"}), ContractError, "scores.a", "finite number")
    refused(base(scores={"b": True}), ContractError, "scores.b", "finite number")


# -- refusals: non-finite numbers --------------------------------------------------------------------

@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("key", ["propensity", "latency_ms", "cost", "quality"])
def test_non_finite_number_in_json_text(token, key):
    d = base(quality_source="judge", **{key: 0.5})
    text = line_of(d).replace(f'"{key}": 0.5', f'"{key}": {token}')
    assert token in text
    refused(text, ContractError, key, "non-finite", token)


@pytest.mark.parametrize("where,field", [
    ('"scores": {"a": NaN}', "scores.a"),
    ('"features": [1.0, Infinity]', "features[1]"),
    ('"future": {"x": [-Infinity]}', "future.x[0]"),
])
def test_non_finite_number_inside_containers_and_unknown_fields(where, field):
    text = line_of(base()).rstrip("\n")[:-1] + ", " + where + "}"
    refused(text, ContractError, field, "non-finite")


def test_number_overflowing_to_infinity_is_refused_even_in_unknown_fields():
    # 1e400 is valid JSON syntax but parses to inf: it could never be written back.
    refused(line_of(base()).replace('"propensity": 0.5', '"propensity": 1e400'),
            ContractError, "propensity", "non-finite")
    text = line_of(base()).rstrip("\n")[:-1] + ', "big": 1e400}'
    refused(text, ContractError, "big", "non-finite")


@pytest.mark.parametrize("v", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_number_in_code_built_record(v):
    with pytest.raises(ContractError) as ei:
        full_record(latency_ms=v)
    assert type(ei.value) is ContractError and ei.value.field == "latency_ms"


# -- refusals: ranges ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["latency_ms", "ttft_ms", "cost"])
def test_negative_durations_and_cost(key):
    refused(base(**{key: -0.001}), ContractError, key, ">= 0", "-0.001")


@pytest.mark.parametrize("key", ["prompt_tokens", "completion_tokens", "context_chars"])
def test_negative_tokens(key):
    refused(base(**{key: -1}), ContractError, key, ">= 0", "-1")


@pytest.mark.parametrize("p", [0, 0.0, 1.5, -0.1, 1.0000000000000002])
def test_propensity_out_of_range(p):
    refused(base(propensity=p), ContractError, "propensity", "(0, 1]", repr(p))


@pytest.mark.parametrize("q", [-0.01, 1.01, 2])
def test_quality_out_of_range(q):
    refused(base(quality=q, quality_source="judge"), ContractError, "quality", "[0, 1]")


def test_quality_without_source():
    refused(base(quality=0.5), ContractError, "quality_source", "required when quality is set")


@pytest.mark.parametrize("src", ["human", "JUDGE", ""])
def test_unknown_quality_source(src):
    refused(base(quality=0.5, quality_source=src), ContractError, "quality_source", "must be one of", repr(src))


def test_quality_sources_are_the_documented_four():
    assert QUALITY_SOURCES == {"judge", "user", "check", "benchmark"}
    for s in QUALITY_SOURCES:
        assert parse_outcome(base(quality=0.5, quality_source=s)).quality_source == s


@pytest.mark.parametrize("q", ["", " ", "\n\t  "])
def test_empty_or_whitespace_query(q):
    refused(base(query=q), ContractError, "query", "empty")


def test_neither_query_nor_sha():
    d = without("query")
    refused(d, ContractError, "query", "query_sha256", "required")
    refused(base(query=None), ContractError, "query", "required")


@pytest.mark.parametrize("sha", ["abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, ""])
def test_bad_sha256(sha):
    refused(base(query_sha256=sha), ContractError, "query_sha256", "64 lower-case hex")


def test_empty_decision_id_and_too_long():
    refused(base(decision_id=""), ContractError, "decision_id", "empty")
    refused(base(decision_id="x" * 129), ContractError, "decision_id", "longer than 128")
    assert parse_outcome(base(decision_id="x" * 128)).decision_id == "x" * 128


def test_empty_request_kind():
    refused(base(request_kind=""), ContractError, "request_kind", "empty")


@pytest.mark.parametrize("ts,words", [
    ("2026-01-02T03:04:05", ("UTC",)),                       # no timezone
    ("2026-01-02T03:04:05+01:00", ("UTC", "+01:00")),        # non-UTC offset
    ("2026-01-02T03:04:05-05:00", ("UTC",)),
    ("yesterday", ("RFC 3339",)),                            # garbage
    ("2026-13-02T03:04:05Z", ("RFC 3339",)),                 # impossible month
    ("2026-01-02", ("no time part",)),                       # a date is not a timestamp
    ("20260102T030405Z", ("RFC 3339",)),                     # ISO 8601 basic format
    ("2026-W01-1T00:00:00Z", ("RFC 3339",)),                 # ISO week date
    ("2026-01-02T03Z", ("RFC 3339",)),                       # no minutes/seconds
    ("2026-01-02T03:04Z", ("RFC 3339",)),                    # no seconds
    ("2026-01-02T03:04:05,5Z", ("RFC 3339",)),               # comma fraction
    ("2026-01-02T24:00:00Z", ("RFC 3339",)),                 # hour out of range
    ("", ("empty",)),
])
def test_bad_timestamps(ts, words):
    refused(base(ts=ts), ContractError, "ts", *words)


def test_model_not_among_candidates():
    refused(base(model="c"), ContractError, "model", "not among the candidates", "'c'")


def test_unknown_model_with_known_models():
    refused(base(), ContractError, "model", "unknown model", "'a'", known_models={"b", "z"})
    refused(line_of(base()), ContractError, "model", "unknown model", known_models=frozenset())


# -- refusals: the raw line -------------------------------------------------------------------------

def test_invalid_utf8_bytes():
    raw = line_of(base()).encode("utf-8").replace(b"What", b"Wh\xff\xfe")
    refused(raw, ContractError, "line", "invalid UTF-8", "byte")


def test_lone_surrogate_in_str_line_is_invalid_utf8():
    refused(line_of(base(query="x")).replace('"x"', '"\ud800"'), ContractError, "line", "invalid UTF-8")


def test_escaped_lone_surrogate_is_refused_naming_the_field():
    # Valid ASCII JSON, but the decoded string cannot be written back as UTF-8 (the logger would crash).
    text = line_of(base()).replace('"What is 2+2?"', '"bad \\ud800 text"')
    refused(text, ContractError, "query", "surrogate")


def test_lone_surrogate_in_code_built_record_is_refused():
    with pytest.raises(ContractError) as ei:
        full_record(error="oops \udcff")
    assert ei.value.field == "error" and "surrogate" in str(ei.value)


def test_oversized_line():
    pad = "x" * MAX_LINE_BYTES
    refused(line_of(base(query=pad)), ContractError, "line", "oversized", str(MAX_LINE_BYTES))
    refused(line_of(base(query=pad)).encode(), ContractError, "line", "oversized")


def test_line_just_under_the_limit_is_accepted():
    head = line_of(base(query="")).encode()
    q = "y" * (MAX_LINE_BYTES - len(head))
    line = line_of(base(query=q)).encode()
    assert len(line) == MAX_LINE_BYTES
    assert parse_outcome_line(line).query == q


def test_torn_line():
    line = full_record().to_line()
    for cut in (1, len(line) // 3, len(line) // 2, len(line) - 3):
        refused(line[:cut], ContractError, "line", "torn or truncated")
    refused(line.encode()[: len(line) // 2], ContractError, "line")


def test_invalid_json_that_ends_with_a_brace():
    refused('{"a": 1,, }', ContractError, "line", "invalid JSON")


@pytest.mark.parametrize("text,kind", [("[1, 2]", "list"), ('"s"', "str"), ("3", "int"), ("null", "NoneType")])
def test_non_object_json(text, kind):
    refused(text, ContractError, "line", "must be a JSON object", kind)


@pytest.mark.parametrize("text", ["", "\n", "   \r\n", b""])
def test_empty_line(text):
    refused(text, ContractError, "line", "empty line")


def test_contract_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_outcome(base(propensity=2))


# -- property: valid random records round-trip exactly ----------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
nonneg = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
name = st.text(min_size=1, max_size=12)
opt_text = st.none() | st.text(max_size=20)
json_scalar = st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | finite | st.text(max_size=8)
json_value = st.recursive(json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                          max_size=3), max_leaves=8)


@st.composite
def records(draw):
    cands = draw(st.lists(name, min_size=1, max_size=5))
    model = draw(st.sampled_from(cands))
    dt = draw(st.datetimes(timezones=st.just(__import__("datetime").timezone.utc)))
    ts = dt.isoformat()
    if draw(st.booleans()):
        ts = ts.replace("+00:00", "Z")
    query = draw(st.none() | st.text(min_size=1, max_size=60).filter(lambda s: s.strip()))
    sha = draw(st.none() | st.text("0123456789abcdef", min_size=64, max_size=64))
    if query is None and sha is None:
        sha = "0" * 64
    quality = draw(st.none() | st.floats(min_value=0.0, max_value=1.0))
    source = draw(st.sampled_from(sorted(QUALITY_SOURCES)) if quality is not None
                  else st.none() | st.sampled_from(sorted(QUALITY_SOURCES)))
    extra = draw(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in KNOWN_FIELDS | LATE_FIELDS | {"extra"}),
                                 json_value, max_size=3))
    response = draw(st.none() | st.text(max_size=40))
    decision_id = draw(st.text(min_size=1, max_size=128))
    return OutcomeRecord(
        decision_id=decision_id,
        ts=ts,
        candidates=tuple(cands),
        model=model,
        propensity=draw(st.floats(min_value=0.0, max_value=1.0, exclude_min=True)),
        success=draw(st.booleans()),
        artifact_version=draw(opt_text),
        query=query,
        query_sha256=sha,
        request_kind=draw(st.text(min_size=1, max_size=10)),
        scores=draw(st.dictionaries(name, st.none() | finite, max_size=4)),
        explored=draw(st.booleans()),
        fallback_from=draw(opt_text),
        latency_ms=draw(st.none() | nonneg),
        ttft_ms=draw(st.none() | nonneg),
        prompt_tokens=draw(st.none() | st.integers(0, 2 ** 64)),
        completion_tokens=draw(st.none() | st.integers(0, 2 ** 64)),
        error=draw(opt_text),
        quality=quality,
        quality_source=source,
        features=draw(st.none() | st.lists(finite, max_size=6).map(tuple)),
        cost=draw(st.none() | nonneg),
        context_chars=draw(st.none() | st.integers(0, 2 ** 40)),
        sticky=draw(st.booleans()),
        response=response,
        response_truncated=response is not None and draw(st.booleans()),
        shadow_of=draw(st.none() | st.text(min_size=1, max_size=128).filter(lambda s: s != decision_id)),
        label=draw(st.none() | st.dictionaries(st.text(max_size=5), json_value, max_size=3)) if quality is not None
        else None,
        extra=extra,
    )


@settings(max_examples=300, deadline=None)
@given(records())
def test_property_valid_records_round_trip_exactly(rec):
    line = rec.to_line()
    assert line.count("\n") == 1 and line.endswith("\n")
    raw = line.encode("utf-8")
    back = parse_outcome_line(raw)
    assert back == rec
    assert back.extra == rec.extra
    assert back.to_line() == line
    for f in ("latency_ms", "ttft_ms", "cost", "quality", "propensity"):
        a, b = getattr(rec, f), getattr(back, f)
        assert a is None and b is None or math.copysign(1.0, a) == math.copysign(1.0, b)


def test_deeply_nested_line_is_a_contract_error_not_a_crash():
    # json.loads raises RecursionError on deep nesting; a reader that quarantines ContractError must
    # not be killed by one garbage line.
    refused("[" * 100_000, ContractError, "line", "nested too deeply")
    deep = line_of(base()).rstrip("\n")[:-1] + ', "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    refused(deep, ContractError, "line", "nested too deeply")


def test_an_integer_beyond_float_range_is_a_contract_error():
    import json as _json

    from router_runtime import ContractError, OutcomeRecord, parse_outcome_line

    good = OutcomeRecord(decision_id="x", ts="2026-01-01T00:00:00Z", query="q", candidates=("m",), model="m",
                         propensity=1.0, success=True).to_dict()
    line = _json.dumps(good).replace('"latency_ms": null', '"latency_ms": 1' + "0" * 400)
    with pytest.raises(ContractError, match="latency_ms"):
        parse_outcome_line(line)


def test_context_chars_is_added_by_the_evolution_rules():
    # A line written before the field: valid, the field defaults to null (query was the whole text then).
    old = parse_outcome_line(line_of(base()))
    assert old.context_chars is None and "context_chars" not in old.extra
    new = parse_outcome_line(line_of(base(context_chars=5000)))
    assert new.context_chars == 5000 and json.loads(new.to_line())["context_chars"] == 5000
    # A reader from before the field keeps it as an unknown field: the same line, written back whole.
    assert parse_outcome_line(new.to_line()) == new
    refused(base(context_chars=1.5), ContractError, "context_chars", "integer")


# -- the fields added after the first release (issue 10): response, response_truncated, shadow_of, label --

def test_lines_written_before_the_new_fields_still_parse_and_write_back_unchanged():
    # Committed as the first release wrote them (an answer, its user feedback, a hash-only check failure).
    lines = (FIXTURES / "outcome_v1_first_release.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) == 3
    always_written_since = {"context_chars": None, "sticky": False}  # fields written even at their default
    for line in lines:
        rec = parse_outcome_line(line)
        assert (rec.response, rec.response_truncated, rec.shadow_of, rec.label) == (None, False, None, None)
        assert rec.extra == {}
        assert json.loads(rec.to_line()) == {**json.loads(line), **always_written_since}
        assert parse_outcome_line(rec.to_line()) == rec


def test_new_fields_round_trip_and_are_written_only_when_set():
    rec = full_record(response="4, of course.\n日本語", response_truncated=True, shadow_of="dec-41",
                      label={"judge": "smollm2", "rubric_version": "r1", "score": 4, "scale": [1, 5]})
    line = rec.to_line()
    back = parse_outcome_line(line)
    assert back == rec and back.to_line() == line
    assert back.label == {"judge": "smollm2", "rubric_version": "r1", "score": 4, "scale": [1, 5]}
    assert set(json.loads(line)) == KNOWN_FIELDS | LATE_FIELDS
    assert set(json.loads(full_record().to_line())) == KNOWN_FIELDS
    # an empty answer is an answer (the "empty" check signal), not an absent one
    assert parse_outcome_line(full_record(response="").to_line()).response == ""


def test_the_cap_is_the_writers_a_longer_response_from_another_writer_is_still_an_outcome():
    longer = "é" * (RESPONSE_MAX_CHARS * 2)
    assert parse_outcome(base(response=longer)).response == longer
    refused(line_of(base(response="x" * MAX_LINE_BYTES)), ContractError, "line", "oversized")


def test_cap_response_cuts_in_code_points_and_repairs_lone_surrogates():
    assert cap_response(None) == (None, False)
    assert cap_response("short") == ("short", False)
    text, cut = cap_response("🎉" * (RESPONSE_MAX_CHARS + 5))
    assert cut and text == "🎉" * RESPONSE_MAX_CHARS
    broken = "ok " + b"\xff\xfe bad".decode("utf-8", errors="surrogateescape")  # what a broken model can give
    fixed, cut = cap_response(broken)
    assert not cut and fixed.startswith("ok ") and "\ufffd" in fixed
    assert parse_outcome(base(response=fixed)).response == fixed  # writable: the record is not lost
    with pytest.raises(ContractError, match="response"):
        cap_response(b"bytes")


def test_response_truncated_without_response_is_refused():
    refused(base(response_truncated=True), ContractError, "response_truncated", "without a response")
    refused(base(response=5), ContractError, "response", "string")
    refused(base(response="x", response_truncated="yes"), ContractError, "response_truncated")


def test_shadow_of_must_name_another_decision():
    assert parse_outcome(base(shadow_of="orig-1")).shadow_of == "orig-1"
    refused(base(shadow_of="d-1"), ContractError, "shadow_of", "not its own")
    refused(base(shadow_of=""), ContractError, "shadow_of", "not empty")
    refused(base(shadow_of="x" * 129), ContractError, "shadow_of", "longer than 128")


def test_label_is_an_object_with_a_quality():
    ok = parse_outcome(base(quality=0.75, quality_source="judge", label={"judge": "m", "raw": "4"}))
    assert ok.label == {"judge": "m", "raw": "4"}
    refused(base(label={"judge": "m"}), ContractError, "label", "without a quality")
    refused(base(quality=0.5, quality_source="judge", label=["m"]), ContractError, "label", "object")
    refused(line_of(base(quality=0.5, quality_source="judge", label={"x": float("nan")})), ContractError,
            "label.x", "non-finite")
