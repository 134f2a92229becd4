"""Explicit feedback through ingestion: a "user" quality line on a decision_id reaches the curated
records (and so training, evaluation and OPE) whether it comes in the same run as its answer, in a
later run, or before it; the latest feedback wins; unknown decision_ids are kept and counted;
identical lines stay duplicates; a crash before the state moves loses and doubles nothing.  Real
Parquet, real Polars, and one end-to-end run from RoutingService.feedback to the training table."""

from __future__ import annotations

import json

import polars as pl
import pytest

from flows.ingest import curated_training_table, ingest_logs, read_curated, scan_feedback
from flows.logs import read_outcome_logs
from router_runtime import OutcomeRecord


def rec(i: int, **over) -> dict:
    """An answer's line: no quality yet, like RoutingService writes for a plain answer."""
    d = OutcomeRecord(decision_id=f"d{i}", ts=f"2026-03-0{1 + i % 3}T12:00:{i % 60:02d}Z", query=f"query {i}",
                      candidates=("m1", "m2"), model="m1", propensity=0.5, success=True, latency_ms=10.0 + i,
                      cost=0.001).to_dict()
    d.update(over)
    return d


def fb(i: int, quality: float, ts: str = "2026-03-05T08:00:00Z", **over) -> dict:
    """Its feedback line: the same record again, later, with the user's quality."""
    return rec(i, ts=ts, quality=quality, quality_source="user", **over)


def line(obj: dict) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def write(path, *objs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(b"".join(line(o) for o in objs))


def ingest(raw, cur, **kw):
    r = ingest_logs(raw, cur, settle_seconds=0, **kw)
    assert r.lines == r.ingested + r.feedback + r.quarantined + r.duplicates  # every line is one of them
    return r


def qualities(cur) -> dict[str, tuple]:
    df = read_curated(cur)
    assert df["decision_id"].is_unique().all()
    return {r["decision_id"]: (r["quality"], r["quality_source"]) for r in df.iter_rows(named=True)}


def test_feedback_in_the_same_run_reaches_the_record_and_the_training_table(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", rec(1), rec(2, quality=0.0, quality_source="check"), fb(1, 0.25), fb(2, 0.75))
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.feedback_unmatched, r.duplicates, r.quarantined) == (2, 2, 0, 0, 0)
    assert qualities(cur) == {"d1": (0.25, "user"), "d2": (0.75, "user")}  # user beats the check signal
    df = read_curated(cur)
    # the record is the answer's line (its ts, its day), only the quality comes from the feedback
    assert df.filter(pl.col("decision_id") == "d1")["ts"].dt.strftime("%Y-%m-%d").item() == "2026-03-02"
    assert sorted(p.name for p in cur.glob("day=*")) == ["day=2026-03-02", "day=2026-03-03"]
    table = curated_training_table(df)
    assert dict(zip(table["query_id"], table["quality"])) == {"d1": 0.25, "d2": 0.75}
    stored = scan_feedback(cur).collect()
    assert sorted(stored["decision_id"]) == ["d1", "d2"] and set(stored["quality_source"]) == {"user"}


def test_feedback_in_a_later_run_reaches_an_answer_already_committed(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", rec(1), rec(2))
    assert ingest(raw, cur).ingested == 2
    parts = {p: p.read_bytes() for p in cur.glob("day=*/*.parquet")}
    write(raw / "a.jsonl", fb(1, 0.5))
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.feedback_unmatched, r.duplicates, r.lines) == (0, 1, 0, 0, 1)
    assert qualities(cur) == {"d1": (0.5, "user"), "d2": (None, None)}
    assert {p: p.read_bytes() for p in cur.glob("day=*/*.parquet")} == parts  # committed data untouched
    again = ingest(raw, cur)  # idempotent
    assert (again.lines, again.feedback, again.duplicates) == (0, 0, 0)


@pytest.mark.parametrize("unit_bytes", [None, 200])
def test_feedback_before_its_answer_in_another_file_or_unit(tmp_path, unit_bytes):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", fb(1, 0.25), fb(3, 1.0))  # a.jsonl is read first: feedback precedes its answer
    write(raw / "b.jsonl", rec(1), rec(2), rec(3))
    r = ingest(raw, cur, **({} if unit_bytes is None else {"unit_bytes": unit_bytes}))
    assert (r.ingested, r.feedback, r.feedback_unmatched, r.duplicates) == (3, 2, 0, 0)
    assert qualities(cur) == {"d1": (0.25, "user"), "d2": (None, None), "d3": (1.0, "user")}
    assert read_curated(cur).filter(pl.col("decision_id") == "d1")["latency_ms"].item() == 11.0


def test_feedback_before_its_answer_in_an_earlier_run_is_kept_then_joined(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", fb(1, 0.25, ts="2026-03-05T08:00:00Z"))
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.feedback_unmatched) == (0, 1, 1)
    # Until its answer is curated, the feedback line stands for the record: nothing waits in the dark.
    only = read_curated(cur)
    assert only["decision_id"].to_list() == ["d1"] and only["quality"].item() == 0.25
    assert only["ts"].dt.strftime("%Y-%m-%d").item() == "2026-03-05"
    write(raw / "b.jsonl", rec(1))
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.feedback_unmatched, r.duplicates) == (1, 0, 0, 0)
    joined = read_curated(cur)
    assert joined["decision_id"].to_list() == ["d1"] and joined["quality"].item() == 0.25
    assert joined["quality_source"].item() == "user"
    assert joined["ts"].dt.strftime("%Y-%m-%d").item() == "2026-03-02"  # now the answer's own line


def test_repeated_feedback_the_latest_wins_whatever_the_order_of_files_and_runs(tmp_path):
    lines = [fb(1, 0.9, ts="2026-03-05T08:00:00Z"), fb(1, 0.1, ts="2026-03-07T08:00:00Z"),
             fb(1, 0.6, ts="2026-03-06T08:00:00Z"),
             fb(2, 0.8, ts="2026-03-05T08:00:00.000001Z"), fb(2, 0.3, ts="2026-03-05T08:00:00.000001Z"),
             fb(2, 0.5, ts="2026-03-05T08:00:00Z")]
    expect = {"d1": (0.1, "user"), "d2": (0.3, "user")}  # latest ts; equal ts: the lower quality
    # one run, file order as written
    raw, cur = tmp_path / "r1", tmp_path / "c1"
    write(raw / "a.jsonl", rec(1), rec(2), *lines)
    assert ingest(raw, cur).feedback == 6
    assert qualities(cur) == expect
    # reversed, over three runs: the newest feedback arrives first, then older ones
    raw, cur = tmp_path / "r2", tmp_path / "c2"
    rev = lines[::-1]
    write(raw / "a.jsonl", rev[0], rev[1])
    ingest(raw, cur)
    write(raw / "b.jsonl", rec(2), rec(1), *rev[2:4])
    ingest(raw, cur)
    write(raw / "a.jsonl", *rev[4:])
    assert ingest(raw, cur).feedback == 2
    assert qualities(cur) == expect
    assert read_curated(tmp_path / "c1").drop("source_file").equals(read_curated(cur).drop("source_file"))


def test_feedback_for_an_unknown_decision_id_is_kept_and_counted(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", rec(1), fb(1, 0.5), fb(7, 0.75), fb(7, 0.5, ts="2026-03-06T00:00:00Z"))
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.feedback_unmatched, r.duplicates, r.quarantined) == (1, 3, 1, 0, 0)
    assert r.to_json()["feedback_unmatched"] == 1
    assert sorted(scan_feedback(cur).collect()["decision_id"]) == ["d1", "d7", "d7"]
    # read from its earliest feedback line (the closest to the answer), with the latest quality
    got = read_curated(cur).filter(pl.col("decision_id") == "d7")
    assert (got["quality"].item(), got["quality_source"].item()) == (0.5, "user")
    assert got["ts"].dt.strftime("%Y-%m-%dT%H").item() == "2026-03-05T08"
    # a host that logs the user's verdict with the record itself: one line, trained on like any other
    write(raw / "b.jsonl", rec(8, quality=1.0, quality_source="user"))
    r = ingest(raw, cur)
    assert (r.feedback, r.feedback_unmatched) == (1, 2)
    assert dict(zip(*curated_training_table(read_curated(cur)).select("query_id", "quality")))["d8"] == 1.0


def test_identical_lines_are_still_duplicates(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", rec(1), rec(1), fb(1, 0.5), fb(1, 0.5), rec(2))
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.duplicates) == (2, 1, 2)
    write(raw / "b.jsonl", fb(1, 0.5), rec(2), fb(1, 0.5, ts="2026-03-05T09:00:00Z"))  # across runs too
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.duplicates) == (0, 1, 2)
    assert len(scan_feedback(cur).collect()) == 2 and qualities(cur)["d1"] == (0.5, "user")


def test_the_python_validator_splits_feedback_the_same_way(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "a.jsonl", fb(3, 0.2), rec(1), fb(1, 0.5), fb(1, 0.5), rec(2), rec(3), fb(9, 0.4),
          fb(1, 0.7, ts="2026-03-06T00:00:00Z"), fb(2, 1.5))  # the last one: quality out of range
    keys = ("lines", "ingested", "feedback", "feedback_unmatched", "duplicates", "quarantined")
    fast, slow = ingest(raw, tmp_path / "c1"), ingest(raw, tmp_path / "c2", fast=False)
    assert {k: getattr(fast, k) for k in keys} == {k: getattr(slow, k) for k in keys}
    assert read_curated(tmp_path / "c1").equals(read_curated(tmp_path / "c2"))
    # and the in-memory reader (flows.logs) applies the same rules
    mem = read_outcome_logs(raw)
    assert (mem.feedback, mem.feedback_unmatched, mem.duplicates, len(mem.quarantined)) == (
        fast.feedback, fast.feedback_unmatched, fast.duplicates, fast.quarantined)
    assert {r.decision_id: (r.quality, r.quality_source) for r in mem.records} == qualities(tmp_path / "c1")


def test_a_crash_before_the_state_moves_doubles_nothing(tmp_path, monkeypatch):
    import flows.ingest

    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", rec(1), rec(2))
    ingest(raw, cur)
    write(raw / "a.jsonl", fb(1, 0.5), fb(2, 0.25), rec(3), fb(3, 1.0))
    real = flows.ingest._atomic_write

    def crash_on_state(path, data):
        if path.name == "ingest.json":
            raise OSError("killed before the state was saved")
        real(path, data)

    with monkeypatch.context() as m:
        m.setattr(flows.ingest, "_atomic_write", crash_on_state)
        with pytest.raises(OSError, match="killed"):
            ingest_logs(raw, cur, settle_seconds=0)
    # The data moved in (partitions, feedback) before the crash; the state did not.
    assert qualities(cur) == {"d1": (0.5, "user"), "d2": (0.25, "user"), "d3": (1.0, "user")}
    r = ingest(raw, cur)  # the same lines again: every one is recognised
    assert (r.lines, r.ingested, r.feedback, r.duplicates) == (4, 0, 0, 4)
    assert len(scan_feedback(cur).collect()) == 3 and len(read_curated(cur)) == 3
    (cur / "_state" / "ingest.json").unlink()  # and from scratch: everything is a duplicate
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.duplicates) == (0, 0, 6)
    assert qualities(cur) == {"d1": (0.5, "user"), "d2": (0.25, "user"), "d3": (1.0, "user")}


def test_routing_service_feedback_reaches_the_training_side(tmp_path):
    """End to end: answers and feedback from RoutingService, the log ingested, the production flow's
    window reader (training and off-policy evaluation rows) sees the user's quality."""
    from flows.production import load_window
    from router_runtime import FunctionBackend, GenerationRequest, OutcomeLogger, Router, RoutingService
    from router_runtime.pool import parse_model

    pool = (parse_model({"name": "a", "capabilities": ["chat"], "ms_per_prompt_token": 0.1, "ms_per_token": 1.0}),
            parse_model({"name": "b", "capabilities": ["chat"], "ms_per_prompt_token": 0.2, "ms_per_token": 2.0}))
    logs = tmp_path / "logs"
    router = Router(None, pool=pool, use_numpy=False, logger=OutcomeLogger(logs))
    svc = RoutingService(router, FunctionBackend(lambda model, req: "an answer"))  # background record writer
    ids = [svc.complete(GenerationRequest("chat", messages=({"role": "user", "content": f"question {i}"},)))
           .decision_id for i in range(10)]
    svc.feedback(ids[0], 0.25)
    svc.feedback(ids[1], 0.9)
    svc.feedback(ids[1], 0.1)  # the user changed their mind: the latest counts
    svc.close()
    cur = tmp_path / "cur"
    r = ingest(logs, cur)
    assert (r.ingested, r.feedback, r.feedback_unmatched, r.duplicates, r.quarantined) == (10, 3, 0, 0, 0)
    got = qualities(cur)
    assert got[ids[0]] == (0.25, "user") and got[ids[1]] == (0.1, "user")
    assert all(got[i] == (None, None) for i in ids[2:])
    table = curated_training_table(read_curated(cur))
    q = dict(zip(table["query_id"], table["quality"]))
    assert (q[ids[0]], q[ids[1]], q[ids[2]]) == (0.25, 0.1, None)  # the rest: unlabeled, not quality 1
    train, recent, _, _ = load_window.fn(str(cur), 0.5)
    both = pl.concat([train.select("query_id", "quality"), recent.select("query_id", "quality")])
    assert len(both) == 10 and dict(zip(both["query_id"], both["quality"])) == q
