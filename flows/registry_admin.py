"""The operator's view of the registry: versions with their figures, and garbage collection.

Standard library only (the CLI imports it without the pipeline extra).  The layout itself is
``router_runtime.registry``'s; this module only reads manifests and removes whole version directories.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from router_runtime._lock import exclusive
from router_runtime.errors import ContractError
from router_runtime.registry import (MANIFEST_FILE, current_version, list_versions, rollback_target,
                                     version_dir, versions_dir)

__all__ = ["version_rows", "format_rows", "protected_versions", "collect_garbage", "gate_refusal"]


def _manifest(root: str | os.PathLike, version: str) -> dict[str, Any]:
    try:
        m = json.loads((version_dir(root, version) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return m if isinstance(m, dict) else {}


def _headline(evaluation: Any) -> str:
    """The one figure a gate decided on: the paired difference candidate - champion, with its interval."""
    if not isinstance(evaluation, dict):
        return ""
    d = evaluation.get("difference") if isinstance(evaluation.get("difference"), dict) else evaluation
    if not isinstance(d.get("diff"), (int, float)):
        return ""
    how = d.get("estimator", "holdout")
    ci = (f" [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
          if isinstance(d.get("ci_low"), (int, float)) and isinstance(d.get("ci_high"), (int, float)) else "")
    n = f" n={d['n']}" if isinstance(d.get("n"), int) else ""
    return f"{how} {d['diff']:+.4f}{ci}{n}"


def version_rows(root: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per version, oldest first: created_at, CURRENT or not, the gate's result and figure."""
    cur = current_version(root)
    rows = []
    for v in list_versions(root):
        m = _manifest(root, v)
        promo = m.get("promotion") if isinstance(m.get("promotion"), dict) else {}
        gate = ("promoted" if promo.get("promoted") is True else "refused" if promo.get("promoted") is False
                else "-")
        rows.append({"version": v, "current": v == cur, "created_at": m.get("created_at"), "gate": gate,
                     "reason": promo.get("reason"), "figure": _headline(m.get("evaluation"))})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        lines.append(f"{'*' if r['current'] else ' '} {r['version']:<34} {str(r['created_at'] or '-'):<28} "
                     f"{r['gate']:<9} {r['figure']}".rstrip())
    return "\n".join(lines)


def gate_refusal(root: str | os.PathLike, version: str) -> str | None:
    """Why the gate refused ``version`` (None when it was not refused or never judged)."""
    promo = _manifest(root, version).get("promotion")
    if isinstance(promo, dict) and promo.get("promoted") is False:
        return str(promo.get("reason") or "no reason recorded")
    return None


def protected_versions(root: str | os.PathLike) -> set[str]:
    """What garbage collection never removes: CURRENT and the version a rollback from it would go to."""
    cur = current_version(root)
    if cur is None:
        return set()
    back = rollback_target(root, cur)
    return {cur} | ({back} if back else set())


def collect_garbage(root: str | os.PathLike, *, keep: int, dry_run: bool = False) -> list[str]:
    """Remove all but the ``keep`` newest versions, never a protected one; returns the removed names.

    A version disappears in one rename (to a hidden name inside ``versions/``) before its files are
    deleted, so a runtime never sees half a version.  Reports and the history stay: they are small and
    they are the record of what the gate decided.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ContractError("keep", f"must be an integer >= 1, got {keep!r}")
    if dry_run:
        return _doomed(root, keep)
    # Under the registry's lock: a promote or rollback between choosing and removing could point
    # CURRENT at a version being removed.
    with exclusive(root, "registry"):
        doomed = _doomed(root, keep)
        for v in doomed:
            hidden = versions_dir(root) / f".gc-{v}"
            os.replace(version_dir(root, v), hidden)
            shutil.rmtree(hidden)
    return doomed


def _doomed(root: str | os.PathLike, keep: int) -> list[str]:
    # Oldest first by the manifest's created_at (microseconds): names start with their UTC second only.
    versions = sorted(list_versions(root), key=lambda v: (str(_manifest(root, v).get("created_at") or ""), v))
    keep_set = set(versions[-keep:]) | protected_versions(root)
    return [v for v in versions if v not in keep_set]
