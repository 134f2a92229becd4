"""What the judge writes: label lines beside the logs, judge failures apart from them.

- ``<logs>/labels/judge-<UTC yyyymmddTHHMMSSZ>-<8 hex>.jsonl``: label lines.  A label line is a full
  copy of the graded record's line (same decision_id and fields) with ``quality``, ``quality_source``
  "judge", ``ts`` = when the label was made, and ``label`` metadata (judge, rubric version and sha256,
  mode, raw reply, score and scale).  Ingestion merges it onto its record (user > check > judge).
- ``<logs>/_judge/failures-<UTC stamp>-<8 hex>.jsonl``: one JSON object per verdict that has no
  quality (unusable twice, the backend failed, the two pairwise orders disagreed):
  ``{ts, decision_id, judge, rubric_version, error, raw}`` and, for pairwise, ``other_decision_id``.
  Ingestion skips directories whose name starts with "_", so these are never read as outcomes.

Each run writes new files only, through ``router_runtime.logger.RecordFile`` (created with O_EXCL, so
no two writers share one; a whole line per ``os.write`` on an O_APPEND descriptor; fsynced when the run
closes them): a crash loses at most the line being written, and what was graded before it stays.  No
file is made for nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from router_runtime.ids import utc_now
from router_runtime.logger import RecordFile
from router_runtime.records import OutcomeRecord

__all__ = ["LABELS_DIR", "FAILURES_DIR", "JUDGE_SOURCE", "label_line", "JudgeWriter"]

LABELS_DIR = "labels"
FAILURES_DIR = "_judge"
JUDGE_SOURCE = "judge"
_HAS_LABEL_FIELD = "label" in {f.name for f in fields(OutcomeRecord)}


def label_line(rec: OutcomeRecord, quality: float, meta: dict[str, Any], *, ts: str | None = None) -> OutcomeRecord:
    """The label line of ``rec``: validated like every record (``OutcomeRecord`` checks itself)."""
    ts = ts or utc_now()
    if _HAS_LABEL_FIELD:
        return replace(rec, quality=quality, quality_source=JUDGE_SOURCE, ts=ts, label=meta)
    # A records module without the field keeps it as an unknown field, written back the same way.
    return replace(rec, quality=quality, quality_source=JUDGE_SOURCE, ts=ts, extra={**rec.extra, "label": meta})


class JudgeWriter:
    """The label and failure files of one judge run over ``logs``."""

    def __init__(self, logs: str | os.PathLike, judge: str):
        self.judge = judge
        self.labels = RecordFile(Path(logs) / LABELS_DIR, "judge")
        self.failures = RecordFile(Path(logs) / FAILURES_DIR, "failures")

    def label(self, rec: OutcomeRecord, quality: float, meta: dict[str, Any], *, ts: str | None = None) -> OutcomeRecord:
        line = label_line(rec, quality, {"judge": self.judge, **meta}, ts=ts)
        self.labels.write(line)
        return line

    def failure(self, decision_id: str, rubric_version: str, error: str, raw: Any, **more: Any) -> None:
        obj = {"ts": utc_now(), "decision_id": decision_id, "judge": self.judge, "rubric_version": rubric_version,
               "error": error, "raw": raw, **more}
        # The raw reply is whatever the model produced: keep it, made encodable, never refuse it.
        text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
        self.failures.write_line(text + "\n")

    def close(self) -> None:
        try:
            self.labels.close()
        finally:
            self.failures.close()

    def paths(self) -> dict[str, str | None]:
        return {"labels_file": None if self.labels.path is None else str(self.labels.path),
                "failures_file": None if self.failures.path is None else str(self.failures.path)}
