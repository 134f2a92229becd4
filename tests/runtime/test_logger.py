"""OutcomeLogger: concurrent writers, rotation by size and age, several writers per directory, torn lines."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from router_runtime.errors import ContractError
from router_runtime.logger import OutcomeLogger
from router_runtime.records import OutcomeRecord, parse_outcome_line

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = OutcomeRecord(decision_id="t", ts="2026-01-01T00:00:00Z", query="how many r in strawberry? ü",
                         candidates=("a", "b"), model="a", propensity=0.5, success=True, latency_ms=12.5)


def rec(i, prefix="d") -> OutcomeRecord:
    return dataclasses.replace(TEMPLATE, decision_id=f"{prefix}-{i}")


def fast_rec(i, prefix="d") -> OutcomeRecord:
    # The validated template with only decision_id changed (to another valid id), without paying
    # ~40 us of validation per record: 80,000 records would otherwise take seconds to build.
    r = copy.copy(TEMPLATE)
    object.__setattr__(r, "decision_id", f"{prefix}-{i}")
    return r


def files_of(d: Path) -> list[Path]:
    return sorted(d.glob("*.jsonl"))


def read_all(d: Path) -> tuple[list[OutcomeRecord], int]:
    """Every record in every file of ``d``, and the number of lines that failed to parse."""
    good, bad = [], 0
    for p in files_of(d):
        with open(p, "rb") as f:
            for raw in f:
                try:
                    good.append(parse_outcome_line(raw))
                except ContractError:
                    bad += 1
    return good, bad


def run_threads(logger: OutcomeLogger, n_threads: int, per_thread: int, prefix="d") -> None:
    # Records are built up front so the threads contend on write() alone.
    batches = [[fast_rec(t * per_thread + i, prefix) for i in range(per_thread)] for t in range(n_threads)]
    start = threading.Barrier(n_threads)
    errors = []

    def work(batch):
        try:
            start.wait()
            for r in batch:
                logger.write(r)
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_one_record_one_line(tmp_path):
    with OutcomeLogger(tmp_path) as log:
        assert log.path is None
        log.write(rec(1))
        p = log.path
    assert p is not None and p.parent == tmp_path and p.suffix == ".jsonl"
    data = p.read_bytes()
    assert data == rec(1).to_line().encode("utf-8")
    assert parse_outcome_line(data) == rec(1)


def test_eight_threads_ten_thousand_writes_each(tmp_path):
    n_threads, per = 8, 10_000
    with OutcomeLogger(tmp_path) as log:
        run_threads(log, n_threads, per)
    good, bad = read_all(tmp_path)
    assert bad == 0
    counts = Counter(r.decision_id for r in good)
    assert len(counts) == n_threads * per
    assert set(counts.values()) == {1}
    assert set(counts) == {f"d-{i}" for i in range(n_threads * per)}
    # every line is byte-identical to what the record writes (no interleaving inside a line)
    lines = b"".join(p.read_bytes() for p in files_of(tmp_path)).splitlines(keepends=True)
    assert len(lines) == n_threads * per
    assert all(line.endswith(b"}\n") and line.count(b"\n") == 1 for line in lines)


def test_rotation_by_size_under_concurrency(tmp_path):
    line_len = len(rec(10_000).to_line().encode())
    max_bytes = 40 * line_len
    with OutcomeLogger(tmp_path, max_bytes=max_bytes) as log:
        run_threads(log, 4, 1_000)
    files = files_of(tmp_path)
    assert len(files) >= 4_000 * line_len // max_bytes  # several files, about as many as needed
    for p in files:
        size = p.stat().st_size
        assert 0 < size <= max_bytes, (p.name, size)  # rotation happens before the limit is crossed
        assert p.read_bytes().endswith(b"\n")
    good, bad = read_all(tmp_path)
    assert bad == 0
    assert Counter(r.decision_id for r in good) == Counter(f"d-{i}" for i in range(4_000))


def test_line_bigger_than_max_bytes_goes_alone_into_its_own_file(tmp_path):
    big = dataclasses.replace(TEMPLATE, decision_id="big", query="x" * 5_000)
    with OutcomeLogger(tmp_path, max_bytes=1_000) as log:
        log.write(rec(1))
        log.write(big)
        log.write(rec(2))
    files = files_of(tmp_path)
    assert len(files) == 3
    sizes = sorted(p.stat().st_size for p in files)
    line = len(big.to_line().encode())
    assert sizes[-1] == line  # over the limit by exactly that one line, nothing more
    assert all(s <= 1_000 for s in sizes[:-1])
    good, bad = read_all(tmp_path)
    assert bad == 0 and sorted(r.decision_id for r in good) == ["big", "d-1", "d-2"]


def test_rotation_by_age(tmp_path):
    with OutcomeLogger(tmp_path, max_age_s=0.15) as log:
        log.write(rec(1))
        log.write(rec(2))  # well inside the age: same file
        first = log.path
        time.sleep(0.25)
        log.write(rec(3))
        second = log.path
        time.sleep(0.25)
        log.write(rec(4))
        third = log.path
    assert len({first, second, third}) == 3
    assert len(files_of(tmp_path)) == 3
    good, bad = read_all(tmp_path)
    assert bad == 0 and sorted(r.decision_id for r in good) == ["d-1", "d-2", "d-3", "d-4"]
    assert first.read_bytes().count(b"\n") == 2


def test_two_loggers_in_one_directory_never_share_a_file(tmp_path):
    # Two instances (as two processes would be) created in the same second, same pid, same counter.
    a, b = OutcomeLogger(tmp_path), OutcomeLogger(tmp_path)
    a.write(rec(1, "a"))
    b.write(rec(1, "b"))
    assert a.path != b.path
    for i in range(2, 200):
        a.write(rec(i, "a"))
        b.write(rec(i, "b"))
    a.close()
    b.close()
    assert len(files_of(tmp_path)) == 2
    for p, prefix in ((a.path, "a"), (b.path, "b")):
        ids = [parse_outcome_line(line).decision_id for line in p.read_bytes().splitlines()]
        assert ids == [f"{prefix}-{i}" for i in range(1, 200)]


def test_two_loggers_rotating_quickly_never_share_a_file(tmp_path):
    line_len = len(rec(100).to_line().encode())
    a = OutcomeLogger(tmp_path, max_bytes=3 * line_len)
    b = OutcomeLogger(tmp_path, max_bytes=3 * line_len)
    seen: dict[Path, str] = {}
    for i in range(100):
        for name, log in (("a", a), ("b", b)):
            log.write(rec(i, name))
            assert seen.setdefault(log.path, name) == name, f"{log.path} shared by two loggers"
    a.close()
    b.close()
    good, bad = read_all(tmp_path)
    assert bad == 0 and len(good) == 200 and len({r.decision_id for r in good}) == 200


def test_a_new_logger_never_appends_to_an_existing_file(tmp_path):
    # A restarted process must not continue a file whose last line may be torn.
    with OutcomeLogger(tmp_path) as first:
        first.write(rec(1))
    old = first.path
    before = old.read_bytes()
    with OutcomeLogger(tmp_path) as second:
        second.write(rec(2))
    assert second.path != old and old.read_bytes() == before


def test_two_processes_write_into_one_directory(tmp_path):
    code = (
        "import dataclasses, sys\n"
        "from router_runtime.logger import OutcomeLogger\n"
        "from router_runtime.records import OutcomeRecord\n"
        "t = OutcomeRecord(decision_id='x', ts='2026-01-01T00:00:00Z', query='q', candidates=('a',),"
        " model='a', propensity=1.0, success=True)\n"
        "with OutcomeLogger(sys.argv[1], max_bytes=20000) as log:\n"
        "    for i in range(2000):\n"
        "        log.write(dataclasses.replace(t, decision_id=f'{sys.argv[2]}-{i}'))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), name], env=env) for name in ("p", "q")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    by_file: dict[Path, set[str]] = {}
    for p in files_of(tmp_path):
        by_file[p] = {parse_outcome_line(line).decision_id.split("-")[0] for line in p.read_bytes().splitlines()}
    assert len(by_file) >= 4
    assert all(len(owners) == 1 for owners in by_file.values()), by_file
    good, bad = read_all(tmp_path)
    assert bad == 0 and len({r.decision_id for r in good}) == 4000 == len(good)


def test_file_ending_with_a_torn_line(tmp_path):
    with OutcomeLogger(tmp_path) as log:
        for i in range(50):
            log.write(rec(i))
        path = log.path
    half = rec(999).to_line().encode()
    with open(path, "ab") as f:  # a crash in the middle of the last write
        f.write(half[: len(half) // 2])
    good, bad = 0, 0
    for raw in path.read_bytes().splitlines():
        try:
            parse_outcome_line(raw)
            good += 1
        except ContractError as exc:
            bad += 1
            assert exc.field == "line" and "torn" in str(exc)
    assert (good, bad) == (50, 1)


class _FailingWrite:
    """os.write that, once armed, writes half of the buffer and then fails (a full disk)."""

    def __init__(self, real):
        self.real = real
        self.armed = False

    def __call__(self, fd, data):
        if self.armed:
            self.armed = False
            self.real(fd, bytes(data[: len(data) // 2]))
            raise OSError(28, "No space left on device")
        return self.real(fd, data)


def test_a_failed_write_costs_only_its_own_line(tmp_path, monkeypatch):
    import router_runtime.logger as logger_mod

    fake = _FailingWrite(os.write)
    monkeypatch.setattr(logger_mod.os, "write", fake)
    with OutcomeLogger(tmp_path) as log:
        log.write(rec(1))
        fake.armed = True
        with pytest.raises(OSError):
            log.write(rec(2))
        log.write(rec(3))  # must not be glued onto the half line left behind
        log.write(rec(4))
    good, bad = read_all(tmp_path)
    assert sorted(r.decision_id for r in good) == ["d-1", "d-3", "d-4"]
    assert bad == 1


def test_write_after_close_opens_a_new_file(tmp_path):
    log = OutcomeLogger(tmp_path)
    log.write(rec(1))
    first = log.path
    log.close()
    log.close()  # idempotent
    log.write(rec(2))
    log.close()
    assert log.path != first
    good, bad = read_all(tmp_path)
    assert bad == 0 and sorted(r.decision_id for r in good) == ["d-1", "d-2"]


def test_fsync_mode_writes_the_same_bytes(tmp_path):
    with OutcomeLogger(tmp_path, fsync=True) as log:
        log.write(rec(1))
    assert log.path.read_bytes() == rec(1).to_line().encode()


def test_directory_is_created(tmp_path):
    d = tmp_path / "deep" / "logs"
    with OutcomeLogger(d) as log:
        log.write(rec(1))
    assert files_of(d) and json.loads(files_of(d)[0].read_text())["decision_id"] == "d-1"


def test_record_file_writes_one_new_file_of_whole_lines(tmp_path):
    import re

    from router_runtime.logger import RecordFile
    from router_runtime.records import OutcomeRecord, parse_outcome_line

    recs = [OutcomeRecord(decision_id=f"r{i}", ts="2026-03-01T00:00:00Z", candidates=("m",), model="m",
                          propensity=1.0, success=True, query=f"q{i}") for i in range(3)]
    empty = RecordFile(tmp_path / "out", "shadow")
    empty.close()
    assert empty.path is None and not (tmp_path / "out").exists()  # nothing to write: no file
    with RecordFile(tmp_path / "out", "shadow") as a, RecordFile(tmp_path / "out", "shadow") as b:
        for r in recs:
            a.write(r)
        b.write(recs[0])
    assert a.path != b.path and a.lines == 3 and b.lines == 1
    assert re.fullmatch(r"shadow-\d{8}T\d{6}Z-[0-9a-f]{8}\.jsonl", a.path.name)
    assert [parse_outcome_line(x) for x in a.path.read_bytes().splitlines()] == recs
    a.close()  # a second close is harmless


def test_record_file_takes_other_json_lines_whole(tmp_path):
    from router_runtime.logger import RecordFile

    with RecordFile(tmp_path / "_judge", "failures") as f:
        f.write_line('{"decision_id": "d1", "raw": "\\u0000"}\n')
        for bad in ('{"a": 1}', '{"a": 1}\n{"b": 2}\n'):  # no newline; two lines
            with pytest.raises(ValueError):
                f.write_line(bad)
    assert f.lines == 1 and json.loads(f.path.read_text()) == {"decision_id": "d1", "raw": "\x00"}
