"""Export: a trained model becomes a versioned artifact in the registry (``router_runtime.artifact``)."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import router_runtime
from router_runtime.artifact import FORMAT_VERSION, write_artifact
from router_runtime.pool import ModelInfo
from router_runtime._atomic import atomic_write
from router_runtime.registry import annotate_manifest, report_path

from .training import TrainedModel

__all__ = ["DEFAULT_COST_WEIGHT", "router_document", "export_artifact", "code_version", "record_decision"]

# utility = quality - cost_weight * cost / cost_scale, with cost_scale the mean expected cost of the
# most expensive trained model: at 0.1, that model must be worth 0.1 more quality than a free one.
DEFAULT_COST_WEIGHT = 0.1


def typical_chars(query_chars: np.ndarray) -> float:
    """The query length costs are priced at: the mean length of the training queries."""
    return float(np.mean(query_chars)) if len(query_chars) else 0.0


def cost_scale(pool: Sequence[ModelInfo], trained: Sequence[str], query_chars: np.ndarray) -> float:
    """The expected cost of the most expensive trained model on a typical query (λ's unit)."""
    mean_chars = typical_chars(query_chars)
    costs = [m.expected_cost(int(round(mean_chars))) for m in pool if m.name in set(trained)]
    top = max(costs, default=0.0)
    return top if top > 0 else 1.0


def router_document(model: TrainedModel, pool: Sequence[ModelInfo], *, cost_weight: float,
                    scale: float, chars: float | None = None) -> dict[str, Any]:
    policy = {"cost_weight": cost_weight, "cost_scale": scale, "quality_floor": 0.0}
    if chars is not None:
        policy["typical_chars"] = chars
    doc = {
        "format_version": FORMAT_VERSION,
        "version": "",
        "feature_spec": model.spec.to_json(),
        "pool": [m.to_json() for m in pool],
        "quality_model": model.ensemble,
        "calibration": {"kind": "clip", "low": 0.0, "high": 1.0},
        "policy": policy,
    }
    if model.length is not None and model.length.ensemble is not None:
        # An optional key: runtimes that do not know it ignore it and assume the pool's completion_tokens.
        doc["length_model"] = model.length.ensemble
    if model.prior is not None and model.prior.ensemble is not None:
        # Optional too: a runtime that predates it scores models without outcomes as it did before.
        doc["descriptor_prior"] = model.prior.ensemble
    return doc


def code_version() -> dict[str, str]:
    import catboost
    import polars
    import prefect

    versions = {"zeta_router": router_runtime.__version__, "python": platform.python_version(),
                "catboost": catboost.__version__, "polars": polars.__version__, "prefect": prefect.__version__}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
        if sha:
            versions["git"] = sha
    except (OSError, subprocess.SubprocessError):
        pass
    return versions


def export_artifact(registry: str | Path, model: TrainedModel, pool: Sequence[ModelInfo], *,
                    cost_weight: float, scale: float, manifest: dict[str, Any], chars: float | None = None) -> Path:
    """Write the artifact (refused by ``write_artifact`` if the runtime could not load it)."""
    doc = router_document(model, pool, cost_weight=cost_weight, scale=scale, chars=chars)
    parity = {"max_abs_diff": model.parity_max_abs_diff, "tolerance": 1e-9}
    if model.length is not None:
        parity["length_model"] = {"max_abs_diff": model.length.parity_max_abs_diff, "rows": model.length.rows,
                                  "note": model.length.note}
    if model.prior is not None:
        parity["descriptor_prior"] = {"max_abs_diff": model.prior.parity_max_abs_diff, "note": model.prior.note}
    meta = {"code_version": code_version(), "parity": parity, **manifest}
    return write_artifact(registry, doc, meta)


def record_decision(registry: str | Path, version_dir: str | Path, decision: dict[str, Any],
                    evaluation: dict[str, Any], **extra: Any) -> Path:
    """A promotion decision (promoted or not, and why) into the version's manifest and into
    ``<registry>/reports/<version>.json``; returns the report path."""
    annotate_manifest(version_dir, "promotion", decision)
    annotate_manifest(version_dir, "evaluation", evaluation)
    version = Path(version_dir).name
    path = report_path(registry, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"version": version, **extra, "decision": decision, "evaluation": evaluation},
                                  indent=1, default=str))
    return path
