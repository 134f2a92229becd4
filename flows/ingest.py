"""Ingestion: raw outcome logs (JSONL) → the curated store (``flows.curated``), incrementally.

Every line is validated against OutcomeRecord v1 (``flows.validate``).  A bad line is written, byte
for byte (``raw_base64``) and readable (``raw``), to ``<curated>/_quarantine/<run>.jsonl`` with the
file, the line number and the reason; nothing is silently dropped.  Records whose ``decision_id`` was
already ingested (in this run or an earlier one) are counted as duplicates and skipped; the first one
wins.  Label lines (a user's feedback, a check's or a judge's grade: ``flows.labels``) go to the label
table instead, deduplicated on (decision_id, ts, quality, quality_source).  ``IngestResult.feedback``
counts the label lines taken (``labels``: per quality_source), ``feedback_unmatched`` the decision_ids
in the label table without a record of their own; every non-blank line is exactly one of ingested,
feedback, quarantined or duplicate.  ``records``: the records ingested by this run by the label they
carry (their own quality_source; a failed call without one "check", else "unlabeled");
``shadow``: how many of them are shadow records.

Incremental and idempotent: ``<curated>/_state/ingest.json`` remembers, per file, the byte offset up
to which complete lines were consumed, and the file's identity: its inode and a fingerprint (sha256)
of its first bytes (up to ``HEAD_BYTES``).  A re-run reads only what was appended since; a new file is
picked up.  A file whose identity changed under its name (truncated in place by copytruncate, deleted
and recreated, rewritten) is read again from the start, whatever its size: the size alone cannot
tell a truncated file that grew past its old offset.  A file renamed away (rotation) is recognised
by its inode and fingerprint under its new name and keeps its offset.  The Parquet partitions and label
files are written (temp file, rename) before the state moves, so a crash in between re-reads those
lines next time and the decision_id check (for labels: the (decision_id, ts, quality, quality_source)
check) turns them into duplicates.

A last line without its newline is left pending while its file may still be written (modified within
``settle_seconds``); after that it is taken as it is, so a torn line from a crashed writer ends up in
quarantine instead of blocking ingestion forever.

Scale: a run is planned (``plan_ingest``) as units of at most ``unit_bytes`` of a file, cut at line
boundaries; each unit (``ingest_unit``) validates its lines and stages Parquet files, independently of
the others, so units can be mapped over a task runner (threads, or Dask workers sharing the
filesystem); ``commit_ingest`` then drops duplicates across units and earlier runs, moves the staged
files into the day partitions and the label table, and saves the state.  One ingest at a time:
the whole run, from reading the state to writing it, holds the curated store's lock
(``router_runtime._lock``); a second one is refused with the holder's pid.

The readers of the curated store and the line validator live in their own modules; this module
re-exports them (``from flows.ingest import read_curated, validate_lines, ...`` keeps working).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import polars as pl

from router_runtime._atomic import atomic_write
from router_runtime._lock import exclusive
from router_runtime.errors import ContractError

from .curated import (_LINE, CURATED_SCHEMA, LABELS_DIR, PARQUET_COMPRESSION, _curated_parts, _feedback_parts,
                      _unmatched_feedback_ids, curated_row, curated_training_table, read_curated, scan_curated,
                      scan_feedback, scan_labels, scan_parts, training_columns)
from .labels import is_feedback, is_label, label_key, training_quality
from .logs import log_files
from .validate import validate_lines

__all__ = ["IngestResult", "IngestPlan", "IngestUnit", "UnitResult", "ingest_logs", "plan_ingest", "ingest_unit",
           "commit_ingest", "staging_dir", "clean_stale_staging", "validate_lines", "read_curated", "scan_curated",
           "curated_row", "training_columns", "curated_training_table", "CURATED_SCHEMA", "scan_feedback", "scan_labels",
           "is_feedback", "is_label"]

STATE_FILE = Path("_state") / "ingest.json"
QUARANTINE_DIR = "_quarantine"
STAGING_DIR = "_staging"
UNIT_BYTES = 256 << 20     # the work of one task: a file is cut into units of about this size
BLOCK_BYTES = 32 << 20     # a unit is read and validated this much at a time: bounds a worker's memory
HEAD_BYTES = 4096          # the fingerprint of a log file: the sha256 of its first bytes (at most this many)


@dataclass
class IngestResult:
    files: int = 0
    new_files: int = 0
    lines: int = 0
    ingested: int = 0
    quarantined: int = 0
    duplicates: int = 0
    feedback: int = 0               # label lines (user feedback, checks, judges) taken into the label table
    feedback_unmatched: int = 0     # decision_ids in the label table without a record of their own (yet)
    labels: dict[str, int] = field(default_factory=dict)   # label lines taken, per quality_source
    records: dict[str, int] = field(default_factory=dict)  # records ingested, per label they carry (or "unlabeled")
    shadow: int = 0                 # shadow records ingested (shadow_of set)
    pending_bytes: int = 0          # incomplete last lines left for a later run
    partitions: list[str] = field(default_factory=list)
    quarantine_file: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # quarantine reason (field) -> count
    fast_path_lines: int = 0        # lines accepted by the vectorized validator (the rest: Python)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IngestUnit:
    """Bytes [start, end) of one log file; ``final``: a last line without newline is taken as it is."""
    index: int
    path: str
    start: int
    end: int
    final: bool


@dataclass
class UnitResult:
    index: int
    lines: int = 0                  # lines split (blank ones included: they count for line numbers)
    nonblank: int = 0
    consumed: int = 0               # bytes of complete lines, from the unit's start
    ingested: int = 0               # valid and not a duplicate inside the unit
    duplicates: int = 0
    feedback: int = 0               # label lines, not a duplicate inside the unit
    fast: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # line numbers local to the unit
    staged: list[str] = field(default_factory=list)
    feedback_staged: list[str] = field(default_factory=list)


@dataclass
class IngestPlan:
    curated: str
    run: str
    units: list[IngestUnit]
    state: dict[str, Any]            # the new state, offsets still to be set from the units' results
    base_lines: dict[str, int]       # per file: lines consumed before this run
    result: IngestResult


# ---------------------------------------------------------------------------------------------- state

def _load_state(curated: Path) -> dict[str, Any]:
    p = curated / STATE_FILE
    if not p.exists():
        return {"version": 1, "files": {}}
    try:
        state = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError("ingest_state", f"unreadable state file {p}: {exc}") from None
    if state.get("version") != 1 or not isinstance(state.get("files"), dict):
        raise ContractError("ingest_state", f"unknown state format in {p}")
    return state


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


# ------------------------------------------------------------------------------------------- units

def _split_lines(data: bytes, final: bool) -> tuple[list[bytes], int]:
    """Complete lines of ``data`` and how many bytes they span (the rest is a pending tail)."""
    end = data.rfind(b"\n") + 1
    if final and end < len(data):
        end = len(data)
    return data[:end].splitlines(), end


def ingest_unit(unit: IngestUnit, staging: str, *, known_models: frozenset[str] | None = None,
                max_batch_rows: int = 200_000, fast: bool = True) -> UnitResult:
    """Validate one unit's lines and stage its valid, unit-unique rows as Parquet files (one per day).

    The unit is read ``BLOCK_BYTES`` at a time and staged every ``max_batch_rows`` rows, so a worker
    holds about one block and one batch whatever the unit's size.
    """
    out = UnitResult(unit.index)
    stage = Path(staging)
    pending: list[pl.DataFrame] = []
    pending_feedback: list[pl.DataFrame] = []
    seen: list[pl.Series] = []
    seen_feedback: list[pl.Series] = []
    n_pending = 0

    def flush() -> None:
        nonlocal n_pending
        if pending_feedback:
            path = stage / LABELS_DIR / f"u{unit.index:06d}-{len(out.feedback_staged):04d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pl.concat(pending_feedback).write_parquet(path, compression=PARQUET_COMPRESSION)
            pending_feedback.clear()
            out.feedback_staged.append(str(path))
        if not pending:
            return
        frame = pl.concat(pending)
        pending.clear()
        n_pending = 0
        for (day,), part in frame.partition_by("day", as_dict=True, maintain_order=True).items():
            path = stage / f"day={day}" / f"u{unit.index:06d}-{len(out.staged):04d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            part.write_parquet(path, compression=PARQUET_COMPRESSION)
            out.staged.append(str(path))

    def process(lines: list[bytes]) -> None:
        nonlocal n_pending
        numbers = [out.lines + i for i, x in enumerate(lines, start=1) if x.strip()]
        block = [lines[n - out.lines - 1] for n in numbers]
        out.lines += len(lines)
        out.nonblank += len(block)
        if not block:
            return
        frame, q, n_fast = validate_lines(block, numbers, unit.path, known_models=known_models, fast=fast)
        out.fast += n_fast
        out.quarantine.extend(q)
        fb = frame.select(is_label().alias("fb"))["fb"]
        if fb.any():  # label lines go their own way: they never take the place of an answer's line
            feedback = frame.filter(fb).drop(_LINE)
            frame = frame.filter(~fb)
            key = feedback.select(label_key().alias("key"))["key"]
            first_fb = key.is_first_distinct()
            if seen_feedback:
                first_fb &= ~key.is_in(pl.concat(seen_feedback).implode())
            out.duplicates += len(feedback) - int(first_fb.sum())
            out.feedback += int(first_fb.sum())
            seen_feedback.append(key.filter(first_fb))
            pending_feedback.append(feedback.filter(first_fb))
        first = frame["decision_id"].is_first_distinct()
        if seen:
            first &= ~frame["decision_id"].is_in(pl.concat(seen).implode())
        kept = frame.filter(first).drop(_LINE)
        out.duplicates += len(frame) - len(kept)
        out.ingested += len(kept)
        seen.append(kept["decision_id"])
        pending.append(kept)
        n_pending += len(kept)
        if n_pending >= max_batch_rows:
            flush()

    with open(unit.path, "rb") as f:
        f.seek(unit.start)
        remaining, carry = unit.end - unit.start, b""
        while remaining > 0:
            data = carry + f.read(min(BLOCK_BYTES, remaining))
            remaining = unit.end - unit.start - (f.tell() - unit.start)
            if remaining > 0:  # cut after the last newline; the rest waits for the next block
                cut = data.rfind(b"\n") + 1
                carry = data[cut:]
                process(data[:cut].splitlines())
            else:
                lines, consumed = _split_lines(data, unit.final)
                out.consumed = unit.end - unit.start - (len(data) - consumed)
                process(lines)
    flush()
    _release_memory()
    return out


def _release_memory() -> None:
    """Give freed memory back to the OS (pyarrow's pool, glibc's arenas): worker threads otherwise keep
    the high-water mark of every block they parsed, and the stages after ingestion start from it."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cut(f, start: int, size: int, unit_bytes: int) -> list[int]:
    """Cut points after ``start`` at line ends, about ``unit_bytes`` apart."""
    cuts, pos = [], start
    while size - pos > unit_bytes:
        f.seek(pos + unit_bytes)
        probe = pos + unit_bytes
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                return cuts
            i = chunk.find(b"\n")
            if i >= 0:
                pos = probe + i + 1
                break
            probe += len(chunk)
        if pos >= size:
            break
        cuts.append(pos)
    return cuts


def plan_ingest(raw: str | os.PathLike, curated: str | os.PathLike, *, settle_seconds: float = 60.0,
                unit_bytes: int = UNIT_BYTES) -> IngestPlan:
    """What is new under ``raw``, as units of at most ``unit_bytes`` (cut at line ends)."""
    cur = Path(curated)
    state = _load_state(cur)
    run = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    result = IngestResult()
    new_state = {k: dict(v) for k, v in state["files"].items()}
    try:
        files = log_files(raw)
    except FileNotFoundError:
        files = []
    units: list[IngestUnit] = []
    base: dict[str, int] = {}
    now = time.time()
    known = state["files"]  # as the last run left it: new_state changes while files are planned
    renamed = _by_identity(known)
    for path in files:
        if cur.resolve() in path.resolve().parents:
            continue  # never re-ingest our own quarantine files
        key = str(path.resolve())
        st = path.stat()
        head = _head(path)
        prev = known.get(key)
        if prev is not None and not _same_file(prev, st, head):
            prev = None  # another file under the same name: copytruncate, delete and recreate, rewrite
        if prev is None:
            # A file renamed here from a name the state knows keeps that name's offset and lines.
            old = renamed.get((st.st_dev, st.st_ino))
            if old is not None and _same_file(known[old], st, head) and not _still_there(old, st):
                prev = known[old]
        offset, line_no = (prev["offset"], prev["lines"]) if prev else (0, 0)
        if prev is None:
            result.new_files += 1
        elif st.st_size < offset:  # truncated or replaced in place: read it again from the start
            offset, line_no = 0, 0
        result.files += 1
        base[key] = line_no
        new_state[key] = {"offset": offset, "lines": line_no, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                          "dev": st.st_dev, "ino": st.st_ino, "head_bytes": len(head),
                          "head_sha256": hashlib.sha256(head).hexdigest()}
        if st.st_size == offset:
            continue
        with open(path, "rb") as f:
            bounds = [offset, *_cut(f, offset, st.st_size, unit_bytes), st.st_size]
        settled = now - st.st_mtime >= settle_seconds
        for a, b in zip(bounds, bounds[1:]):
            units.append(IngestUnit(len(units), key, a, b, final=settled and b == st.st_size))
    return IngestPlan(str(cur), run, units, {"version": 1, "files": new_state}, base, result)


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(HEAD_BYTES)


def _same_file(entry: dict[str, Any], st: os.stat_result, head: bytes) -> bool:
    """Is the file (``st``, its first bytes ``head``) the one ``entry`` describes?  States written
    before identities were recorded have none: for them only the size check of the caller applies."""
    if "ino" not in entry:
        return True
    if (entry["dev"], entry["ino"]) != (st.st_dev, st.st_ino):
        return False
    n = entry["head_bytes"]
    return len(head) >= n and hashlib.sha256(head[:n]).hexdigest() == entry["head_sha256"]


def _by_identity(files: dict[str, dict[str, Any]]) -> dict[tuple[int, int], str]:
    return {(e["dev"], e["ino"]): k for k, e in files.items() if "ino" in e}


def _still_there(key: str, st: os.stat_result) -> bool:
    """True when ``key`` still names the file ``st`` (a hard link, not a rename)."""
    try:
        other = os.stat(key)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _known_ids(curated: Path) -> pl.Series:
    parts = _curated_parts(curated)
    if not parts:
        return pl.Series("decision_id", [], dtype=pl.String)
    return scan_parts(parts).select("decision_id").collect()["decision_id"]


def _move_staged(staged: Sequence[str], known: pl.Series, key: pl.Expr,
                 dest: Callable[[int, str], Path]) -> tuple[int, list[str]]:
    """Move the staged files to ``dest(i, src)`` without the rows whose ``key`` is ``known`` or staged
    earlier (a filtered file is written to a temp file, then renamed).  Returns (rows dropped, paths)."""
    ids = pl.concat([pl.scan_parquet(p).select(key.alias("key"), pl.lit(i, pl.Int32).alias("k"),
                                               pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"))
                     for i, p in enumerate(staged)]).collect()
    dup = pl.concat([known.rename("key"), ids["key"]]).is_first_distinct().not_().slice(len(known))
    drop = ids.filter(dup).select("k", "row")
    del ids, known
    dropped = {staged[k]: g["row"] for (k,), g in drop.group_by("k")}
    written: list[str] = []
    for i, src in enumerate(staged):
        path = dest(i, src)
        path.parent.mkdir(parents=True, exist_ok=True)
        if src in dropped:
            frame = pl.read_parquet(src).with_row_index("__zeta_row")
            keep = ~pl.col("__zeta_row").is_in(dropped[src].cast(pl.UInt32).implode())
            frame = frame.filter(keep).drop("__zeta_row")
            if frame.is_empty():
                continue
            tmp = path.with_name(f".{path.name}.tmp")
            frame.write_parquet(tmp, compression=PARQUET_COMPRESSION)
            os.replace(tmp, path)
        else:
            os.replace(src, path)
        written.append(str(path))
    return len(drop), written


def commit_ingest(plan: IngestPlan, results: Sequence[UnitResult]) -> IngestResult:
    """Drop duplicates across units and earlier runs, move the staged files in, then save the state."""
    cur, result = Path(plan.curated), plan.result
    by_index = {r.index: r for r in results}
    files = plan.state["files"]
    line_base = dict(plan.base_lines)
    quarantine: list[dict[str, Any]] = []
    staged: list[str] = []
    feedback_staged: list[str] = []
    for unit in plan.units:  # in plan order: file order, then offset, which is line order
        r = by_index[unit.index]
        base = line_base[unit.path]
        for q in r.quarantine:
            quarantine.append({**q, "line": q["line"] + base})
            result.reasons[q["field"]] = result.reasons.get(q["field"], 0) + 1
        line_base[unit.path] = base + r.lines
        files[unit.path]["offset"] = unit.start + r.consumed
        files[unit.path]["lines"] = base + r.lines
        result.pending_bytes += (unit.end - unit.start) - r.consumed
        result.lines += r.nonblank
        result.quarantined += len(r.quarantine)
        result.duplicates += r.duplicates
        result.ingested += r.ingested
        result.feedback += r.feedback
        result.fast_path_lines += r.fast
        staged.extend(r.staged)
        feedback_staged.extend(r.feedback_staged)
    if staged:
        # The first occurrence wins: earlier runs, then units in order (inside a unit there are none left).
        dropped, written = _move_staged(
            staged, _known_ids(cur), pl.col("decision_id"),
            lambda i, src: cur / Path(src).parent.name / f"part-{plan.run}-{i}.parquet")
        result.partitions.extend(written)
        result.duplicates += dropped
        result.ingested -= dropped
    if feedback_staged:  # the same for labels, on (decision_id, ts, quality, quality_source)
        fb_parts = _feedback_parts(cur)
        known = (scan_parts(fb_parts).select(label_key().alias("key")).collect()["key"] if fb_parts
                 else pl.Series("key", [], dtype=pl.String))
        dropped, label_files = _move_staged(feedback_staged, known, label_key(),
                                            lambda i, src: cur / LABELS_DIR / f"part-{plan.run}-{i}.parquet")
        result.duplicates += dropped
        result.feedback -= dropped
        if label_files:
            result.labels = _counts(scan_parts(label_files).select("quality_source"), "quality_source")
    if result.partitions:
        _, source = training_quality()
        taken = scan_parts(result.partitions).select(source.fill_null("unlabeled"), "shadow_of")
        result.records = _counts(taken, "quality_source")
        result.shadow = int(taken.select(pl.col("shadow_of").is_not_null().sum()).collect().item())
    result.feedback_unmatched = len(_unmatched_feedback_ids(cur))
    if quarantine:
        qpath = cur / QUARANTINE_DIR / f"{plan.run}.jsonl"
        _atomic_write(qpath, b"".join((json.dumps(q, ensure_ascii=False) + "\n").encode() for q in quarantine))
        result.quarantine_file = str(qpath)
    # Only now does the state move: data first, bookkeeping second (see the module docstring).
    _atomic_write(cur / STATE_FILE, json.dumps(plan.state, indent=1).encode())
    shutil.rmtree(cur / STAGING_DIR / plan.run, ignore_errors=True)
    _release_memory()
    return result


def _counts(lf: pl.LazyFrame, column: str) -> dict[str, int]:
    return dict(lf.group_by(column).len().sort(column).collect().iter_rows())


def staging_dir(plan: IngestPlan) -> str:
    return str(Path(plan.curated) / STAGING_DIR / plan.run)


def clean_stale_staging(curated: str | os.PathLike) -> list[str]:
    """Remove what killed runs staged (``_staging/<run>/``); call it holding the curated store's lock,
    when no other run can be staging.  Their lines were never committed: this run reads them again."""
    root = Path(curated) / STAGING_DIR
    stale = sorted(p for p in root.iterdir()) if root.is_dir() else []
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return [p.name for p in stale]


def ingest_logs(raw: str | os.PathLike, curated: str | os.PathLike, *, settle_seconds: float = 60.0,
                known_models: Iterable[str] | None = None, max_batch_rows: int = 500_000,
                unit_bytes: int = UNIT_BYTES, fast: bool = True,
                map_units: Callable[[Callable[[IngestUnit], UnitResult], list[IngestUnit]], list[UnitResult]]
                | None = None) -> IngestResult:
    """Ingest everything new under ``raw`` into ``curated``; see the module docstring.

    ``map_units(fn, units)`` runs the units (default: one after the other, in this process); the
    production flow passes a mapping over its Prefect task runner.
    """
    models = None if known_models is None else frozenset(known_models)
    with exclusive(curated, "curated store"):  # from the state read to the state write: one ingest at a time
        clean_stale_staging(curated)
        plan = plan_ingest(raw, curated, settle_seconds=settle_seconds, unit_bytes=unit_bytes)
        stage = staging_dir(plan)

        def one(unit: IngestUnit) -> UnitResult:
            return ingest_unit(unit, stage, known_models=models, max_batch_rows=max_batch_rows, fast=fast)

        results = (map_units or (lambda fn, us: [fn(u) for u in us]))(one, plan.units)
        return commit_ingest(plan, results)
