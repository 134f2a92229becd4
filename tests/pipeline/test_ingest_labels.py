"""Label lines from users, checks and judges through ingestion (issue 10), with real files, real Parquet
and both engines (the curated store and the in-memory reader): precedence user > check > judge then the
latest ts; labels before their records; the same label twice; a label for an unknown decision; shadow
records; the judge's failure files never read as outcomes; huge and non-UTF-8 answers."""

from __future__ import annotations

import json

import polars as pl
import pytest

from flows.curated import curated_training_table, read_curated, scan_labels
from flows.ingest import ingest_logs
from flows.logs import log_files, read_outcome_logs
from router_runtime import OutcomeRecord
from router_runtime.records import RESPONSE_MAX_CHARS

JUDGE = {"judge": "smollm2-135m", "rubric_version": "r1", "mode": "single", "score": 4, "scale": [1, 5], "raw": "4"}


def rec(i: int, **over) -> dict:
    d = OutcomeRecord(decision_id=f"d{i}", ts=f"2026-03-0{1 + i % 3}T12:00:{i % 60:02d}Z", query=f"query {i}",
                      candidates=("m1", "m2"), model="m1", propensity=0.5, success=True, latency_ms=10.0 + i,
                      cost=0.001, response=f"answer {i}").to_dict()
    d.update(over)
    return d


def label(i: int, quality: float, source: str, ts: str = "2026-03-05T08:00:00Z", **over) -> dict:
    """A label line: the record's line again with the label's quality, source, time and metadata."""
    meta = {} if source == "user" else {"label": dict(JUDGE, score=quality)}
    return rec(i, ts=ts, quality=quality, quality_source=source, **meta, **over)


def write(path, *objs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objs))


def ingest(raw, cur, **kw):
    r = ingest_logs(raw, cur, settle_seconds=0, **kw)
    assert r.lines == r.ingested + r.feedback + r.quarantined + r.duplicates  # every line is one of them
    return r


def qualities(cur) -> dict[str, tuple]:
    df = read_curated(cur)
    assert df["decision_id"].is_unique().all()
    return {r["decision_id"]: (r["quality"], r["quality_source"]) for r in df.iter_rows(named=True)}


def in_memory(raw) -> dict[str, tuple]:
    return {r.decision_id: (r.quality, r.quality_source) for r in read_outcome_logs(raw).records}


def test_precedence_user_over_check_over_judge_in_both_engines(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl",
          rec(1), label(1, 0.75, "judge", ts="2026-03-09T00:00:00Z"), label(1, 0.25, "user"),  # user, though older
          rec(2), label(2, 1.0, "judge", ts="2026-03-09T00:00:00Z"), label(2, 0.0, "check"),   # check beats judge
          rec(3, success=False, quality=0.0, quality_source="check"), label(3, 1.0, "judge"),  # its own check wins
          rec(4), label(4, 0.5, "judge"), label(4, 0.25, "judge", ts="2026-03-06T00:00:00Z"),  # latest judge
          rec(5))                                                                               # unlabeled
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.duplicates, r.quarantined) == (5, 7, 0, 0)
    assert r.labels == {"check": 1, "judge": 5, "user": 1}
    assert r.records == {"check": 1, "unlabeled": 4} and r.shadow == 0
    expect = {"d1": (0.25, "user"), "d2": (0.0, "check"), "d3": (0.0, "check"), "d4": (0.25, "judge"),
              "d5": (None, None)}
    assert qualities(cur) == expect
    assert in_memory(raw) == expect
    # the winning judge label's metadata travels with the record (so the manifest can name the judge)
    d4 = read_curated(cur).filter(pl.col("decision_id") == "d4")
    assert json.loads(d4["label"].item())["judge"] == "smollm2-135m" and d4["response"].item() == "answer 4"
    table = curated_training_table(read_curated(cur))
    assert dict(zip(table["query_id"], table["quality"]))["d5"] is None  # unlabeled: not a quality of 1


@pytest.mark.parametrize("unit_bytes", [None, 300])
def test_labels_before_their_records_in_an_earlier_run_or_another_unit(tmp_path, unit_bytes):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    kw = {} if unit_bytes is None else {"unit_bytes": unit_bytes}
    write(raw / "a.jsonl", label(1, 0.5, "judge"), label(2, 0.75, "judge"))
    r = ingest(raw, cur, **kw)
    assert (r.ingested, r.feedback, r.feedback_unmatched) == (0, 2, 2)
    write(raw / "b.jsonl", rec(1), rec(2), label(2, 0.0, "user", ts="2026-03-04T00:00:00Z"))
    r = ingest(raw, cur, **kw)
    assert (r.ingested, r.feedback, r.feedback_unmatched, r.duplicates) == (2, 1, 0, 0)
    assert qualities(cur) == {"d1": (0.5, "judge"), "d2": (0.0, "user")} == in_memory(raw)
    assert read_curated(cur).filter(pl.col("decision_id") == "d1")["ts"].dt.day().item() == 2  # the record's own line


def test_the_same_label_twice_is_one_label_in_a_run_and_across_runs(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "labels" / "judge-1.jsonl", label(1, 0.5, "judge"), label(1, 0.5, "judge"))
    write(raw / "a.jsonl", rec(1))
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.duplicates) == (1, 1, 1)
    write(raw / "labels" / "judge-2.jsonl", label(1, 0.5, "judge"),  # the same again, from another judge run
          label(1, 0.5, "user"))                                     # same (ts, quality), another source: kept
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.duplicates) == (0, 1, 1)
    assert len(scan_labels(cur).collect()) == 2 and qualities(cur) == {"d1": (0.5, "user")}
    assert read_outcome_logs(raw).duplicates == 2


def test_a_label_for_an_unknown_decision_is_kept_counted_and_never_trained_without_text(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", rec(1), label(7, 0.75, "judge"),
          label(8, 0.5, "judge", query=None, query_sha256="a" * 64))  # hash-only: no text to learn from
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.feedback_unmatched) == (1, 2, 2)
    assert qualities(cur) == {"d1": (None, None), "d7": (0.75, "judge"), "d8": (0.5, "judge")}
    table = curated_training_table(read_curated(cur))
    assert sorted(table["query_id"]) == ["d1", "d7"]  # d8 is counted, not trained on
    assert read_outcome_logs(raw).feedback_unmatched == 2


def test_a_check_or_judge_line_without_label_metadata_is_a_record_not_a_label(tmp_path):
    # A record that carries its own check (the service's "empty answer" signal) is the answer's line.
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", rec(1, success=False, quality=0.0, quality_source="check"),
          rec(1, quality=1.0, quality_source="judge"))  # no label metadata: a duplicate of d1
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.duplicates) == (1, 0, 1)
    assert qualities(cur) == {"d1": (0.0, "check")}


def test_shadow_records_are_records_and_are_counted(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", rec(1))
    write(raw / "shadow" / "shadow-20260305T000000Z-0a1b2c3d.jsonl",
          rec(101, model="m2", propensity=1.0, shadow_of="d1", response="the other answer"),
          label(101, 1.0, "judge", model="m2", propensity=1.0, shadow_of="d1"))
    r = ingest(raw, cur)
    assert (r.ingested, r.feedback, r.shadow) == (2, 1, 1)
    df = read_curated(cur).sort("decision_id")
    assert df["shadow_of"].to_list() == [None, "d1"] and df["quality"].to_list() == [None, 1.0]


def test_directories_starting_with_an_underscore_are_not_outcome_logs(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    write(raw / "a.jsonl", rec(1))
    (raw / "_judge").mkdir(parents=True)
    (raw / "_judge" / "failures-20260305T000000Z.jsonl").write_text(json.dumps(
        {"ts": "2026-03-05T00:00:00Z", "decision_id": "d1", "judge": "j", "rubric_version": "r1",
         "error": "unparseable after one retry", "raw": "banana"}) + "\n")
    assert [p.name for p in log_files(raw)] == ["a.jsonl"]
    r = ingest(raw, cur)
    assert (r.files, r.ingested, r.quarantined) == (1, 1, 0)


def test_huge_answers_are_kept_and_non_utf8_ones_refused_with_a_reason_byte_for_byte(tmp_path):
    raw, cur = tmp_path / "raw", tmp_path / "cur"
    huge = json.dumps(rec(1, response="x" * (RESPONSE_MAX_CHARS + 1))).encode()  # a writer without the cap
    broken = json.dumps(rec(2, response="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"ok \xff\xfe")
    capped = json.dumps(rec(3, response="x" * RESPONSE_MAX_CHARS, response_truncated=True)).encode()
    too_long = json.dumps(rec(4, response="x" * (1 << 20))).encode()  # above the line limit
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(b"\n".join([huge, broken, capped, too_long]) + b"\n")
    r = ingest(raw, cur)
    assert (r.ingested, r.quarantined) == (2, 2) and r.reasons == {"line": 2}
    q = [json.loads(x) for x in open(r.quarantine_file)]
    assert "invalid UTF-8" in q[0]["reason"] and "oversized" in q[1]["reason"]
    import base64
    assert [base64.b64decode(x["raw_base64"]) for x in q] == [broken, too_long]  # nothing lost
    kept = read_curated(cur).sort("decision_id")
    assert kept["decision_id"].to_list() == ["d1", "d3"] and kept["response_truncated"].to_list() == [False, True]
    assert kept["response"].str.len_chars().to_list() == [RESPONSE_MAX_CHARS + 1, RESPONSE_MAX_CHARS]
