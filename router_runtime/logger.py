"""Append-only outcome log: OutcomeRecord lines in JSONL files, rotated by size and age.

Each logger writes its own files, ``outcomes-<UTC start>-<pid>-<random>-<n>.jsonl``, inside one
directory, so several processes (or several loggers in one process) can log into the same directory
without sharing a file: the random part tells same-pid loggers apart, and files are created with
``O_EXCL``, so a logger never appends to a file it did not create.  Inside a process, a lock
serialises writers and every line goes out in one ``os.write`` on an ``O_APPEND`` descriptor: a crash
loses at most the line being written, and a torn last line is quarantined by ingestion, never fatal.
A write that fails half-way (a full disk) closes the file, so the next line starts a fresh one
instead of being glued onto the torn half.

``RecordFile`` is the same guarantee for a batch writer (shadow replay, a judge): one new file
``<prefix>-<UTC yyyymmddTHHMMSSZ>-<8 hex>.jsonl`` per run, whole lines, fsync of the file and its
directory on ``close``.

Every line either writes fits ``MAX_LINE_BYTES``, the limit ingestion accepts: a record whose line would not (a
megabyte prompt, a huge error message) is written with its longest text cut to fit and says so in the field
``truncated`` (``{"query": <original code points>, ...}``); a cut query keeps its identity in
``query_sha256`` (of the whole text).  The features the router uses read at most the feature spec's
``max_chars`` of a query, far below the cut, so the record still trains the same.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from .errors import ContractError
from .records import MAX_LINE_BYTES, OutcomeRecord

__all__ = ["OutcomeLogger", "RecordFile"]


class OutcomeLogger:
    def __init__(self, directory: str | os.PathLike, *, max_bytes: int = 64 << 20, max_age_s: float = 3600.0,
                 fsync: bool = False):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._size = 0
        self._n = 0
        # pid + second + counter is not unique: two loggers in one process (or a pid reused within
        # the same second) would otherwise pick the same name and interleave their files.
        self._token = secrets.token_hex(4)

    @property
    def path(self) -> Path | None:
        """The file currently written to (None before the first record)."""
        return self._path

    def _open(self) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        while True:
            self._n += 1
            path = self.directory / f"outcomes-{stamp}-{os.getpid()}-{self._token}-{self._n}.jsonl"
            try:  # O_EXCL: never continue a file someone else (or a crashed run) may be writing
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            break
        self._path = path
        self._opened_at = time.monotonic()
        self._size = 0

    def write(self, record: OutcomeRecord) -> None:
        data = record.to_line().encode("utf-8")
        if len(data) > MAX_LINE_BYTES:
            data = fit_line(record).to_line().encode("utf-8")
        with self._lock:
            if self._fd is not None and (self._size + len(data) > self.max_bytes
                                         or time.monotonic() - self._opened_at > self.max_age_s):
                os.close(self._fd)
                self._fd = None
            if self._fd is None:
                self._open()
            try:
                _write_all(self._fd, data)
                if self.fsync:
                    os.fsync(self._fd)
            except BaseException:
                # Part of the line may be on disk: appending the next line to it would make that
                # one unparseable too.  Drop this file; the next write opens a new one.
                fd, self._fd = self._fd, None
                try:
                    os.close(fd)
                except OSError:
                    pass
                raise
            self._size += len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "OutcomeLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # os.write may write less than asked (signals, full disks)
        n = os.write(fd, view)
        view = view[n:]


class RecordFile:
    """One new JSONL file of records written by one batch run, in ``directory``.

    Created with ``O_EXCL`` (never someone else's file) on the first ``write``; each record is one
    ``os.write`` on an ``O_APPEND`` descriptor, so a crash loses at most the line being written and
    every earlier line is whole.  ``close`` fsyncs the file and its directory.  Not thread-safe: one
    batch writer owns it."""

    def __init__(self, directory: str | os.PathLike, prefix: str):
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"prefix must be a plain file name part, got {prefix!r}")
        self.directory = Path(directory)
        self.prefix = prefix
        self.path: Path | None = None
        self.lines = 0
        self._fd: int | None = None

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        while True:
            path = self.directory / f"{self.prefix}-{stamp}-{secrets.token_hex(4)}.jsonl"
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            self.path = path
            return

    def write(self, record: OutcomeRecord) -> None:
        line = record.to_line()
        if len(line.encode("utf-8")) > MAX_LINE_BYTES:
            line = fit_line(record).to_line()
        self.write_line(line)

    def write_line(self, line: str) -> None:
        """One whole line of JSON that is not a record (a judge's failure report, say)."""
        if not line.endswith("\n") or "\n" in line[:-1]:
            raise ValueError("write_line takes exactly one line, ending with a newline")
        if self._fd is None:
            self._open()
        _write_all(self._fd, line.encode("utf-8"))
        self.lines += 1

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def __enter__(self) -> "RecordFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _line_bytes(record: OutcomeRecord) -> int:
    return len(record.to_line().encode("utf-8"))


def _cut_text(record: OutcomeRecord, name: str, cut: dict) -> OutcomeRecord:
    """``record`` with text field ``name`` cut to the longest prefix whose line fits (None if none does)."""
    text = getattr(record, name)
    if text is None:
        return record
    changes: dict = {}
    if name == "query" and record.query_sha256 is None:
        changes["query_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    flagged = {**record.extra, "truncated": {**cut, name: len(text)}}
    # Escapes make JSON longer than the text (a control character is six bytes): search the prefix.
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        trial = replace(record, **changes, **{name: text[:mid]}, extra=flagged)
        if _line_bytes(trial) <= MAX_LINE_BYTES:
            lo = mid
        else:
            hi = mid - 1
    cut[name] = len(text)
    return replace(record, **changes, **{name: text[:lo] or None}, extra=flagged)


def fit_line(record: OutcomeRecord) -> OutcomeRecord:
    """A copy of ``record`` whose line fits MAX_LINE_BYTES: its longest text cut first (query, error)."""
    cut: dict = {}
    for name in sorted(("query", "error"), key=lambda n: -len(getattr(record, n) or "")):
        if _line_bytes(record) <= MAX_LINE_BYTES:
            return record
        record = _cut_text(record, name, cut)
    if _line_bytes(record) > MAX_LINE_BYTES:
        raise ContractError("record", f"does not fit one log line of {MAX_LINE_BYTES} bytes even without its "
                                      "text (its candidates, scores or extra fields are too large)")
    return record
