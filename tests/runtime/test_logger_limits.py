"""The logger and ingestion agree on the line limit (issue 15): a record too large for one line is
written with its text cut to fit, says so, keeps the query's identity, and is ingested, not
quarantined."""

from __future__ import annotations

import hashlib
import json

import pytest

from flows.ingest import ingest_logs, read_curated
from router_runtime import OutcomeLogger, OutcomeRecord, parse_outcome_line
from router_runtime.logger import RecordFile
from router_runtime.records import MAX_LINE_BYTES


def _record(i: int, **over) -> OutcomeRecord:
    base = dict(decision_id=f"big-{i}", ts="2026-03-01T12:00:00Z", query="hello", candidates=("m1", "m2"),
                model="m1", propensity=0.5, success=True, latency_ms=1.0)
    return OutcomeRecord(**{**base, **over})


@pytest.mark.parametrize("query", ["q" * (2 << 20), "é" * (1 << 20), "\x01" * 400_000],
                         ids=["ascii-2MiB", "utf8-2MiB", "escaped-2.4MiB"])
def test_an_oversized_query_is_cut_to_fit_and_flagged(tmp_path, query):
    rec = _record(0, query=query)
    assert len(rec.to_line().encode()) > MAX_LINE_BYTES
    with OutcomeLogger(tmp_path / "logs") as log:
        log.write(rec)
        log.write(_record(1))
    raw = log.path.read_bytes().splitlines(keepends=True)
    assert len(raw) == 2 and len(raw[0]) <= MAX_LINE_BYTES
    assert len(raw[0]) > MAX_LINE_BYTES - 64  # cut to the limit, not far below it
    back = parse_outcome_line(raw[0])
    assert back.extra["truncated"] == {"query": len(query)}
    assert query.startswith(back.query) and len(back.query) < len(query)
    assert back.query_sha256 == hashlib.sha256(query.encode()).hexdigest()
    assert parse_outcome_line(raw[1]) == _record(1)  # the next line is untouched

    r = ingest_logs(tmp_path / "logs", tmp_path / "curated", settle_seconds=0)
    assert (r.ingested, r.quarantined) == (2, 0)
    assert set(read_curated(tmp_path / "curated")["decision_id"]) == {"big-0", "big-1"}


def test_a_huge_error_is_cut_and_the_query_kept(tmp_path):
    rec = _record(2, success=False, error="boom " * 400_000)
    with OutcomeLogger(tmp_path) as log:
        log.write(rec)
    line = log.path.read_bytes()
    back = parse_outcome_line(line)
    assert len(line) <= MAX_LINE_BYTES and back.query == "hello"
    assert back.extra["truncated"] == {"error": len(rec.error)} and rec.error.startswith(back.error)


def test_a_record_that_fits_is_written_as_it_is(tmp_path):
    rec = _record(3, query="x" * 10_000)
    with OutcomeLogger(tmp_path) as log:
        log.write(rec)
    assert json.loads(log.path.read_text()) == json.loads(rec.to_line()) and "truncated" not in log.path.read_text()


def test_the_batch_writer_fits_lines_the_same_way(tmp_path):
    rec = _record(4, query="z" * (3 << 20))
    with RecordFile(tmp_path, "shadow") as f:
        f.write(rec)
    line = f.path.read_bytes()
    back = parse_outcome_line(line)
    assert len(line) <= MAX_LINE_BYTES and back.extra["truncated"] == {"query": 3 << 20}
