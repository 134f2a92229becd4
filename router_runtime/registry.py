"""Registry operations with a history: promote, roll back, annotate.  Standard library only.

Every move of the CURRENT pointer appends one line to ``<root>/HISTORY.jsonl``
(``{"ts", "action", "version", "previous", "reason"}``), so a rollback knows where to go back to and a
person can see who moved what, when and why.  The pointer itself moves with ``set_current`` (atomic);
the history line is written after it, so a crash in between leaves a valid CURRENT and, at worst, one
missing history line (``rollback`` then falls back to the manifest's parent_version).
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .artifact import MANIFEST_FILE, VERSIONS_DIR, current_version, set_current
from .errors import ArtifactError, ArtifactNotFoundError, ContractError

__all__ = ["HISTORY_FILE", "promote", "rollback", "history", "annotate_manifest"]

HISTORY_FILE = "HISTORY.jsonl"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def history(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Pointer moves, oldest first; unreadable lines (a torn last line) are skipped."""
    p = Path(root) / HISTORY_FILE
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
    fd = os.open(root / HISTORY_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def promote(root: str | os.PathLike, version: str, *, reason: str, action: str = "promote") -> str | None:
    """Point CURRENT at ``version`` (after verifying it loads) and record why.  Returns the previous version."""
    root = Path(root)
    previous = current_version(root)
    set_current(root, version)
    _append_history(root, {"ts": _now(), "action": action, "version": version, "previous": previous,
                           "reason": reason})
    return previous


def rollback(root: str | os.PathLike, *, reason: str = "manual rollback") -> str:
    """Move CURRENT back to the version that was current before the current one was promoted
    (from the history, else the manifest's parent_version).  Returns that version."""
    root = Path(root)
    cur = current_version(root)
    if cur is None:
        raise ArtifactNotFoundError("nothing to roll back: the registry has no CURRENT", path=str(root))
    target = None
    # Walk back along promotions only: rolling back twice goes two promotions back, not to and fro.
    for entry in reversed(history(root)):
        if entry["version"] == cur and entry.get("action") == "promote" and entry.get("previous"):
            target = entry["previous"]
            break
    if target is None:
        try:
            manifest = json.loads((root / VERSIONS_DIR / cur / MANIFEST_FILE).read_text(encoding="utf-8"))
            target = manifest.get("parent_version")
        except (OSError, ValueError):
            target = None
    if not target:
        raise ArtifactError(f"no earlier version to roll back to from {cur}", path=str(root))
    promote(root, target, reason=reason, action="rollback")
    return target


def annotate_manifest(version_dir: str | os.PathLike, key: str, value: Any) -> None:
    """Add or replace one provenance key of a version's manifest (atomically).

    Only keys that describe what happened to the version (promotion decisions, evaluations) belong
    here; the keys that describe its files are the exporter's and are refused.
    """
    if key in ("manifest_version", "artifact_version", "format_version", "files"):
        raise ContractError(f"manifest.{key}", "is written by write_artifact; not annotatable")
    path = Path(version_dir) / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest[key] = value
    tmp = path.with_name(f".{MANIFEST_FILE}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1, allow_nan=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
