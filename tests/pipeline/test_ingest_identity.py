"""Ingest state follows the file, not its name (issue 15): a log truncated in place (copytruncate),
deleted and recreated, or renamed away by rotation loses nothing when it grows past its old offset.
Real files, real ingests; every test counts the curated records against the lines written."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from flows.ingest import ingest_logs, read_curated
from router_runtime import OutcomeRecord


def _lines(start: int, n: int) -> bytes:
    out = []
    for i in range(start, start + n):
        out.append(OutcomeRecord(decision_id=f"id-{i:06d}", ts=f"2026-03-01T12:{i // 60 % 60:02d}:{i % 60:02d}Z",
                                 query=f"query number {i} " + "x" * (i % 17), candidates=("m1", "m2"), model="m1",
                                 propensity=0.5, success=True, quality=1.0, quality_source="check",
                                 latency_ms=10.0, cost=0.001).to_line())
    return "".join(out).encode()


def _ingest(logs, cur):
    return ingest_logs(logs, cur, settle_seconds=0)


def _curated_ids(cur) -> set[str]:
    return set(read_curated(cur)["decision_id"].to_list())


@pytest.fixture
def dirs(tmp_path):
    logs, cur = tmp_path / "logs", tmp_path / "curated"
    logs.mkdir()
    return logs, cur


def test_copytruncate_then_growth_past_the_old_offset_loses_nothing(dirs):
    logs, cur = dirs
    app = logs / "app.jsonl"
    app.write_bytes(_lines(0, 100))
    assert _ingest(logs, cur).ingested == 100
    # logrotate's copytruncate: copy, then truncate the same inode, and the writer goes on.
    shutil.copyfile(app, logs / "app-1.jsonl")
    ino = app.stat().st_ino
    with open(app, "r+b") as f:
        f.truncate(0)
    with open(app, "ab") as f:
        f.write(_lines(100, 150))  # more bytes than before: size alone cannot tell
    assert app.stat().st_ino == ino and app.stat().st_size > len(_lines(0, 100))
    r = _ingest(logs, cur)
    assert (r.ingested, r.duplicates, r.quarantined) == (150, 100, 0)
    assert _curated_ids(cur) == {f"id-{i:06d}" for i in range(250)}


def test_delete_and_recreate_then_growth_loses_nothing(dirs):
    logs, cur = dirs
    app = logs / "app.jsonl"
    app.write_bytes(_lines(0, 100))
    assert _ingest(logs, cur).ingested == 100
    app.unlink()
    app.write_bytes(_lines(100, 150))
    r = _ingest(logs, cur)
    assert (r.ingested, r.duplicates, r.quarantined) == (150, 0, 0)
    assert _curated_ids(cur) == {f"id-{i:06d}" for i in range(250)}


def test_a_renamed_log_keeps_its_offset_and_its_writer_appends(dirs):
    logs, cur = dirs
    app = logs / "app.jsonl"
    app.write_bytes(_lines(0, 100))
    assert _ingest(logs, cur).ingested == 100
    rotated = logs / "app-1.jsonl"
    os.rename(app, rotated)  # rotation by rename: the writer still holds the old file open ...
    with open(rotated, "ab") as f:
        f.write(_lines(100, 20))
    app.write_bytes(_lines(120, 30))  # ... and a new file takes the name
    r = _ingest(logs, cur)
    # The renamed file is recognised (inode and first bytes): only its 20 new lines are read.
    assert (r.ingested, r.duplicates, r.quarantined, r.new_files) == (50, 0, 0, 1)
    assert _curated_ids(cur) == {f"id-{i:06d}" for i in range(150)}


def test_same_size_rewrite_in_place_is_read_again(dirs):
    logs, cur = dirs
    app = logs / "app.jsonl"
    first = _lines(0, 100)
    app.write_bytes(first)
    assert _ingest(logs, cur).ingested == 100
    second = _lines(500, 100)
    with open(app, "r+b") as f:  # rewritten in place, the same inode, then grown
        f.write(second)
        f.write(_lines(600, 5))
    r = _ingest(logs, cur)
    assert r.ingested == 105 and len(_curated_ids(cur)) == 205


def test_state_records_the_identity(dirs):
    logs, cur = dirs
    app = logs / "app.jsonl"
    app.write_bytes(_lines(0, 10))
    _ingest(logs, cur)
    state = json.loads((cur / "_state" / "ingest.json").read_text())
    entry = state["files"][str(app.resolve())]
    st = app.stat()
    assert (entry["ino"], entry["dev"]) == (st.st_ino, st.st_dev)
    assert entry["head_bytes"] == min(st.st_size, 4096) and len(entry["head_sha256"]) == 64
