"""Validation (flows.validate): the fast ingest path and the Python validator agree line by line on a
mixed file of valid, invalid and randomly damaged lines, and write the same curated values."""

from __future__ import annotations

import json
import random

import polars as pl
import pytest

from flows.ingest import ingest_logs, read_curated
from flows.validate import validate_lines
from router_runtime import OutcomeRecord, parse_outcome_line
from router_runtime.records import RESPONSE_MAX_CHARS


def rec(i: int, **over) -> dict:
    d = OutcomeRecord(decision_id=f"d{i}", ts=f"2026-03-0{1 + i % 3}T12:00:{i % 60:02d}.{i:03d}Z",
                      query=f"query {i} é 😀", candidates=("m1", "m2"), model="m1", propensity=0.5, success=True,
                      quality=1.0, quality_source="check", latency_ms=10.0 + i, cost=0.001).to_dict()
    d.update(over)
    return d


def dumps(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


# Valid lines the fast path must read exactly as Python does, and lines only Python may judge.
VALID = [
    dumps(rec(1, scores={"m1": 0.25, "m2": None, "m3": 1})), dumps(rec(2, features=[1, 2.5, -3e-7])),
    dumps(rec(3, query=None, query_sha256="a" * 64)), dumps(rec(4, ticket="T-1", shard=3, flag=True)),
    dumps(rec(5, request_kind=None, explored=None, scores=None)), dumps(rec(6, quality=None, quality_source=None)),
    dumps(rec(7, ts="2026-03-01T12:00:00+00:00")), dumps(rec(8, query="line\nbreak \"quoted\" \\ tab\t")),
    dumps(rec(9, prompt_tokens=0, completion_tokens=12, propensity=1)), json.dumps(rec(10)).encode(),  # \u escapes
    dumps(rec(11, query="NaN is not a number")),                   # valid; the fast path leaves it to Python
    dumps(rec(12, note=None)),                                     # explicit null in an unknown field
    dumps(rec(13, meta={"a": [1, 2]}, ratio=0.5, when="2026-01-01")),  # unknown fields Python keeps exactly
    dumps(rec(14, ts="2026-03-01T12:00:00.1234567Z")),              # 7 fraction digits: Python truncates
    dumps(rec(15, query="\u2003x\u2003")), dumps(rec(16, extra={"ignored": 1})),
    dumps(rec(17, candidates=["m1", "m2", "m9"])), dumps(rec(18, prompt_tokens=10**30)),
    dumps(rec(19, context_chars=4096)), dumps(rec(20, context_chars=None)), dumps(rec(21, sticky=True)),
    dumps(rec(22, sticky=None)),
    # the fields added by issue 10
    dumps(rec(30, response="an answer é 😀\n", response_truncated=True)), dumps(rec(31, response="", shadow_of="d1")),
    dumps(rec(32, response=None, response_truncated=False, shadow_of=None, label=None)),
    dumps(rec(33, quality=0.5, quality_source="judge", label={"judge": "m2", "score": 3, "scale": [1, 5]})),
    dumps(rec(34, response="🎉" * RESPONSE_MAX_CHARS, response_truncated=True)),
    dumps(rec(35, response="x" * (RESPONSE_MAX_CHARS + 1))),  # a writer without the cap: still an outcome
]
INVALID = [
    b'{"schema_version": 1, "decision_id": ', b"[1, 2, 3]", b"not json", b"\xff\xfe",
    dumps(rec(100, propensity="high")), dumps(rec(101, decision_id=5)), dumps(rec(102, candidates=["m1", 2])),
    dumps(rec(103)).replace(b'"latency_ms": 113.0', b'"latency_ms": NaN'), dumps(rec(104, latency_ms=-5.0)),
    dumps(rec(105, propensity=0.0)), dumps(rec(106, propensity=1.5)), dumps(rec(107, model="m3")),
    dumps(rec(108, schema_version=2)), dumps(rec(109, schema_version=True)), dumps(rec(110, query="  \x1c ")),
    dumps(rec(111, ts="yesterday")), dumps(rec(112, ts="2026-03-01T12:00:60Z")),
    dumps(rec(113, ts="2026-03-01T24:00:00Z")),
    dumps(rec(114, ts="2026-03-01T12:00:00")), dumps(rec(115, decision_id="x" * 129)), dumps(rec(116, decision_id="")),
    dumps(rec(117, scores={"m1": "high"})), dumps(rec(118, scores=[0.5])), dumps(rec(119, features=[1, None])),
    dumps(rec(120, quality=1.5)), dumps(rec(121, quality_source="oracle")), dumps(rec(122, quality_source=None)),
    dumps(rec(123, prompt_tokens=1.0)), dumps(rec(124, explored="yes")), dumps(rec(125, candidates=[])),
    dumps(rec(126, query=None)), dumps(rec(127, query_sha256="ABC")), dumps(rec(128, request_kind="")),
    dumps(rec(129)).replace(b'"model": "m1"', b'"model": "m1", "model": "m2"'),      # duplicate key
    dumps(rec(130)).replace(b'"query": ', b'"query": "\\ud800", "q2": '),          # lone surrogate
    b"\xef\xbb\xbf" + dumps(rec(131)), dumps(rec(132)) + b" " + dumps(rec(133)),  # BOM; two objects on a line
    dumps(rec(134, meta={"x": float("nan")})),                                   # NaN inside an unknown field
    dumps(rec(135)).replace(b'"cost": 0.001', b'"cost": 1e400'),                # overflows to inf
    dumps(rec(136, success=None)), dumps(rec(137, model="")), dumps(rec(138, candidates="m1")),
    dumps(rec(139, context_chars=-1)), dumps(rec(140, context_chars=2.5)), dumps(rec(141, sticky="yes")),
    dumps(rec(151, response_truncated=True)),
    dumps(rec(152, shadow_of="d152")), dumps(rec(153, shadow_of="")), dumps(rec(154, response=5)),
    dumps(rec(155, label={"a": 1}, quality=None, quality_source=None)), dumps(rec(156, label="judge")),
    dumps(rec(157, response="x", response_truncated="no")), dumps(rec(158, shadow_of="x" * 129)),
    dumps(rec(159, response="PLACEHOLDER")).replace(b"PLACEHOLDER", b"\xff\xfe not UTF-8"),
]


def _mixed_lines(seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    good = [dumps(rec(i, shard=i % 4)) for i in range(200, 400)]
    lines = good + VALID + INVALID
    # Random byte-level damage to valid lines: whatever it yields, both paths must judge it alike.
    for _ in range(150):
        b = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(b))
            b[pos:pos + 1] = rng.choice([b"", b'"', b"1", b"}", b",", b"\\", b"\x00", b"n",
                                         bytes([rng.randrange(256)])])
        lines.append(bytes(b))
    rng.shuffle(lines)
    return lines


@pytest.mark.parametrize("known", [None, frozenset({"m1", "m2", "m9"})])
def test_fast_path_and_python_validator_agree_on_a_mixed_file(known, monkeypatch):
    import flows.validate

    # Bisect down to single lines: every line pyarrow can read is judged by the fast path alone.
    monkeypatch.setattr(flows.validate, "PYTHON_GROUP", 1)
    lines = _mixed_lines()
    numbers = list(range(1, len(lines) + 1))
    fast, fq, n_fast = validate_lines(lines, numbers, "f", known_models=known, fast=True)
    slow, sq, _ = validate_lines(lines, numbers, "f", known_models=known, fast=False)
    assert n_fast > 200  # the fast path did the bulk of the work: the agreement below is not vacuous
    assert [(q["line"], q["reason"]) for q in fq] == [(q["line"], q["reason"]) for q in sq]
    assert fast.equals(slow), "both paths must write the same curated values"
    assert len(fast) + len(fq) == len(lines)
    by_line = dict(zip(numbers, lines))
    for q in fq:  # Python's verdict is the reference: every refused line really is refused ...
        if "curated store's int64" in q["reason"]:  # ... except a valid one the store cannot hold (kept)
            continue
        with pytest.raises(ValueError):
            parse_outcome_line(by_line[q["line"]], known_models=known)


def test_ingest_fast_and_python_paths_write_the_same_partitions(tmp_path, monkeypatch):
    import flows.ingest

    raw = tmp_path / "raw"
    raw.mkdir()
    lines = _mixed_lines(seed=1)
    half = len(lines) // 2
    (raw / "a.jsonl").write_bytes(b"\n".join(lines[:half]) + b"\n")
    dup = dumps(rec(205, quality=0.0))  # the decision_id of a good line: the first one wins, in any unit
    (raw / "b.jsonl").write_bytes(b"\n".join(lines[half:] + [dup]) + b"\n\n")
    # Tiny units and blocks: the cross-unit duplicate check and the line numbering are exercised too.
    with monkeypatch.context() as m:
        m.setattr(flows.ingest, "BLOCK_BYTES", 3000)
        r1 = ingest_logs(raw, tmp_path / "c1", settle_seconds=0, unit_bytes=20_000, max_batch_rows=50)
    r2 = ingest_logs(raw, tmp_path / "c2", settle_seconds=0, fast=False)
    keys = ("lines", "ingested", "feedback", "labels", "records", "shadow", "quarantined", "duplicates", "reasons")
    assert {k: getattr(r1, k) for k in keys} == {k: getattr(r2, k) for k in keys}
    assert r1.lines == r1.ingested + r1.feedback + r1.quarantined + r1.duplicates and r1.fast_path_lines > 0
    assert r1.labels == {"judge": 1} and r1.shadow == 1  # the judge's label line (33) and the shadow record (31)
    assert r1.duplicates >= 1 and len(r1.partitions) > 3
    c1, c2 = read_curated(tmp_path / "c1"), read_curated(tmp_path / "c2")
    assert c1.drop("source_file").equals(c2.drop("source_file"))
    q1 = [json.loads(x) for x in open(r1.quarantine_file)]
    q2 = [json.loads(x) for x in open(r2.quarantine_file)]
    assert [(q["file"], q["line"], q["reason"]) for q in q1] == [(q["file"], q["line"], q["reason"]) for q in q2]


def test_curated_row_is_what_ingestion_writes(tmp_path):
    from flows.curated import CURATED_SCHEMA, curated_row

    lines = [dumps(rec(1, scores={"m2": 3e-05, "m1": 0.25, "m3": None})), dumps(rec(2, ticket="T-1")), dumps(rec(3)),
             dumps(rec(4, response="the answer", response_truncated=True, shadow_of="d3", quality=None,
                       quality_source=None))]
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    ingest_logs(tmp_path / "raw", tmp_path / "cur", settle_seconds=0)
    written = read_curated(tmp_path / "cur").drop("source_file")
    rows = pl.DataFrame([curated_row(parse_outcome_line(x), "") for x in lines], schema=CURATED_SCHEMA)
    assert rows.drop("source_file").sort("decision_id").equals(written.sort("decision_id"))


def test_partitions_written_before_the_new_columns_still_read(tmp_path):
    """A store curated before response/shadow_of/label existed keeps working beside new partitions."""
    from flows.curated import CURATED_SCHEMA, curated_row

    cur = tmp_path / "cur"
    old = pl.DataFrame([curated_row(parse_outcome_line(dumps(rec(1))), "old.jsonl")], schema=CURATED_SCHEMA)
    (cur / "day=2026-03-02").mkdir(parents=True)
    old.drop("response", "response_truncated", "shadow_of", "label").write_parquet(cur / "day=2026-03-02" / "old.parquet")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl").write_bytes(dumps(rec(5, response="hi", shadow_of="d1")) + b"\n")
    assert ingest_logs(tmp_path / "raw", cur, settle_seconds=0).ingested == 1
    got = {r["decision_id"]: (r["response"], r["shadow_of"]) for r in read_curated(cur).iter_rows(named=True)}
    assert got == {"d1": (None, None), "d5": ("hi", "d1")}
