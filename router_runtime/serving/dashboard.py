"""The dashboard ``zeta serve`` shows at ``/ui``: one static page (``dashboard.html``: inline JS and
CSS, no build step, nothing fetched from elsewhere) and the JSON it draws, ``/ui/data.json``.

Everything in the JSON comes from the service's own ``Metrics`` (the numbers ``/metrics`` shows, read
from the same counters and histograms), its state (cooldowns, unavailable models, the per-minute
decision ring of ``activity``, the most recent answer) and the artifact registry, read through
``router_runtime.registry`` (never ``flows``).  Latency and time-to-first-token quantiles are
estimated from the histograms as Prometheus' ``histogram_quantile`` does (``metrics``), so they
agree with what a Prometheus server would compute from the same scrape.

The page holds no data: it asks for the bearer token, keeps it in ``sessionStorage`` and sends it
on each ``data.json`` request; both answer 401 without it (``http``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, ContractError
from ..registry import (MANIFEST_FILE, VERSIONS_DIR, current_version, history, list_versions, report_path,
                        version_dir)
from .metrics import Metrics, histogram_quantile

__all__ = ["dashboard_data", "page_html", "registry_root", "MAX_VERSIONS"]

MAX_VERSIONS = 20      # versions listed, newest first: a registry grows by one per pipeline run
_MAX_HISTORY = 10      # pointer moves listed
_MAX_JSON_BYTES = 4 << 20  # a manifest or report larger than this is not read (it would stall the page)
# The figures worth a glance from an evaluation, in the order shown; the whole report stays on disk.
_FIGURES = ("difference.diff", "difference.ci_low", "difference.ci_high", "candidate.dr", "candidate.snips",
            "candidate.ess", "diff", "ci_low", "ci_high", "candidate", "champion", "n", "drift.max_psi")


def page_html() -> bytes:
    """The dashboard page (read once per call: it is small and this keeps it editable in place)."""
    return resources.files(__package__).joinpath("dashboard.html").read_bytes()


def registry_root(service: Any) -> Path | None:
    """The registry the service's artifact comes from: the one hot reload watches, else the
    registry around the loaded version directory (``<root>/versions/<v>``), else None."""
    router = service.router
    if router.source is not None:
        return Path(router.source)
    art = router.artifact
    if art is None or not art.path:
        return None
    p = Path(art.path)
    d = p.parent if p.is_file() else p
    return d.parent.parent if d.parent.name == VERSIONS_DIR else None


def dashboard_data(service: Any, registry: str | os.PathLike | None = None) -> dict[str, Any]:
    """What ``/ui/data.json`` answers, after the queued per-request metrics are written."""
    service.flush(2.0)
    m: Metrics = service.metrics
    health = service.health()
    pool = {info.name: info for info in service.pool}
    root = Path(registry) if registry is not None else registry_root(service)
    last = service.last_answer
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "status": health["status"],
        "router": {"kind": health["router"], "artifact_version": health["artifact_version"],
                   "problem": health["router_problem"], "engine": health["engine"],
                   "reload_error": health["reload_error"], "reloads_refused": health["reloads_refused"],
                   "reload_interval_ms": service.router.reload_interval_ms},
        "decisions": {"by_model": _sum_by(m, "zeta_decisions_total", "model"),
                      "by_kind": _sum_by(m, "zeta_decisions_total", "kind"),
                      "by_route": _sum_by(m, "zeta_decisions_total", "route"),
                      "per_minute": service.timeline.series()},
        "served": _hist_counts(m, "zeta_request_duration_seconds"),
        "cost": _cost(m, pool),
        "latency_ms": _quantiles(m, "zeta_request_duration_seconds"),
        "ttft_ms": _quantiles(m, "zeta_ttft_seconds"),
        "quality": {"feedback": _sum_by(m, "zeta_feedback_total", "model"),
                    "signals": _nested(m, "zeta_quality_signals_total", "model", "signal"),
                    "registry": _registry_quality(root, health["artifact_version"])},
        "failures": _nested(m, "zeta_attempt_failures_total", "model", "reason"),
        "fallbacks": sum(m.samples("zeta_fallbacks_total").values()),
        "models": [{"name": name, "size_b": info.size_b, "capabilities": list(info.capabilities),
                    **{k: health["models"].get(name, {}).get(k) for k in (
                        "cooldown_remaining_s", "unavailable", "failures", "last_error")}}
                   for name, info in pool.items()],
        "registry": _registry(root, health["artifact_version"]),
        "recent_decision": last.header() if last is not None else None,
    }


# -- from the metrics -------------------------------------------------------------------------------

def _sum_by(m: Metrics, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, v in m.samples(name).items():
        key = dict(labels).get(label, "")
        out[key] = out.get(key, 0.0) + v
    return dict(sorted(out.items()))


def _nested(m: Metrics, name: str, outer: str, inner: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for labels, v in m.samples(name).items():
        d = dict(labels)
        row = out.setdefault(d.get(outer, ""), {})
        row[d.get(inner, "")] = row.get(d.get(inner, ""), 0.0) + v
    return dict(sorted(out.items()))


def _hist_counts(m: Metrics, name: str) -> dict[str, float]:
    _, hists = m.histogram(name)
    return dict(sorted((dict(k).get("model", ""), h[-1]) for k, h in hists.items()))


def _quantiles(m: Metrics, name: str) -> dict[str, dict[str, float | None]]:
    """p50 / p95 in ms per model and over all models ("all": the buckets summed), from the histogram."""
    bounds, hists = m.histogram(name)
    per = {dict(k).get("model", ""): h for k, h in hists.items() if dict(k).get("model") != "none"}
    if per:
        per["all"] = tuple(map(sum, zip(*per.values())))

    def ms(q: float, h: tuple[float, ...]) -> float | None:
        v = histogram_quantile(q, bounds, h)
        return None if v is None else round(v * 1000.0, 3)
    return {model: {"count": h[-1], "p50": ms(0.5, h), "p95": ms(0.95, h)} for model, h in sorted(per.items())}


def _cost(m: Metrics, pool: dict[str, Any]) -> dict[str, Any]:
    spent = _sum_by(m, "zeta_cost_expected_total", "model")
    largest = _sum_by(m, "zeta_cost_largest_total", "model")
    total, baseline = sum(spent.values()), sum(largest.values())
    in_ms = bool(pool) and all(info.cost_in_ms for info in pool.values())
    return {"unit": "ms (local cost model)" if in_ms else "the pool's cost unit", "spent": total,
            "largest_capable": baseline, "saved_fraction": (1.0 - total / baseline) if baseline > 0 else None,
            "spent_by_model": spent, "largest_by_model": largest}


# -- from the registry ------------------------------------------------------------------------------

def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _figures(evaluation: Any) -> dict[str, float]:
    if not isinstance(evaluation, dict):
        return {}
    out = {}
    for key in _FIGURES:
        v: Any = evaluation
        for part in key.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out


def _registry(root: Path | None, serving: str | None) -> dict[str, Any]:
    if root is None:
        return {"root": None, "current": None, "versions": [], "history": []}
    try:
        current = current_version(root)
    except ArtifactError as exc:  # a torn or hand-edited pointer: show it, do not fail the page
        current = f"unreadable: {exc}"
    versions = []
    for v in reversed(list_versions(root)[-MAX_VERSIONS:]):
        manifest = _read_json(root / VERSIONS_DIR / v / MANIFEST_FILE) or {}
        promotion = manifest.get("promotion") if isinstance(manifest.get("promotion"), dict) else {}
        versions.append({"version": v, "created_at": manifest.get("created_at"),
                         "parent_version": manifest.get("parent_version"),
                         "promoted": promotion.get("promoted"), "reason": promotion.get("reason"),
                         "champion_version": promotion.get("champion_version"),
                         "figures": _figures(manifest.get("evaluation")),
                         "current": v == current, "serving": v == serving})
    # Names sort by their second only: two versions of one second are ordered by their manifests' time.
    versions.sort(key=lambda x: (str(x["created_at"] or ""), x["version"]), reverse=True)
    moves = [{k: e.get(k) for k in ("ts", "action", "version", "previous", "reason")}
             for e in history(root)[-_MAX_HISTORY:]]
    return {"root": str(root), "current": current, "versions": versions, "history": moves[::-1]}


def _registry_quality(root: Path | None, version: str | None) -> dict[str, Any] | None:
    """The label counts the serving version was trained and judged with, as its report and manifest
    carry them (feedback joined at ingestion; ``labels``, by source, where the pipeline wrote them)."""
    if root is None or version is None:
        return None
    try:
        report = _read_json(report_path(root, version)) or {}
        manifest = _read_json(version_dir(root, version) / MANIFEST_FILE) or {}
    except ContractError:  # a version name the registry would refuse: nothing to read
        return None
    ingest = report.get("ingest") if isinstance(report.get("ingest"), dict) else {}
    labels = report.get("labels") or manifest.get("labels")
    return {"version": version,
            "ingest": {k: ingest[k] for k in ("ingested", "feedback", "feedback_unmatched", "quarantined")
                       if k in ingest},
            "labels": labels if isinstance(labels, dict) else None}
