"""OutcomeRecord's request_id and retry_of (added after v1's first release): an old line reads and
writes back with exactly its fields, a new one round-trips, bad values are refused naming the field."""

from __future__ import annotations

import json

import pytest

from router_runtime.errors import ContractError
from router_runtime.records import OutcomeRecord, parse_outcome_line

OLD = ('{"schema_version":1,"decision_id":"d1","ts":"2026-01-02T03:04:05Z","artifact_version":null,'
       '"query":"hi","query_sha256":null,"request_kind":"chat","candidates":["a","b"],"model":"a",'
       '"propensity":0.5,"scores":{"a":0.4,"b":0.6},"explored":false,"fallback_from":null,"latency_ms":12.0,'
       '"ttft_ms":3.0,"prompt_tokens":2,"completion_tokens":4,"success":false,"error":"a: crashed",'
       '"quality":null,"quality_source":null,"features":null,"cost":1.0,"context_chars":2,"sticky":false}\n')


def test_an_old_line_is_read_and_written_back_unchanged():
    rec = parse_outcome_line(OLD)
    assert (rec.request_id, rec.retry_of) == (None, None)
    assert json.loads(rec.to_line()) == json.loads(OLD)  # no request_id / retry_of keys written
    assert parse_outcome_line(rec.to_line()).to_line() == rec.to_line()


def test_retry_fields_round_trip():
    rec = parse_outcome_line(OLD)
    fields = {**{k: v for k, v in json.loads(OLD).items() if k != "schema_version"},
              "request_id": "job-17", "retry_of": "d0"}
    again = OutcomeRecord(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    back = parse_outcome_line(again.to_line())
    assert (back.request_id, back.retry_of) == ("job-17", "d0") and back == again and rec != again


@pytest.mark.parametrize("field,value", [("request_id", ""), ("retry_of", "x" * 129), ("request_id", 5)])
def test_bad_retry_fields_are_refused(field, value):
    obj = json.loads(OLD)
    obj[field] = value
    with pytest.raises(ContractError) as e:
        parse_outcome_line(json.dumps(obj))
    assert e.value.field == field
