"""Artifact documents and checks shared by the artifact and registry tests (helpers, not tests)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from router_runtime.errors import ArtifactError, ContractError
from router_runtime.features import FeatureSpec


VERSION_RE = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
WORD = [[48, 57], [65, 90], [95, 95], [97, 122]]


def small_spec() -> FeatureSpec:
    """Single-output ops only: nothing to fit."""
    spec = FeatureSpec.from_json({"version": 1, "max_chars": 4096, "features": [
        {"name": "chars", "op": "char_count", "params": {}},
        {"name": "words", "op": "count_runs", "params": {"ranges": WORD}},
        {"name": "cue_code", "op": "contains_any", "params": {"literals": ["def ", "import "], "ascii_lower": True}},
        {"name": "log_chars", "op": "log1p", "params": {"of": "chars"}},
    ]})
    assert not spec.needs_fit
    return spec


def make_doc(spec: FeatureSpec | None = None) -> dict:
    spec = spec or small_spec()
    inputs = [spec.output_names[0], "model__a", "model__b"]
    return {
        "format_version": 1,
        "version": "",
        "feature_spec": spec.to_json(),
        "pool": [
            {"name": "a", "capabilities": ["chat"], "cost": {"intercept": 0.0, "per_char": 1e-6}},
            {"name": "b", "capabilities": ["chat", "code"], "size_b": 7,
             "cost": {"intercept": 0.001, "per_char": 2e-6}},
        ],
        "quality_model": {"kind": "oblivious_trees", "inputs": inputs, "tree_depth": [1],
                          "split_input": [inputs.index("model__a")], "split_border": [0.5],
                          "leaf_values": [0.2, 0.8], "scale": 1.0, "bias": 0.0},
        "calibration": {"kind": "clip", "low": 0.0, "high": 1.0},
        "policy": {"cost_weight": 0.1, "cost_scale": 1e-3},
    }


def raises(cls, fn, *words):
    with pytest.raises((ArtifactError, ContractError)) as ei:
        fn()
    exc = ei.value
    assert type(exc) is cls, f"expected {cls.__name__}, got {type(exc).__name__}: {exc}"
    msg = str(exc)
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    return exc


def rewrite_router(vdir: Path, new_text: str | bytes) -> None:
    """Replace router.json and fix the manifest's hash, so only the content check can fail."""
    data = new_text.encode() if isinstance(new_text, str) else new_text
    (vdir / "router.json").write_bytes(data)
    man = json.loads((vdir / "manifest.json").read_text())
    man["files"]["router.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (vdir / "manifest.json").write_text(json.dumps(man))


def edit_router(vdir: Path, fn) -> None:
    doc = json.loads((vdir / "router.json").read_text())
    fn(doc)
    rewrite_router(vdir, json.dumps(doc))


def registry_snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
