"""Ingestion: every malformed line quarantined with its reason and its exact bytes, nothing lost,
duplicates dropped, incremental and idempotent, torn last lines handled, partitions by day."""

from __future__ import annotations

import base64
import json
import os
import time

import polars as pl
import pytest

from flows.ingest import ingest_logs, read_curated
from router_runtime import OutcomeRecord


def rec(i: int, **over) -> dict:
    d = OutcomeRecord(decision_id=f"d{i}", ts=f"2026-03-0{1 + i % 3}T12:00:{i % 60:02d}Z", query=f"query {i}",
                      candidates=("m1", "m2"), model="m1", propensity=0.5, success=True, quality=1.0,
                      quality_source="check", latency_ms=10.0 + i, cost=0.001).to_dict()
    d.update(over)
    return d


def line(obj: dict) -> bytes:
    return json.dumps(obj).encode() + b"\n"


MALFORMED = {
    "invalid JSON": b'{"schema_version": 1, "decision_id": ',
    "not an object": b"[1, 2, 3]",
    "wrong type": json.dumps(rec(100, propensity="high")).encode(),
    "missing field": json.dumps({k: v for k, v in rec(101).items() if k != "success"}).encode(),
    "NaN": json.dumps(rec(102)).replace('"latency_ms": 112.0', '"latency_ms": NaN').encode(),
    "Infinity": json.dumps(rec(103)).replace('"cost": 0.001', '"cost": Infinity').encode(),
    "negative latency": json.dumps(rec(104, latency_ms=-5.0)).encode(),
    "propensity zero": json.dumps(rec(105, propensity=0.0)).encode(),
    "propensity above one": json.dumps(rec(106, propensity=1.5)).encode(),
    "unknown model": json.dumps(rec(107, model="m9", candidates=["m1", "m9"])).encode(),
    "invalid UTF-8": json.dumps(rec(108)).encode().replace(b"query 108", b"query \xff\xfe 108"),
    "oversized": json.dumps(rec(109, query="x" * (1 << 20))).encode(),
    "unknown schema version": json.dumps(rec(110, schema_version=2)).encode(),
    "empty query": json.dumps(rec(111, query="  ")).encode(),
    "bad timestamp": json.dumps(rec(112, ts="yesterday")).encode(),
}


def test_every_malformed_class_is_quarantined_with_its_reason_and_bytes(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    raw.mkdir()
    good = [json.dumps(rec(i)).encode() for i in range(30)]
    dup = json.dumps(rec(3, quality=0.0)).encode()  # same decision_id as a good line
    torn = json.dumps(rec(200)).encode()[:40]        # a writer killed mid-line, no newline
    body = b"\n".join(good[:15] + list(MALFORMED.values()) + [dup] + good[15:]) + b"\n" + torn
    (raw / "outcomes-a.jsonl").write_bytes(body)
    old = time.time() - 3600
    os.utime(raw / "outcomes-a.jsonl", (old, old))  # the writer is long gone: the torn tail is final
    r = ingest_logs(raw, cur, known_models={"m1", "m2"}, settle_seconds=60)
    assert r.ingested == 30 and r.duplicates == 1
    assert r.quarantined == len(MALFORMED) + 1
    assert r.lines == r.ingested + r.quarantined + r.duplicates  # nothing lost
    q = [json.loads(x) for x in open(r.quarantine_file, encoding="utf-8")]
    by_raw = {base64.b64decode(e["raw_base64"]): e for e in q}
    for name, bad in MALFORMED.items():
        assert bad in by_raw, name  # byte for byte, even invalid UTF-8
        assert by_raw[bad]["reason"] and by_raw[bad]["line"] > 0
    assert torn in by_raw and "torn" in by_raw[torn]["reason"]
    assert "propensity" in by_raw[MALFORMED["propensity above one"]]["reason"]
    assert "unknown model" in by_raw[MALFORMED["unknown model"]]["reason"]
    assert "UTF-8" in by_raw[MALFORMED["invalid UTF-8"]]["reason"]
    assert "oversized" in by_raw[MALFORMED["oversized"]]["reason"]
    cur_df = read_curated(cur)
    assert sorted(cur_df["decision_id"].to_list()) == sorted(f"d{i}" for i in range(30))
    assert cur_df.filter(pl.col("decision_id") == "d3")["quality"].item() == 1.0  # first one wins


def test_incremental_idempotent_and_new_files(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    raw.mkdir()
    f = raw / "a.jsonl"
    f.write_bytes(b"".join(line(rec(i)) for i in range(10)))
    assert ingest_logs(raw, cur, settle_seconds=0).ingested == 10
    again = ingest_logs(raw, cur, settle_seconds=0)
    assert (again.ingested, again.lines, again.duplicates) == (0, 0, 0)
    with open(f, "ab") as fh:
        fh.write(b"".join(line(rec(i)) for i in range(10, 15)))
    (raw / "b.jsonl").write_bytes(b"".join(line(rec(i)) for i in range(15, 20)))
    r = ingest_logs(raw, cur, settle_seconds=0)
    assert (r.ingested, r.new_files, r.lines) == (10, 1, 10)
    assert len(read_curated(cur)) == 20
    # A crash after writing partitions but before saving the state: the lines are read again and the
    # decision_id check turns every one of them into a duplicate; nothing is ingested twice.
    (cur / "_state" / "ingest.json").unlink()
    r = ingest_logs(raw, cur, settle_seconds=0)
    assert (r.ingested, r.duplicates) == (0, 20)
    assert len(read_curated(cur)) == 20


def test_a_torn_tail_waits_for_its_writer_then_is_quarantined(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    raw.mkdir()
    full = line(rec(1))
    (raw / "a.jsonl").write_bytes(line(rec(0)) + full[:25])
    r = ingest_logs(raw, cur, settle_seconds=3600)  # just written: the writer may still finish it
    assert (r.ingested, r.quarantined, r.pending_bytes) == (1, 0, 25)
    with open(raw / "a.jsonl", "ab") as fh:  # ... and it does
        fh.write(full[25:])
    r = ingest_logs(raw, cur, settle_seconds=3600)
    assert (r.ingested, r.quarantined, r.pending_bytes) == (1, 0, 0)
    assert sorted(read_curated(cur)["decision_id"].to_list()) == ["d0", "d1"]


def test_partitions_by_day(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(b"".join(line(rec(i)) for i in range(9)))
    r = ingest_logs(raw, cur, settle_seconds=0)
    days = sorted(p.name for p in cur.glob("day=*"))
    assert days == ["day=2026-03-01", "day=2026-03-02", "day=2026-03-03"] and len(r.partitions) == 3
    df = read_curated(cur)
    assert df["ts"].is_sorted() and df.schema["candidates"] == pl.List(pl.String)


def test_an_empty_or_missing_log_directory_is_not_an_error(tmp_path):
    r = ingest_logs(tmp_path / "nothing", tmp_path / "cur")
    assert (r.files, r.ingested) == (0, 0)
    assert read_curated(tmp_path / "cur").is_empty()


@pytest.mark.parametrize("content", [b"not json", b'{"version": 9, "files": {}}'])
def test_a_corrupt_state_file_is_a_clear_error(tmp_path, content):
    from router_runtime import ContractError

    (tmp_path / "cur" / "_state").mkdir(parents=True)
    (tmp_path / "cur" / "_state" / "ingest.json").write_bytes(content)
    with pytest.raises(ContractError, match="ingest_state"):
        ingest_logs(tmp_path, tmp_path / "cur")


def test_partitions_written_before_a_new_field_read_it_as_null(tmp_path):
    # context_chars (issue 11) was added to the curated schema: an older day partition lacks the column.
    from flows.curated import scan_curated

    logs, cur = tmp_path / "logs", tmp_path / "curated"
    logs.mkdir()
    (logs / "a.jsonl").write_bytes(line(rec(0, context_chars=700)) + line(rec(1, context_chars=900)))
    ingest_logs(logs, cur)
    old = next(cur.glob("day=2026-03-01/*.parquet"))  # d0's day, as an older writer left it
    pl.read_parquet(old).drop("context_chars").write_parquet(old)
    got = scan_curated(cur).collect()
    assert dict(zip(got["decision_id"], got["context_chars"])) == {"d0": None, "d1": 900}
    assert got.schema["context_chars"] == pl.Int64
