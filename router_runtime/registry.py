"""The artifact registry: its whole layout, the CURRENT pointer, and promotions with a history.
Standard library only.  Every module that touches a registry (artifact.py, flows) takes its paths
from here::

    <root>/CURRENT                   one line: the current version name
    <root>/versions/<version>/       router.json, manifest.json (an artifact, see artifact.py)
    <root>/reports/<version>.json    a promotion decision and its evaluation (written by flows)
    <root>/reports/judge-validation-<judge>.json
                                     the latest measured agreement of a judge model with known
                                     qualities (``zeta judge --validate``), read into the manifest
                                     of artifacts trained on that judge's labels
    <root>/HISTORY.jsonl             one line per move of CURRENT

CURRENT is replaced atomically (``router_runtime._atomic``), so a crash leaves the old or the new
pointer, never a torn one.  Every move of the pointer appends one line to HISTORY.jsonl
(``{"ts", "action", "version", "previous", "reason"}``), so a rollback knows where to go back to
and a person can see who moved what, when and why.  The history line is written after the pointer
moves, so a crash in between leaves a valid CURRENT and, at worst, one missing history line
(``rollback`` then falls back to the manifest's parent_version).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._atomic import atomic_write
from ._files import read_regular_file
from ._lock import exclusive
from .errors import ArtifactError, ArtifactNotFoundError, ContractError

__all__ = [
    "CURRENT_FILE", "VERSIONS_DIR", "REPORTS_DIR", "HISTORY_FILE", "ROUTER_FILE", "MANIFEST_FILE",
    "versions_dir", "version_dir", "current_file", "reports_dir", "report_path", "history_file",
    "JUDGE_VALIDATION_PREFIX", "judge_validation_path",
    "check_version_name", "new_version_name", "current_version", "set_current", "list_versions",
    "resolve_artifact_dir", "history", "promote", "rollback", "rollback_target", "annotate_manifest",
]

CURRENT_FILE = "CURRENT"
VERSIONS_DIR = "versions"
REPORTS_DIR = "reports"
HISTORY_FILE = "HISTORY.jsonl"
ROUTER_FILE = "router.json"        # the two files of a version directory
MANIFEST_FILE = "manifest.json"
# A version name is one plain path component: it is joined under versions/ and written into CURRENT,
# so "..", "a/b", a leading dot (temp dirs), NUL or whitespace would escape the registry or break it.
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MANIFEST_OWNED = ("manifest_version", "artifact_version", "format_version", "files")
MAX_POINTER_BYTES = 4096  # CURRENT holds one version name


# -- the layout ------------------------------------------------------------------------------------

def versions_dir(root: str | os.PathLike) -> Path:
    return Path(root) / VERSIONS_DIR


def version_dir(root: str | os.PathLike, version: str) -> Path:
    return Path(root) / VERSIONS_DIR / check_version_name(version, "version")


def current_file(root: str | os.PathLike) -> Path:
    return Path(root) / CURRENT_FILE


def reports_dir(root: str | os.PathLike) -> Path:
    return Path(root) / REPORTS_DIR


def report_path(root: str | os.PathLike, version: str) -> Path:
    return Path(root) / REPORTS_DIR / f"{check_version_name(version, 'version')}.json"


def history_file(root: str | os.PathLike) -> Path:
    return Path(root) / HISTORY_FILE


JUDGE_VALIDATION_PREFIX = "judge-validation-"


def judge_validation_path(root: str | os.PathLike, judge: str) -> Path:
    """Where the latest validation of judge model ``judge`` is kept.  A model name that is not one plain
    file name part (``llama3:8b``, ``org/model``) is written with those characters as ``_`` and the
    first 8 hex of the name's sha256, so two names never share a file."""
    if not isinstance(judge, str) or not judge:
        raise ContractError("judge", f"must be a model name, got {judge!r}")
    part = judge if _VERSION_NAME.fullmatch(judge) else (
        re.sub(r"[^A-Za-z0-9._-]", "_", judge)[:100] + "-" + hashlib.sha256(judge.encode("utf-8")).hexdigest()[:8])
    return reports_dir(root) / f"{JUDGE_VALIDATION_PREFIX}{part}.json"


def check_version_name(version: Any, where: str = "version") -> str:
    if not isinstance(version, str) or not _VERSION_NAME.fullmatch(version):
        raise ContractError(where, f"must be a plain version name ([A-Za-z0-9][A-Za-z0-9._-]*, "
                                   f"at most 128 characters), got {version!r}")
    return version


def new_version_name(router_bytes: bytes, now: datetime | None = None) -> str:
    """``<UTC time>-<first 8 hex of the router.json sha256>``: sorts by time, names the content."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{hashlib.sha256(router_bytes).hexdigest()[:8]}"


# -- the pointer -----------------------------------------------------------------------------------

def current_version(root: str | os.PathLike) -> str | None:
    """The version CURRENT points to, or None when there is no pointer yet."""
    p = current_file(root)
    try:
        # The guarded read: a FIFO, a device or a link put in CURRENT's place is refused, not waited on.
        text = read_regular_file(p, limit=MAX_POINTER_BYTES).decode("utf-8").strip()
    except ArtifactNotFoundError:
        return None
    except (ArtifactError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"unreadable CURRENT pointer: {exc}", path=str(p)) from None
    if not _VERSION_NAME.fullmatch(text):  # also refuses NUL bytes, which would crash stat()
        raise ArtifactError(f"CURRENT holds an invalid version name {text!r}", path=str(p))
    return text


def set_current(root: str | os.PathLike, version: str) -> None:
    """Point CURRENT at ``version`` atomically, after checking the version loads."""
    # artifact.py builds on this module's layout, so the loader is imported when a pointer moves.
    from .artifact import load_artifact

    # A name current_version() would refuse ("..", "a/b") must never be written into CURRENT;
    # "..", joined under versions/, would even resolve to the registry root and "load".
    load_artifact(version_dir(root, version))  # never point at something unloadable
    atomic_write(current_file(root), version + "\n")


def list_versions(root: str | os.PathLike) -> list[str]:
    """Version names in the registry, oldest first (names start with a UTC timestamp)."""
    d = versions_dir(root)
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def resolve_artifact_dir(path: str | os.PathLike) -> Path:
    """A version directory from a version dir, a ``router.json`` path, or a registry root (via CURRENT)."""
    p = Path(path)
    if p.is_file() and p.name == ROUTER_FILE:
        return p.parent
    if (p / ROUTER_FILE).exists() or (p / MANIFEST_FILE).exists():
        return p
    if current_file(p).exists() or versions_dir(p).is_dir():
        version = current_version(p)
        if version is None:
            raise ArtifactNotFoundError("registry has no CURRENT version", path=str(p))
        d = versions_dir(p) / version
        # A version directory may be a link (an operator's layout) but must stay inside versions/:
        # the registry is what was trained and promoted here, not whatever a link points at.
        inside = os.path.realpath(versions_dir(p))
        if os.path.commonpath([inside, os.path.realpath(d)]) != inside:
            raise ArtifactError(f"version {version} is a link out of the registry ({os.path.realpath(d)}): refused",
                                path=str(d))
        return d
    raise ArtifactNotFoundError("no artifact here (no router.json and no registry CURRENT)", path=str(p))


# -- promotions and their history ------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def history(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Pointer moves, oldest first; unreadable lines (a torn last line) are skipped."""
    p = history_file(root)
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("version"), str):
            out.append(entry)
    return out


def _append_history(root: Path, entry: dict[str, Any]) -> None:
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(history_file(root), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def promote(root: str | os.PathLike, version: str, *, reason: str, action: str = "promote") -> str | None:
    """Point CURRENT at ``version`` (after verifying it loads) and record why.  Returns the previous version."""
    root = Path(root)
    with exclusive(root, "registry"):  # "previous" must still be current when the pointer moves
        previous = current_version(root)
        set_current(root, version)
        _append_history(root, {"ts": _now(), "action": action, "version": version, "previous": previous,
                               "reason": reason})
    return previous


def rollback_target(root: str | os.PathLike, version: str) -> str | None:
    """The version ``rollback`` would go back to from ``version``: the one current before ``version``
    was last promoted (from the history), else its manifest's parent_version; None when neither."""
    # Walk back along promotions only: rolling back twice goes two promotions back, not to and fro.
    for entry in reversed(history(root)):
        if entry["version"] == version and entry.get("action") == "promote" and entry.get("previous"):
            return entry["previous"]
    try:
        manifest = json.loads((versions_dir(root) / version / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    parent = manifest.get("parent_version") if isinstance(manifest, dict) else None
    return parent if isinstance(parent, str) and parent else None


def rollback(root: str | os.PathLike, *, reason: str = "manual rollback") -> str:
    """Move CURRENT back to the version that was current before the current one was promoted
    (from the history, else the manifest's parent_version).  Returns that version."""
    root = Path(root)
    with exclusive(root, "registry"):
        return _rollback(root, reason)


def _rollback(root: Path, reason: str) -> str:
    cur = current_version(root)
    if cur is None:
        raise ArtifactNotFoundError("nothing to roll back: the registry has no CURRENT", path=str(root))
    target = rollback_target(root, cur)
    if not target:
        raise ArtifactError(f"no earlier version to roll back to from {cur}", path=str(root))
    promote(root, target, reason=reason, action="rollback")
    return target


def annotate_manifest(version_dir: str | os.PathLike, key: str, value: Any) -> None:
    """Add or replace one provenance key of a version's manifest (atomically).

    Only keys that describe what happened to the version (promotion decisions, evaluations) belong
    here; the keys that describe its files are the exporter's and are refused.
    """
    if key in _MANIFEST_OWNED:
        raise ContractError(f"manifest.{key}", "is written by write_artifact; not annotatable")
    path = Path(version_dir) / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest[key] = value
    atomic_write(path, json.dumps(manifest, ensure_ascii=False, indent=1, allow_nan=False, default=str) + "\n")
