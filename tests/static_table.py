"""Test tables for the ``static_embedding`` op: seeded random int8 rows, never the real embedding model
(that one is fitted offline by ``flows/static_embedding.py`` and has its own tests)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from router_runtime.features import FeatureSpec
from router_runtime.text import ascii_lower

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
_TOKEN = re.compile("[a-z0-9_]+")  # explicit ASCII class: Python re and the runtime agree on it


def static_params(vocab: list[str], dims: int, seed: int = 0) -> dict:
    """Fitted params of a ``static_embedding`` feature over ``vocab``: uniform int8 rows (both ends of
    the range included), scales of both signs and magnitudes (one exactly 0.0)."""
    rng = np.random.default_rng(seed)
    table = rng.integers(-128, 128, size=(len(vocab), dims), dtype=np.int8)
    if len(vocab) >= 2:
        table[0, :] = -128  # the extremes, so sums of many repeats are exercised on them
        table[1, :] = 127
    scale = rng.uniform(1e-4, 0.05, size=dims) * rng.choice([-1.0, 1.0], size=dims)
    scale[-1] = 0.0 if dims > 1 else scale[-1]
    raw = table.tobytes()
    return {"dims": dims, "vocab": list(vocab), "table": base64.b64encode(raw).decode("ascii"),
            "scale": [float(x) for x in scale], "sha256": hashlib.sha256(raw).hexdigest()}


def with_static(spec: FeatureSpec, params: dict, name: str = "emb") -> FeatureSpec:
    """``spec`` with a ``static_embedding`` feature of ``params`` appended."""
    d = spec.to_json()
    d["features"].append({"name": name, "op": "static_embedding", "params": params})
    return FeatureSpec.from_json(d)


def tokens_of(text: str) -> list[str]:
    return _TOKEN.findall(ascii_lower(text))


def sample_queries() -> list[str]:
    """Every query of the committed sample (data/sample: RouteProfile and DCRouter)."""
    rp = [r["query"] for r in json.loads((SAMPLE / "routeprofile" / "routing_test_data.json").read_text())]
    dc = [r["question"] for part in ("train", "test")
          for r in json.loads((SAMPLE / "dcrouter" / f"{part}.json").read_text())]
    return rp + dc


def sample_vocab(size: int) -> list[str]:
    """``size`` distinct tokens: those of the sample queries, most frequent first (so that real text hits
    the table as it would a fitted one), then synthetic ones up to ``size``."""
    counts = Counter(t for q in sample_queries() for t in tokens_of(q))
    vocab = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:size]
    i = 0
    seen = set(vocab)
    while len(vocab) < size:
        t = f"zz{i}"
        i += 1
        if t not in seen:
            vocab.append(t)
    return vocab
