"""One writer at a time on a curated store and a registry (issue 15), with real processes: two
ingests started together store every record once; a held lock is refused naming its holder; a
holder killed with SIGKILL, or one whose lock outlived it in a forked child, never blocks the next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT
from flows.ingest import ingest_logs, read_curated
from router_runtime import LockHeldError, OutcomeRecord, promote
from router_runtime._lock import LOCK_FILE, exclusive

PY = sys.executable


def _write_logs(logs, n=1500):
    logs.mkdir()
    with open(logs / "app.jsonl", "w") as f:
        for i in range(n):
            f.write(OutcomeRecord(decision_id=f"id-{i:06d}", ts=f"2026-03-01T12:{i // 60 % 60:02d}:{i % 60:02d}Z",
                                  query=f"query {i}", candidates=("m1", "m2"), model="m1", propensity=0.5,
                                  success=True, quality=1.0, quality_source="check", latency_ms=1.0,
                                  cost=0.001).to_line())


def _run(code: str, *args: str, wait: bool = True):
    cmd = [PY, "-c", textwrap.dedent(code), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


INGEST = """
import sys, time
from router_runtime import LockHeldError
from flows.ingest import ingest_logs
go = float(sys.argv[3])
while time.time() < go:  # both processes start ingesting at the same instant
    time.sleep(0.001)
try:
    r = ingest_logs(sys.argv[1], sys.argv[2], settle_seconds=0)
    print("ingested", r.ingested, r.duplicates)
except LockHeldError as exc:
    print("refused", exc)
"""

HOLD = """
import sys, time
from router_runtime._lock import exclusive
with exclusive(sys.argv[1], "curated store"):
    print("held", flush=True)
    time.sleep(60)
"""


def _wait_line(proc, expected="held"):
    line = proc.stdout.readline().strip()
    assert line == expected, (line, proc.stderr.read() if proc.poll() is not None else "")


def test_two_ingest_processes_at_once_store_every_record_once(tmp_path):
    logs, cur = tmp_path / "logs", tmp_path / "curated"
    _write_logs(logs)
    outcomes = []
    for round_ in range(3):
        c = tmp_path / f"curated{round_}"
        go = str(time.time() + 2.0)  # time for both interpreters to import flows
        procs = [_run(INGEST, str(logs), str(c), go, wait=False) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
        lines = sorted(o.strip() for o, _ in outs)
        outcomes.append(lines)
        frame = read_curated(c)
        assert len(frame) == 1500 and frame["decision_id"].n_unique() == 1500, lines
        # Exactly one stored them; the other was refused, or came after and found nothing new.
        stored = [x for x in lines if x.startswith("ingested 1500")]
        assert len(stored) == 1, lines
        other = [x for x in lines if not x.startswith("ingested 1500")][0]
        assert other == "ingested 0 0" or (other.startswith("refused") and "locked by pid" in other), other
    print("\nrounds:", outcomes)


def test_a_held_lock_is_refused_naming_its_holder(tmp_path):
    logs, cur = tmp_path / "logs", tmp_path / "curated"
    _write_logs(logs, 10)
    holder = _run(HOLD, str(cur), wait=False)
    try:
        _wait_line(holder)
        with pytest.raises(LockHeldError) as ei:
            ingest_logs(logs, cur, settle_seconds=0)
        assert ei.value.pid == holder.pid and f"pid {holder.pid}" in str(ei.value)
        assert "curated store" in str(ei.value) and not (cur / "_state").exists()  # nothing was written
    finally:
        holder.kill()
        holder.wait()


def test_sigkill_of_the_holder_frees_the_lock(tmp_path):
    logs, cur = tmp_path / "logs", tmp_path / "curated"
    _write_logs(logs, 10)
    holder = _run(HOLD, str(cur), wait=False)
    _wait_line(holder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (cur / LOCK_FILE).exists()  # the file stays, with the dead pid in it
    assert ingest_logs(logs, cur, settle_seconds=0).ingested == 10


def test_a_lock_outliving_its_dead_holder_in_a_forked_child_is_broken(tmp_path):
    logs, cur = tmp_path / "logs", tmp_path / "curated"
    _write_logs(logs, 10)
    code = """
    import os, sys, time
    from router_runtime._lock import exclusive
    with exclusive(sys.argv[1], "curated store"):
        child = os.fork()
        if child == 0:      # inherits the locked descriptor and outlives the parent
            time.sleep(30)
            os._exit(0)
        print(child, flush=True)
        os._exit(0)         # the holder dies; the child still holds the flock
    """
    proc = _run(code, str(cur), wait=False)
    child = int(proc.stdout.readline())
    proc.wait()
    try:
        assert ingest_logs(logs, cur, settle_seconds=0).ingested == 10
        assert list(cur.glob(f"{LOCK_FILE}.stale-*"))  # the stale file was moved away, not deleted
    finally:
        os.kill(child, signal.SIGKILL)


def test_promotion_holds_the_registry_lock(tmp_path, vdir, reg):
    code = """
    import sys, time
    from router_runtime._lock import exclusive
    with exclusive(sys.argv[1], "registry"):
        print("held", flush=True)
        time.sleep(60)
    """
    holder = _run(code, str(reg), wait=False)
    try:
        _wait_line(holder)
        with pytest.raises(LockHeldError, match=f"registry .* locked by pid {holder.pid}"):
            promote(reg, vdir.name, reason="test")
        assert not (reg / "CURRENT").exists()
    finally:
        holder.kill()
        holder.wait()
    assert promote(reg, vdir.name, reason="test") is None and (reg / "CURRENT").exists()


def test_a_thread_nests_and_another_thread_is_refused(tmp_path):
    import threading

    errors = []
    with exclusive(tmp_path, "registry"):
        with exclusive(tmp_path, "registry"):  # the same operation, nested
            t = threading.Thread(target=lambda: errors.append(_try(tmp_path)))
            t.start()
            t.join()
    assert errors == ["refused"]
    with exclusive(tmp_path, "registry"):  # released when the outer block ended
        pass


def _try(path):
    try:
        with exclusive(path, "registry"):
            return "taken"
    except LockHeldError:
        return "refused"


@pytest.mark.usefixtures("prefect_harness")
def test_a_pipeline_is_refused_while_another_holds_the_registry(tmp_path):
    from flows.production import run_pipeline

    logs, reg = tmp_path / "logs", tmp_path / "reg"
    _write_logs(logs, 10)
    code = """
    import sys, time
    from router_runtime._lock import exclusive
    with exclusive(sys.argv[1], "registry"):
        print("held", flush=True)
        time.sleep(60)
    """
    holder = _run(code, str(reg), wait=False)
    try:
        _wait_line(holder)
        with pytest.raises(LockHeldError, match=f"locked by pid {holder.pid}"):
            run_pipeline(logs=str(logs), registry=str(reg), settle_seconds=0)
        assert not (tmp_path / "logs-curated" / "_state").exists() and not any(tmp_path.glob("**/day=*"))
    finally:
        holder.kill()
        holder.wait()


def test_staging_left_by_a_sigkilled_ingest_is_cleaned_and_nothing_is_lost(tmp_path):
    """#15.18, the data half: kill -9 between staging and commit leaves _staging/ behind; the next
    ingest removes it and stores every record exactly once."""
    logs, cur = tmp_path / "logs", tmp_path / "curated"
    _write_logs(logs, 300)
    code = """
    import os, signal, sys
    from flows.ingest import ingest_unit, plan_ingest, staging_dir
    from router_runtime._lock import exclusive
    with exclusive(sys.argv[2], "curated store"):
        plan = plan_ingest(sys.argv[1], sys.argv[2], settle_seconds=0)
        for unit in plan.units:
            ingest_unit(unit, staging_dir(plan))
        os.kill(os.getpid(), signal.SIGKILL)  # before the commit
    """
    out = _run(code, str(logs), str(cur))
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert list((cur / "_staging").rglob("*.parquet"))
    r = ingest_logs(logs, cur, settle_seconds=0)
    assert (r.ingested, r.duplicates) == (300, 0)
    assert not any((cur / "_staging").iterdir())
    frame = read_curated(cur)
    assert len(frame) == 300 and frame["decision_id"].n_unique() == 300


def test_artifacts_gc_is_refused_while_the_registry_is_held(tmp_path, vdir, reg):
    from flows.registry_admin import collect_garbage

    code = """
    import sys, time
    from router_runtime._lock import exclusive
    with exclusive(sys.argv[1], "registry"):
        print("held", flush=True)
        time.sleep(60)
    """
    holder = _run(code, str(reg), wait=False)
    try:
        _wait_line(holder)
        with pytest.raises(LockHeldError, match=f"pid {holder.pid}"):
            collect_garbage(reg, keep=1)
    finally:
        holder.kill()
        holder.wait()
    assert collect_garbage(reg, keep=1) == []  # one version: nothing to remove, and the lock is free again
